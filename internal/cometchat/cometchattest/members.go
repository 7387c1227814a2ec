package cometchattest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// memberImportFields are the fields of a member import row, per CometChat's
// OpenAPI description of POST /data_import/members.
var memberImportFields = []string{"memberId", "guid", "uid", "scope", "isBanned", "joinedAt", "groupDetails", "userDetails"}

// maxAddMembers is how many uids one POST /groups/{guid}/members takes over
// all its arrays.
const maxAddMembers = 25

// scopeArrays maps the arrays of POST /groups/{guid}/members to scopes.
var scopeArrays = []struct{ array, scope string }{
	{"admins", cometchat.ScopeAdmin},
	{"moderators", cometchat.ScopeModerator},
	{"participants", cometchat.ScopeParticipant},
}

// memberRec is one membership, stored under its group and uid.
type memberRec struct {
	scope    string
	joinedAt int64
}

// memberView is a membership as the import and scope change answer it.
type memberView struct {
	GUID     string `json:"guid"`
	UID      string `json:"uid"`
	Scope    string `json:"scope"`
	JoinedAt int64  `json:"joinedAt"`
}

func validScope(scope string) bool {
	return scope == cometchat.ScopeAdmin || scope == cometchat.ScopeModerator || scope == cometchat.ScopeParticipant
}

// handleImportMembers serves POST /data_import/members. A membership of a
// missing or deactivated user is ERR_UID_NOT_FOUND, of a missing group
// ERR_GUID_NOT_FOUND, an existing one ERR_IMPORT_MUID_ALREADY_EXISTS (left
// as it is); joinedAt is kept.
func (e *Emulator) handleImportMembers(w http.ResponseWriter, body []byte, partial bool, reject func(string) (string, string, bool)) string {
	k := memberImport(e.now().Unix())
	rows, msg := parseImport(e, body, k)
	if msg != "" {
		return writeError(w, http.StatusBadRequest, codeBadRequest, msg)
	}
	return answerImport(w, rows, partial, "members", func(rows []importRow[cometchat.Member]) []rowResult {
		return importEach(e, rows, reject, k, func(m cometchat.Member) string { return m.MemberID }, e.storeMember)
	})
}

// memberImport is POST /data_import/members at the server time now, which
// joinedAt may not pass.
func memberImport(now int64) importKind[cometchat.Member] {
	return importKind[cometchat.Member]{wrapper: "members", keyName: "member id", invalidCode: codeInvalidMember,
		scan: func(s *scanner, key string) (cometchat.Member, bool) { return s.importMember(key, now) },
		decode: func(row importRow[cometchat.Member]) (cometchat.Member, *fieldError) {
			return decodeImportMember(row, now)
		}}
}

// storeMember stores an imported membership; the caller holds e.mu.
func (e *Emulator) storeMember(m cometchat.Member) rowResult {
	if u, ok := e.users[m.UID]; !ok || !u.active() {
		return failed(codeUIDNotFound, fmt.Sprintf("user %q does not exist or is deactivated; import the user first", m.UID))
	}
	g, ok := e.groups[m.GUID]
	if !ok {
		return failed(codeGUIDNotFound, fmt.Sprintf("group %q does not exist; import the group first", m.GUID))
	}
	if m.JoinedAt != 0 && g.group.CreatedAt != 0 && m.JoinedAt < g.group.CreatedAt {
		return failed(codeInvalidJoined, fmt.Sprintf("joinedAt %d is before the group's createdAt %d", m.JoinedAt, g.group.CreatedAt))
	}
	if _, ok := e.members[m.GUID][m.UID]; ok {
		return failed(codeMUIDExists, fmt.Sprintf("%q is a member of %q already; change its scope with PUT /groups/%s/members/%s", m.UID, m.GUID, m.GUID, m.UID))
	}
	if m.JoinedAt == 0 {
		m.JoinedAt = e.now().Unix()
	}
	e.addMember(m.GUID, m.UID, memberRec{scope: m.Scope, joinedAt: m.JoinedAt})
	e.stats.ImportedMembers++
	return rowResult{Success: true, Data: &memberView{GUID: m.GUID, UID: m.UID, Scope: m.Scope, JoinedAt: m.JoinedAt}}
}

// addMember stores a membership; the caller holds e.mu.
func (e *Emulator) addMember(guid, uid string, m memberRec) {
	members := e.members[guid]
	if members == nil {
		members = make(map[string]memberRec)
		e.members[guid] = members
	}
	members[uid] = m
}

