package cometchattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// importFields are the fields of an import row, per CometChat's OpenAPI
// description of POST /data_import/groups.
var importFields = []string{"guid", "name", "type", "password", "icon", "owner",
	"createdAt", "metadata", "tags", "groupOwnerDetails"}

// importRow is one entry of the request's groups object, in request order.
type importRow struct {
	key string
	raw json.RawMessage
	// group is the row as stored, when decoded is set: the fast path
	// decodes only rows that decodeImportGroup accepts.
	group   cometchat.Group
	decoded bool
}

// decode checks the row against the documented constraints and returns it
// as it is stored. Rows the fast path has not vouched for get the
// reference path, which also words every error.
func (row importRow) decode(fast bool) (cometchat.Group, *fieldError) {
	if row.decoded {
		return row.group, nil
	}
	if fast {
		if g, ok := decodeImportGroupFast(row); ok {
			return g, nil
		}
	}
	return decodeImportGroup(row)
}

// rowResult is one entry of the answer's data object.
type rowResult struct {
	Success bool       `json:"success"`
	Data    *groupView `json:"data,omitempty"`
	Error   *rowError  `json:"error,omitempty"`
}

type rowError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// importAnswer is the body of a 200 answer to an import: one entry per
// row, under its lowercased guid.
type importAnswer struct {
	Data map[string]rowResult `json:"data"`
}

// handleImport serves POST /data_import/groups. With partial set it imports
// the first half of the rows (rounded down) and then fails the request, as
// the real endpoint can.
func (e *Emulator) handleImport(w http.ResponseWriter, body []byte, partial bool, reject func(string) (string, string, bool)) string {
	rows, msg := e.parseImport(body)
	if msg != "" {
		return writeError(w, http.StatusBadRequest, codeBadRequest, msg)
	}
	if partial {
		e.importRows(rows[:len(rows)/2], reject)
		return writeError(w, http.StatusInternalServerError, codeException,
			fmt.Sprintf("internal error (emulated) after %d of %d groups were processed; some may exist now", len(rows)/2, len(rows)))
	}
	results := e.importRows(rows, reject)
	data := make(map[string]rowResult, len(rows))
	for i, row := range rows {
		data[strings.ToLower(row.key)] = results[i]
	}
	return writeJSON(w, http.StatusOK, importAnswer{Data: data})
}

// parseImport reads the request body into its rows, keeping their order. A
// non-empty message means the whole request is refused with 400 and nothing
// is imported.
func (e *Emulator) parseImport(body []byte) ([]importRow, string) {
	if !e.referenceOnly {
		if rows, ok := e.parseImportFast(body); ok {
			return rows, ""
		}
	}
	return e.parseImportReference(body)
}

// parseImportReference is parseImport as specified: it alone words the
// messages of refused requests.
func (e *Emulator) parseImportReference(body []byte) ([]importRow, string) {
	top, ferr := decodeObject(body, "body")
	if ferr != nil {
		return nil, "the body must be a JSON object {\"groups\": {\"<guid>\": {...}}}"
	}
	if ferr := top.unknownField("", "groups"); ferr != nil {
		return nil, ferr.message()
	}
	if !top.present("groups") {
		return nil, "groups is required: an object keyed by guid"
	}
	// Walk the object by tokens: a map would lose the order that partial
	// imports follow, and silently merge duplicate keys.
	dec := json.NewDecoder(bytes.NewReader(top["groups"]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, "groups must be an object keyed by guid, not an array or a scalar"
	}
	var rows []importRow
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "groups is not valid JSON"
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, "groups is not valid JSON"
		}
		// Rows are answered under the lowercased guid, so two keys that differ
		// only in case could not both be answered.
		if seen[strings.ToLower(key)] {
			return nil, fmt.Sprintf("guid %q appears twice in groups (guids are case-insensitive)", key)
		}
		seen[strings.ToLower(key)] = true
		rows = append(rows, importRow{key: key, raw: raw})
	}
	switch {
	case len(rows) == 0:
		return nil, "groups is empty: send 1 to " + fmt.Sprint(e.maxBatch) + " groups"
	case len(rows) > e.maxBatch:
		return nil, fmt.Sprintf("%d groups in one request; the limit is %d groups per import request", len(rows), e.maxBatch)
	}
	return rows, ""
}

