package cometchattest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// userImportFields are the fields of a user import row, per CometChat's
// OpenAPI description of POST /data_import/users.
var userImportFields = []string{"uid", "name", "avatar", "link", "role", "createdAt",
	"lastActiveAt", "metadata", "tags", "deactivatedAt"}

// userUpdateFields are what PUT /users/{uid} takes; userUnsetFields what its
// unset array may name.
var (
	userUpdateFields = []string{"name", "avatar", "link", "role", "statusMessage", "metadata", "tags", "unset"}
	userUnsetFields  = []string{"avatar", "link", "metadata"}
)

// userView is a user as the API answers it.
type userView struct {
	UID           string          `json:"uid"`
	Name          string          `json:"name"`
	Avatar        string          `json:"avatar,omitempty"`
	Link          string          `json:"link,omitempty"`
	Role          string          `json:"role"`
	StatusMessage string          `json:"statusMessage,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Tags          []string        `json:"tags,omitempty"`
	Status        string          `json:"status"`
	CreatedAt     int64           `json:"createdAt"`
	UpdatedAt     int64           `json:"updatedAt,omitempty"`
	LastActiveAt  int64           `json:"lastActiveAt,omitempty"`
	DeactivatedAt int64           `json:"deactivatedAt,omitempty"`
}

// handleImportUsers serves POST /data_import/users: a uid that exists
// (active or not) is answered ERR_UID_ALREADY_EXISTS and left as it is.
func (e *Emulator) handleImportUsers(w http.ResponseWriter, body []byte, partial bool, reject func(string) (string, string, bool)) string {
	rows, msg := parseImport(e, body, userImport)
	if msg != "" {
		return writeError(w, http.StatusBadRequest, codeBadRequest, msg)
	}
	return answerImport(w, rows, partial, "users", func(rows []importRow[cometchat.User]) []rowResult {
		return importEach(e, rows, reject, userImport, func(u cometchat.User) string { return u.UID }, e.storeUser)
	})
}

// userImport is POST /data_import/users.
var userImport = importKind[cometchat.User]{wrapper: "users", keyName: "uid", invalidCode: codeInvalidUser,
	scan: (*scanner).importUser, decode: decodeImportUser}

// storeUser stores an imported user; the caller holds e.mu.
func (e *Emulator) storeUser(u cometchat.User) rowResult {
	if _, ok := e.users[u.UID]; ok {
		return failed(codeUIDExists, fmt.Sprintf("user %q already exists; update it with PUT /users/%s", u.UID, u.UID))
	}
	rec := newUserRecord(u, e.now().Unix(), 0)
	e.users[rec.uid()] = rec
	e.stats.ImportedUsers++
	v := rec.view()
	return rowResult{Success: true, Data: &v}
}

// decodeImportUser checks one row against the documented constraints and
// returns it as it is stored: uid lowercased, metadata compact.
func decodeImportUser(row importRow[cometchat.User]) (cometchat.User, *fieldError) {
	var u cometchat.User
	obj, ferr := decodeObject(row.raw, "user")
	if ferr != nil {
		return u, ferr
	}
	if ferr := obj.unknownField("", userImportFields...); ferr != nil {
		return u, ferr
	}
	if u.UID, ferr = obj.required("uid"); ferr != nil {
		return u, ferr
	}
	if u.UID != row.key {
		return u, invalid("uid", "%q must equal the key %q that wraps the user", u.UID, row.key)
	}
	u.UID = strings.ToLower(u.UID)
	if ferr := checkID("uid", u.UID); ferr != nil {
		return u, ferr
	}
	var errs [9]*fieldError
	u.Name, errs[0] = obj.required("name")
	u.Avatar, errs[1] = obj.str("avatar")
	u.Link, errs[2] = obj.str("link")
	u.Role, errs[3] = obj.str("role")
	u.CreatedAt, errs[4] = obj.unixSeconds("createdAt")
	u.LastActiveAt, errs[5] = obj.unixSeconds("lastActiveAt")
	u.Metadata, errs[6] = obj.metadata("metadata")
	u.Tags, errs[7] = obj.tags("tags")
	u.DeactivatedAt, errs[8] = obj.unixSeconds("deactivatedAt")
	if ferr := firstError(errs[:]...); ferr != nil {
		return u, ferr
	}
	if ferr := checkName(u.Name); ferr != nil {
		return u, ferr
	}
	if len(u.Tags) == 0 {
		u.Tags = nil
	}
	return u, nil
}

// userUpdate is a validated PUT /users/{uid} body: nil pointers are fields
// left as they are.
type userUpdate struct {
	name, avatar, link, role, statusMessage *string
	metadata                                json.RawMessage
	tags                                    []string
	setTags                                 bool
	unset                                   []string
}

// handleUserUpdate serves PUT /users/{uid}. A malformed body is refused
// before the uid is looked up; a deactivated user is not found.
func (e *Emulator) handleUserUpdate(w http.ResponseWriter, uid string, body []byte) string {
	u, ferr := parseUserUpdate(body)
	if ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.users[uid]
	if !ok || !rec.active() {
		return writeUserNotFound(w, uid)
	}
	u.apply(rec)
	rec.updated = e.now().Unix()
	e.stats.UserUpdates++
	return writeJSON(w, http.StatusOK, map[string]userView{"data": rec.view()})
}

func parseUserUpdate(body []byte) (*userUpdate, *fieldError) {
	obj, ferr := decodeObject(body, "body")
	if ferr != nil {
		return nil, ferr
	}
	if ferr := obj.unknownField("", userUpdateFields...); ferr != nil {
		return nil, ferr
	}
	str := func(name string) (*string, *fieldError) {
		if !obj.present(name) {
			return nil, nil
		}
		s, ferr := obj.str(name)
		return &s, ferr
	}
	u := &userUpdate{setTags: obj.present("tags")}
	var errs [8]*fieldError
	u.name, errs[0] = str("name")
	u.avatar, errs[1] = str("avatar")
	u.link, errs[2] = str("link")
	u.role, errs[3] = str("role")
	u.statusMessage, errs[4] = str("statusMessage")
	u.metadata, errs[5] = obj.metadata("metadata")
	u.tags, errs[6] = obj.tags("tags")
	if obj.present("unset") && json.Unmarshal(obj["unset"], &u.unset) != nil {
		errs[7] = invalid("unset", "must be an array of field names")
	}
	if ferr := firstError(errs[:]...); ferr != nil {
		return nil, ferr
	}
	for _, name := range u.unset {
		if !slices.Contains(userUnsetFields, name) {
			return nil, invalid("unset", "%q cannot be unset; only avatar, link and metadata can", name)
		}
		if obj.present(name) {
			return nil, invalid(name, "is both set and unset")
		}
	}
	if u.name != nil {
		if ferr := checkName(*u.name); ferr != nil {
			return nil, ferr
		}
	}
	return u, nil
}

// apply changes rec; the caller holds e.mu.
func (u *userUpdate) apply(rec *userRecord) {
	user, statusMessage := rec.user(), rec.str(strStatusMessage)
	usr := &user
	for _, f := range []struct{ dst, src *string }{
		{&usr.Name, u.name}, {&usr.Avatar, u.avatar}, {&usr.Link, u.link}, {&usr.Role, u.role}, {&statusMessage, u.statusMessage},
	} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if u.metadata != nil {
		usr.Metadata = u.metadata
	}
	if u.setTags {
		usr.Tags = nil
		if len(u.tags) > 0 {
			usr.Tags = u.tags
		}
	}
	for _, name := range u.unset {
		switch name {
		case "avatar":
			usr.Avatar = ""
		case "link":
			usr.Link = ""
		case "metadata":
			usr.Metadata = nil
		}
	}
	rec.set(user, statusMessage)
}

// handleUserDelete serves DELETE /users/{uid} {"permanent": bool}: by
// default it deactivates; permanent removes the user and its memberships.
// A deactivated user can still be deleted permanently.
func (e *Emulator) handleUserDelete(w http.ResponseWriter, uid string, body []byte) string {
	permanent := false
	if len(strings.TrimSpace(string(body))) > 0 {
		obj, ferr := decodeObject(body, "body")
		if ferr == nil {
			ferr = obj.unknownField("", "permanent")
		}
		if ferr == nil {
			permanent, ferr = obj.boolean("permanent")
		}
		if ferr != nil {
			return writeBadUpdate(w, ferr)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.users[uid]
	if !ok || (!permanent && !rec.active()) {
		return writeUserNotFound(w, uid)
	}
	if permanent {
		delete(e.users, uid)
		for _, members := range e.members {
			delete(members, uid)
		}
		e.stats.PermanentDeletes++
	} else {
		rec.deactivatedAt = e.now().Unix()
		e.stats.Deactivations++
	}
	return writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"success": true,
		"message": fmt.Sprintf("User with %s has been deleted successfully.", uid),
	}})
}

// handleReactivate serves PUT /users {"uidsToActivate": [...]}: it answers
// the uids that are active now under nonDeactivatedUids; unknown uids are
// left out.
func (e *Emulator) handleReactivate(w http.ResponseWriter, body []byte) string {
	uids, ferr := uidList(body, "uidsToActivate")
	if ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	done := []string{}
	for _, uid := range uids {
		if rec, ok := e.users[uid]; ok {
			if !rec.active() {
				rec.deactivatedAt = 0
				e.stats.Reactivations++
			}
			done = append(done, uid)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"data": map[string][]string{"nonDeactivatedUids": done}})
}

// handleDeactivateMany serves DELETE /users {"uidsToDeactivate": [...]}.
func (e *Emulator) handleDeactivateMany(w http.ResponseWriter, body []byte) string {
	uids, ferr := uidList(body, "uidsToDeactivate")
	if ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	done := []string{}
	for _, uid := range uids {
		if rec, ok := e.users[uid]; ok {
			if rec.active() {
				rec.deactivatedAt = e.now().Unix()
				e.stats.Deactivations++
			}
			done = append(done, uid)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"data": map[string][]string{"deactivatedUids": done}})
}

// uidList reads {"<field>": ["uid", ...]}, lowercased; it must not be empty.
func uidList(body []byte, field string) ([]string, *fieldError) {
	obj, ferr := decodeObject(body, "body")
	if ferr != nil {
		return nil, ferr
	}
	if ferr := obj.unknownField("", field); ferr != nil {
		return nil, ferr
	}
	var uids []string
	if !obj.present(field) || json.Unmarshal(obj[field], &uids) != nil || len(uids) == 0 {
		return nil, invalid(field, "must be a non-empty array of uids")
	}
	for i := range uids {
		uids[i] = strings.ToLower(uids[i])
	}
	return uids, nil
}

// handleUserGet serves GET /users/{uid}; a deactivated user is answered
// too, with its deactivatedAt.
func (e *Emulator) handleUserGet(w http.ResponseWriter, uid string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.users[uid]
	if !ok {
		return writeUserNotFound(w, uid)
	}
	return writeJSON(w, http.StatusOK, map[string]userView{"data": rec.view()})
}

// handleUserList serves GET /users in uid order, paged by perPage (default
// 100, at most 1000) and page: active users, or with withDeactivated=true
// all, or with onlyDeactivated=true the deactivated ones.
func (e *Emulator) handleUserList(w http.ResponseWriter, r *http.Request) string {
	perPage, page := min(queryInt(r, "perPage", 100), 1000), queryInt(r, "page", 1)
	with, only := r.URL.Query().Get("withDeactivated") == "true", r.URL.Query().Get("onlyDeactivated") == "true"
	e.mu.Lock()
	defer e.mu.Unlock()
	uids := make([]string, 0, len(e.users))
	for uid, rec := range e.users {
		if skip := !rec.active() && !with; only && rec.active() || !only && skip {
			continue
		}
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	data := []userView{}
	for _, uid := range pageOf(uids, perPage, page) {
		data = append(data, e.users[uid].view())
	}
	return writePage(w, data, len(uids), len(data), perPage, page)
}

// pageOf returns the page'th slice of perPage keys.
func pageOf(keys []string, perPage, page int) []string {
	start := (page - 1) * perPage
	if start >= len(keys) || start < 0 {
		return nil
	}
	return keys[start:min(start+perPage, len(keys))]
}

// writePage answers a list with CometChat's meta.pagination.
func writePage(w http.ResponseWriter, data any, total, count, perPage, page int) string {
	return writeJSON(w, http.StatusOK, map[string]any{
		"data": data,
		"meta": map[string]any{"pagination": map[string]int{
			"total":        total,
			"count":        count,
			"per_page":     perPage,
			"current_page": page,
			"total_pages":  (total + perPage - 1) / perPage,
		}},
	})
}

func writeUserNotFound(w http.ResponseWriter, uid string) string {
	return writeError(w, http.StatusNotFound, codeUIDNotFound,
		fmt.Sprintf("user %q does not exist or is deactivated; import it (or reactivate it) first", uid))
}

// User returns the user stored under uid (matched case-insensitively) and
// whether it exists; a deactivated user has DeactivatedAt set.
func (e *Emulator) User(uid string) (cometchat.User, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.users[strings.ToLower(uid)]
	if !ok {
		return cometchat.User{}, false
	}
	return rec.user(), true
}

// Users returns a copy of every stored user, deactivated ones included,
// keyed by lowercased uid.
func (e *Emulator) Users() map[string]cometchat.User {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]cometchat.User, len(e.users))
	for uid, rec := range e.users {
		out[uid] = rec.user()
	}
	return out
}

// PutUser stores u directly, replacing any user with the same uid, without
// validation (a DeactivatedAt makes it deactivated). The uid is lowercased;
// empty metadata and tags are stored as none; nothing is counted in Stats.
func (e *Emulator) PutUser(u cometchat.User) {
	u.UID = strings.ToLower(u.UID)
	now := e.now().Unix()
	rec := newUserRecord(u, now, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[rec.uid()] = rec
}