// decodeImportMember checks one row against the documented constraints and
// returns it as it is stored: ids lowercased, scope defaulted to
// participant. now is the server's time, which joinedAt may not pass.
func decodeImportMember(row importRow[cometchat.Member], now int64) (cometchat.Member, *fieldError) {
	var m cometchat.Member
	obj, ferr := decodeObject(row.raw, "member")
	if ferr != nil {
		return m, ferr
	}
	if ferr := obj.unknownField("", memberImportFields...); ferr != nil {
		return m, ferr
	}
	var errs [6]*fieldError
	var banned bool
	m.MemberID, errs[0] = obj.required("memberId")
	m.GUID, errs[1] = obj.required("guid")
	m.UID, errs[2] = obj.required("uid")
	m.Scope, errs[3] = obj.str("scope")
	m.JoinedAt, errs[4] = obj.unixSeconds("joinedAt")
	banned, errs[5] = obj.boolean("isBanned")
	if ferr := firstError(errs[:]...); ferr != nil {
		return m, ferr
	}
	if m.MemberID != row.key {
		return m, invalid("memberId", "%q must equal the key %q that wraps the member", m.MemberID, row.key)
	}
	m.MemberID, m.GUID, m.UID = strings.ToLower(m.MemberID), strings.ToLower(m.GUID), strings.ToLower(m.UID)
	if ferr := firstError(checkID("guid", m.GUID), checkID("uid", m.UID)); ferr != nil {
		return m, ferr
	}
	if want := cometchat.MemberID(m.GUID, m.UID); m.MemberID != want {
		return m, invalid("memberId", "%q must be <guid>_member_<uid>, %q", m.MemberID, want)
	}
	if m.Scope == "" {
		m.Scope = cometchat.ScopeParticipant
	}
	switch {
	case !validScope(m.Scope):
		return m, invalid("scope", "must be admin, moderator or participant, got %q", m.Scope)
	case banned:
		return m, invalid("isBanned", "bans are not modelled by the emulator")
	case obj.present("groupDetails") || obj.present("userDetails"):
		return m, invalid("groupDetails", "groupDetails and userDetails are not modelled by the emulator: import the group and the user first")
	case m.JoinedAt > now:
		return m, &fieldError{code: codeInvalidJoined, field: "joinedAt", reason: fmt.Sprintf("%d is in the future", m.JoinedAt)}
	}
	return m, nil
}

// handleAddMembers serves POST /groups/{guid}/members: at most 25 uids over
// admins, moderators and participants; each uid answered on its own under
// its scope's array (ERR_UID_NOT_FOUND for a missing or deactivated user,
// ERR_ALREADY_JOINED for a member).
func (e *Emulator) handleAddMembers(w http.ResponseWriter, guid string, body []byte) string {
	byArray, ferr := parseAddMembers(body)
	if ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[guid]; !ok {
		return writeNotFound(w, guid)
	}
	now := e.now().Unix()
	data := make(map[string]map[string]rowResult)
	for _, s := range scopeArrays {
		uids, ok := byArray[s.array]
		if !ok {
			continue
		}
		results := make(map[string]rowResult, len(uids))
		for _, uid := range uids {
			results[uid] = e.addOne(guid, uid, s.scope, now)
		}
		data[s.array] = results
	}
	return writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// addOne adds uid to guid with scope; the caller holds e.mu.
func (e *Emulator) addOne(guid, uid, scope string, now int64) rowResult {
	if u, ok := e.users[uid]; !ok || !u.active() {
		return failed(codeUIDNotFound, fmt.Sprintf("user %q does not exist or is deactivated", uid))
	}
	if _, ok := e.members[guid][uid]; ok {
		return failed(codeAlreadyJoined, fmt.Sprintf("user %q is a member of group %q already", uid, guid))
	}
	e.addMember(guid, uid, memberRec{scope: scope, joinedAt: now})
	e.stats.MembersAdded++
	return rowResult{Success: true, Data: map[string]any{"category": "action", "type": "groupMember",
		"data": map[string]any{"action": "added"}, "guid": guid, "uid": uid, "scope": scope}}
}

// parseAddMembers reads the arrays of POST /groups/{guid}/members,
// lowercased, refusing a body of more than maxAddMembers uids, of none, or
// with a uid twice.
func parseAddMembers(body []byte) (map[string][]string, *fieldError) {
	obj, ferr := decodeObject(body, "body")
	if ferr != nil {
		return nil, ferr
	}
	if ferr := obj.unknownField("", "admins", "moderators", "participants", "usersToBan"); ferr != nil {
		return nil, ferr
	}
	if ban, _ := obj.tags("usersToBan"); len(ban) > 0 {
		return nil, invalid("usersToBan", "bans are not modelled by the emulator")
	}
	out := make(map[string][]string)
	seen := make(map[string]bool)
	for _, s := range scopeArrays {
		if !obj.present(s.array) {
			continue
		}
		var uids []string
		if err := json.Unmarshal(obj[s.array], &uids); err != nil {
			return nil, invalid(s.array, "must be an array of uids")
		}
		for i, uid := range uids {
			uids[i] = strings.ToLower(uid)
			if seen[uids[i]] {
				return nil, invalid(s.array, "uid %q appears twice in the request", uid)
			}
			seen[uids[i]] = true
		}
		out[s.array] = uids
	}
	switch n := len(seen); {
	case n == 0:
		return nil, invalid("body", "names no uid: send admins, moderators or participants")
	case n > maxAddMembers:
		return nil, invalid("body", "%d uids in one request; the limit is %d over admins, moderators and participants", n, maxAddMembers)
	}
	return out, nil
}

// handleScope serves PUT /groups/{guid}/members/{uid} {"scope": ...}.
func (e *Emulator) handleScope(w http.ResponseWriter, guid, uid string, body []byte) string {
	obj, ferr := decodeObject(body, "body")
	if ferr == nil {
		ferr = obj.unknownField("", "scope")
	}
	var scope string
	if ferr == nil {
		scope, ferr = obj.required("scope")
	}
	if ferr == nil && !validScope(scope) {
		ferr = invalid("scope", "must be admin, moderator or participant, got %q", scope)
	}
	if ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	m, status := e.member(w, guid, uid)
	if status != "" {
		return status
	}
	if m.scope == scope {
		return writeError(w, http.StatusBadRequest, codeSameScope, fmt.Sprintf("user %q is %s of group %q already", uid, scope, guid))
	}
	m.scope = scope
	e.members[guid][uid] = m
	e.stats.ScopeChanges++
	return writeJSON(w, http.StatusOK, map[string]memberView{"data": {GUID: guid, UID: uid, Scope: scope, JoinedAt: m.joinedAt}})
}

// handleKick serves DELETE /groups/{guid}/members/{uid}.
func (e *Emulator) handleKick(w http.ResponseWriter, guid, uid string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, status := e.member(w, guid, uid); status != "" {
		return status
	}
	delete(e.members[guid], uid)
	e.stats.Kicks++
	return writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"success": true,
		"message": fmt.Sprintf("The member with %s has been kicked from the Group with %s.", uid, guid),
	}})
}