// importRows validates the rows and stores them; an existing guid is left as
// it is. RejectRow is asked about each valid row without the lock held; the
// rows it lets through are then stored under one hold of the lock, rather
// than one per row.
func (e *Emulator) importRows(rows []importRow, reject func(string) (string, string, bool)) []rowResult {
	results := make([]rowResult, len(rows))
	type pending struct {
		i       int
		group   cometchat.Group
		created int64
	}
	store := make([]pending, 0, len(rows))
	for i, row := range rows {
		g, ferr := row.decode(!e.referenceOnly)
		if ferr != nil {
			code := ferr.code
			if code == "" {
				code = codeInvalidGroup
			}
			results[i] = rowResult{Error: &rowError{Code: code, Message: ferr.message()}}
			continue
		}
		if reject != nil {
			if code, msg, ok := reject(g.GUID); ok {
				if code == "" {
					code = codeRowFailed
				}
				results[i] = rowResult{Error: &rowError{Code: code, Message: msg}}
				continue
			}
		}
		store = append(store, pending{i: i, group: g, created: e.now().Unix()})
	}
	if len(store) == 0 {
		return results
	}
	views := make([]groupView, len(store))
	e.mu.Lock()
	defer e.mu.Unlock()
	for j, p := range store {
		guid := p.group.GUID
		if _, exists := e.groups[guid]; exists {
			results[p.i] = rowResult{Error: &rowError{Code: codeGUIDExists,
				Message: fmt.Sprintf("group %q already exists; update it with PUT /groups/%s", guid, guid)}}
			continue
		}
		rec := &record{group: p.group, created: p.created}
		e.groups[guid] = rec
		e.noteStored(guid)
		e.stats.ImportedRows++
		views[j] = rec.view()
		results[p.i] = rowResult{Success: true, Data: &views[j]}
	}
	return results
}

// decodeImportGroup checks one row against the documented constraints and
// returns it as it is stored: guid lowercased, metadata compact.
func decodeImportGroup(row importRow) (cometchat.Group, *fieldError) {
	obj, ferr := decodeObject(row.raw, "group")
	if ferr != nil {
		return cometchat.Group{}, ferr
	}
	if ferr := obj.unknownField("", importFields...); ferr != nil {
		return cometchat.Group{}, ferr
	}
	var g cometchat.Group
	g.GUID, ferr = obj.required("guid")
	if ferr != nil {
		return g, ferr
	}
	if g.GUID != row.key {
		return g, invalid("guid", "%q must equal the key %q that wraps the group", g.GUID, row.key)
	}
	g.GUID = strings.ToLower(g.GUID)
	if ferr := checkGUID(g.GUID); ferr != nil {
		return g, ferr
	}

	var errs [9]*fieldError
	g.Name, errs[0] = obj.required("name")
	g.Type, errs[1] = obj.required("type")
	g.Password, errs[2] = obj.str("password")
	g.Icon, errs[3] = obj.str("icon")
	g.Owner, errs[4] = obj.str("owner")
	g.CreatedAt, errs[5] = obj.unixSeconds("createdAt")
	g.Metadata, errs[6] = obj.metadata("metadata")
	g.Tags, errs[7] = obj.tags("tags")
	g.GroupOwnerDetails, errs[8] = obj.ownerDetails("groupOwnerDetails")
	if ferr := firstError(errs[:]...); ferr != nil {
		return g, ferr
	}
	ferr = firstError(checkName(g.Name), checkType(g.Type), checkPassword(g.Type, g.Password), checkIcon(g.Icon))
	if ferr != nil {
		return g, ferr
	}
	if d := g.GroupOwnerDetails; d != nil && g.Owner != "" && d.UID != g.Owner {
		return g, invalid("owner", "%q differs from groupOwnerDetails.uid %q", g.Owner, d.UID)
	}
	if len(g.Tags) == 0 {
		g.Tags = nil
	}
	return g, nil
}
