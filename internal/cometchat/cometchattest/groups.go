package cometchattest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// updateFields are what PUT /groups/{guid} takes; unsetFields are what its
// unset array may name.
var (
	updateFields = []string{"name", "type", "password", "icon", "description", "metadata", "owner", "tags", "unset"}
	unsetFields  = []string{"icon", "description", "metadata"}
)

// update is a validated PUT body: nil pointers are fields left as they are.
type update struct {
	name, typ, password, icon, description, owner *string
	metadata                                      json.RawMessage
	tags                                          []string
	setTags                                       bool
	unset                                         []string
}

// handleUpdate serves PUT /groups/{guid}. A malformed body is refused
// before the guid is looked up.
func (e *Emulator) handleUpdate(w http.ResponseWriter, guid string, body []byte) string {
	u, ferr := parseUpdate(body)
	if ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.groups[guid]
	if !ok {
		return writeNotFound(w, guid)
	}
	if ferr := u.check(rec.group); ferr != nil {
		return writeBadUpdate(w, ferr)
	}
	u.apply(rec, e.now().Unix())
	e.stats.Updates++
	return writeJSON(w, http.StatusOK, map[string]groupView{"data": rec.view(e.members[guid])})
}

func writeBadUpdate(w http.ResponseWriter, ferr *fieldError) string {
	code := ferr.code
	if code == "" {
		code = codeBadRequest
	}
	return writeError(w, http.StatusBadRequest, code, ferr.message())
}

func parseUpdate(body []byte) (*update, *fieldError) {
	obj, ferr := decodeObject(body, "body")
	if ferr != nil {
		return nil, ferr
	}
	if ferr := obj.unknownField("", updateFields...); ferr != nil {
		return nil, ferr
	}
	u := &update{}
	// str returns a pointer only for fields that were sent.
	str := func(name string) (*string, *fieldError) {
		if !obj.present(name) {
			return nil, nil
		}
		s, ferr := obj.str(name)
		return &s, ferr
	}
	var errs [9]*fieldError
	u.name, errs[0] = str("name")
	u.typ, errs[1] = str("type")
	u.password, errs[2] = str("password")
	u.icon, errs[3] = str("icon")
	u.description, errs[4] = str("description")
	u.owner, errs[5] = str("owner")
	u.metadata, errs[6] = obj.metadata("metadata")
	u.tags, errs[7] = obj.tags("tags")
	u.setTags = obj.present("tags")
	if obj.present("unset") {
		if json.Unmarshal(obj["unset"], &u.unset) != nil {
			errs[8] = invalid("unset", "must be an array of field names")
		}
	}
	if ferr := firstError(errs[:]...); ferr != nil {
		return nil, ferr
	}
	for _, name := range u.unset {
		if !slices.Contains(unsetFields, name) {
			return nil, invalid("unset", "%q cannot be unset; only icon, description and metadata can", name)
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
	if u.typ != nil {
		if ferr := checkType(*u.typ); ferr != nil {
			return nil, ferr
		}
	}
	if u.icon != nil {
		if ferr := checkIcon(*u.icon); ferr != nil {
			return nil, ferr
		}
	}
	if u.owner != nil && *u.owner == "" {
		return nil, invalid("owner", "must not be empty")
	}
	return u, nil
}

// check validates what depends on the stored group: a password group must
// end up with a password.
func (u *update) check(g cometchat.Group) *fieldError {
	typ, password := g.Type, g.Password
	if u.typ != nil {
		typ = *u.typ
	}
	if u.password != nil {
		password = *u.password
	}
	if u.typ == nil && u.password == nil {
		return nil
	}
	return checkPassword(typ, password)
}

// apply changes rec; the caller holds e.mu.
func (u *update) apply(rec *record, now int64) {
	g := &rec.group
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&g.Name, u.name)
	set(&g.Type, u.typ)
	set(&g.Password, u.password)
	set(&g.Icon, u.icon)
	set(&rec.description, u.description)
	set(&g.Owner, u.owner)
	if u.metadata != nil {
		g.Metadata = u.metadata
	}
	if u.setTags {
		g.Tags = nil
		if len(u.tags) > 0 {
			g.Tags = u.tags
		}
	}
	for _, name := range u.unset {
		switch name {
		case "icon":
			g.Icon = ""
		case "description":
			rec.description = ""
		case "metadata":
			g.Metadata = nil
		}
	}
	// The import's owner details describe the previous owner once the owner
	// changes; a stored group never contradicts itself.
	if d := g.GroupOwnerDetails; d != nil && d.UID != g.Owner {
		g.GroupOwnerDetails = nil
	}
	rec.updated = now
}

// handleDelete serves DELETE /groups/{guid}; the group's members go with it.
func (e *Emulator) handleDelete(w http.ResponseWriter, guid string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[guid]; !ok {
		return writeNotFound(w, guid)
	}
	delete(e.groups, guid)
	delete(e.members, guid)
	e.noteDeleted(guid)
	e.stats.Deletes++
	return writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"success": true,
		"message": fmt.Sprintf("Group %s deleted successfully.", guid),
	}})
}

// handleGet serves GET /groups/{guid}.
func (e *Emulator) handleGet(w http.ResponseWriter, guid string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.groups[guid]
	if !ok {
		return writeNotFound(w, guid)
	}
	return writeJSON(w, http.StatusOK, map[string]groupView{"data": rec.view(e.members[guid])})
}

// handleList serves GET /groups: groups in guid order, paged by perPage
// (default 100, at most 1000) and page (from 1).
func (e *Emulator) handleList(w http.ResponseWriter, r *http.Request) string {
	perPage := queryInt(r, "perPage", 100)
	perPage = min(perPage, 1000)
	page := queryInt(r, "page", 1)

	e.mu.Lock()
	defer e.mu.Unlock()
	total := len(e.groups)
	data := []groupView{}
	if start := (page - 1) * perPage; start < total {
		guids := e.firstGUIDs(start + perPage)
		for _, guid := range guids[start:] {
			data = append(data, e.groups[guid].view(e.members[guid]))
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"data": data,
		"meta": map[string]any{"pagination": map[string]int{
			"total":        total,
			"count":        len(data),
			"per_page":     perPage,
			"current_page": page,
			"total_pages":  (total + perPage - 1) / perPage,
		}},
	})
}

// queryInt reads a positive integer query parameter, falling back to def
// for anything else: a read used to check the key should not fail on paging.
func queryInt(r *http.Request, name string, def int) int {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || n < 1 {
		return def
	}
	return n
}

func writeNotFound(w http.ResponseWriter, guid string) string {
	return writeError(w, http.StatusNotFound, codeGUIDNotFound,
		fmt.Sprintf("group %q does not exist; import it first", guid))
}