// member looks up a membership, answering the request itself (and
// returning its outcome) when the group or the membership is missing. The
// caller holds e.mu.
func (e *Emulator) member(w http.ResponseWriter, guid, uid string) (memberRec, string) {
	if _, ok := e.groups[guid]; !ok {
		return memberRec{}, writeNotFound(w, guid)
	}
	m, ok := e.members[guid][uid]
	if !ok {
		return m, writeError(w, http.StatusNotFound, codeNotAMember, fmt.Sprintf("user %q is not a member of group %q", uid, guid))
	}
	return m, ""
}

// memberListView is a member as GET /groups/{guid}/members answers it.
type memberListView struct {
	userView
	Scope    string `json:"scope"`
	JoinedAt int64  `json:"joinedAt"`
}

// handleMemberList serves GET /groups/{guid}/members in uid order, paged
// like GET /users.
func (e *Emulator) handleMemberList(w http.ResponseWriter, r *http.Request, guid string) string {
	perPage, page := min(queryInt(r, "perPage", 100), 1000), queryInt(r, "page", 1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[guid]; !ok {
		return writeNotFound(w, guid)
	}
	members := e.members[guid]
	uids := make([]string, 0, len(members))
	for uid := range members {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	data := []memberListView{}
	for _, uid := range pageOf(uids, perPage, page) {
		v := memberListView{userView: userView{UID: uid}, Scope: members[uid].scope, JoinedAt: members[uid].joinedAt}
		if rec, ok := e.users[uid]; ok {
			v.userView = rec.view()
		}
		data = append(data, v)
	}
	return writePage(w, data, len(uids), len(data), perPage, page)
}

// Member returns uid's membership of guid (matched case-insensitively) and
// whether it exists.
func (e *Emulator) Member(guid, uid string) (cometchat.Member, bool) {
	guid, uid = strings.ToLower(guid), strings.ToLower(uid)
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.members[guid][uid]
	if !ok {
		return cometchat.Member{}, false
	}
	return memberOf(guid, uid, m), true
}

// Members returns the memberships of guid, keyed by lowercased uid.
func (e *Emulator) Members(guid string) map[string]cometchat.Member {
	guid = strings.ToLower(guid)
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]cometchat.Member, len(e.members[guid]))
	for uid, m := range e.members[guid] {
		out[uid] = memberOf(guid, uid, m)
	}
	return out
}

// AllMembers returns every membership, keyed by member id
// (<guid>_member_<uid>).
func (e *Emulator) AllMembers() map[string]cometchat.Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]cometchat.Member)
	for guid, members := range e.members {
		for uid, m := range members {
			mm := memberOf(guid, uid, m)
			out[mm.MemberID] = mm
		}
	}
	return out
}

// PutMember stores m directly, replacing any membership of the same user
// in the same group, without validation (the user and the group need not
// exist; an empty scope is participant). Ids are lowercased; nothing is
// counted in Stats.
func (e *Emulator) PutMember(m cometchat.Member) {
	guid, uid := strings.ToLower(m.GUID), strings.ToLower(m.UID)
	if m.Scope == "" {
		m.Scope = cometchat.ScopeParticipant
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addMember(guid, uid, memberRec{scope: m.Scope, joinedAt: m.JoinedAt})
}

func memberOf(guid, uid string, m memberRec) cometchat.Member {
	return cometchat.Member{MemberID: cometchat.MemberID(guid, uid), GUID: guid, UID: uid, Scope: m.scope, JoinedAt: m.joinedAt}
}
