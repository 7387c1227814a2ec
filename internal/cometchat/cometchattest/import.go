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

// importRow is one entry of the request's wrapper object (groups, users,
// members), in request order, of an entity T.
type importRow[T any] struct {
	key string
	raw json.RawMessage
	// item is the row as stored, when decoded is set: the fast path
	// decodes only rows that the reference path accepts.
	item    T
	decoded bool
}

// importKind is one data-import endpoint, as both paths read it.
type importKind[T any] struct {
	wrapper     string // the body's top-level key: groups, users, members
	keyName     string // what the wrapper's keys are in messages: guid, uid, member id
	invalidCode string // a refused row's code, unless its check names its own
	// scan is the fast path of one row: it reads the row at s, wrapped by
	// key, when decode would accept it, with the same result.
	scan func(s *scanner, key string) (T, bool)
	// decode is the reference path of one row; it alone words row errors.
	decode func(importRow[T]) (T, *fieldError)
}

// groupImport is POST /data_import/groups.
var groupImport = importKind[cometchat.Group]{wrapper: "groups", keyName: "guid", invalidCode: codeInvalidGroup,
	scan: (*scanner).importGroup, decode: decodeImportGroup}

// decodeRow checks the row against the documented constraints and returns
// it as it is stored. Rows the fast path has not vouched for get the
// reference path, which also words every error.
func (k importKind[T]) decodeRow(row importRow[T], fast bool) (T, *fieldError) {
	if row.decoded {
		return row.item, nil
	}
	if fast {
		if item, ok := k.decodeFast(row); ok {
			return item, nil
		}
	}
	return k.decode(row)
}

// rowResult is one entry of the answer's data object.
type rowResult struct {
	Success bool      `json:"success"`
	Data    any       `json:"data,omitempty"` // the stored entity's view
	Error   *rowError `json:"error,omitempty"`
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
	rows, msg := parseImport(e, body, groupImport)
	if msg != "" {
		return writeError(w, http.StatusBadRequest, codeBadRequest, msg)
	}
	return answerImport(w, rows, partial, "groups", func(rows []importRow[cometchat.Group]) []rowResult { return e.importRows(rows, reject) })
}

// answerImport stores rows with store and answers one entry per row under
// its lowercased key; with partial it stores the first half of the rows
// (rounded down) and then fails the request, as the real endpoints can.
func answerImport[T any](w http.ResponseWriter, rows []importRow[T], partial bool, what string, store func([]importRow[T]) []rowResult) string {
	if partial {
		store(rows[:len(rows)/2])
		return writeError(w, http.StatusInternalServerError, codeException,
			fmt.Sprintf("internal error (emulated) after %d of %d %s were processed; some may exist now", len(rows)/2, len(rows), what))
	}
	results := store(rows)
	data := make(map[string]rowResult, len(rows))
	for i, row := range rows {
		data[strings.ToLower(row.key)] = results[i]
	}
	return writeJSON(w, http.StatusOK, importAnswer{Data: data})
}

// parseImport reads the request body of an import of k into its rows,
// keeping their order. A non-empty message means the whole request is
// refused with 400 and nothing is imported.
func parseImport[T any](e *Emulator, body []byte, k importKind[T]) ([]importRow[T], string) {
	if !e.referenceOnly {
		if rows, ok := parseImportFast(e, body, k); ok {
			return rows, ""
		}
	}
	return parseRows[T](e, body, k.wrapper, k.keyName)
}

// parseRows is parseImport as specified: it alone words the messages of
// refused requests. It reads a data-import body
// {"<wrapper>": {"<key>": {...}}} into its rows, in order, for the wrapper
// ("groups", "users", "members") whose rows are keyed by keyName ("guid",
// "uid", "member id").
func parseRows[T any](e *Emulator, body []byte, wrapper, keyName string) ([]importRow[T], string) {
	top, ferr := decodeObject(body, "body")
	if ferr != nil {
		return nil, fmt.Sprintf("the body must be a JSON object {\"%s\": {\"<%s>\": {...}}}", wrapper, keyName)
	}
	if ferr := top.unknownField("", wrapper); ferr != nil {
		return nil, ferr.message()
	}
	if !top.present(wrapper) {
		return nil, fmt.Sprintf("%s is required: an object keyed by %s", wrapper, keyName)
	}
	// Walk the object by tokens: a map would lose the order that partial
	// imports follow, and silently merge duplicate keys.
	dec := json.NewDecoder(bytes.NewReader(top[wrapper]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Sprintf("%s must be an object keyed by %s, not an array or a scalar", wrapper, keyName)
	}
	var rows []importRow[T]
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, wrapper + " is not valid JSON"
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, wrapper + " is not valid JSON"
		}
		// Rows are answered under the lowercased key, so two keys that
		// differ only in case could not both be answered.
		if seen[strings.ToLower(key)] {
			return nil, fmt.Sprintf("%s %q appears twice in %s (%ss are case-insensitive)", keyName, key, wrapper, keyName)
		}
		seen[strings.ToLower(key)] = true
		rows = append(rows, importRow[T]{key: key, raw: raw})
	}
	switch {
	case len(rows) == 0:
		return nil, fmt.Sprintf("%s is empty: send 1 to %d %s", wrapper, e.maxBatch, wrapper)
	case len(rows) > e.maxBatch:
		return nil, fmt.Sprintf("%d %s in one request; the limit is %d %s per import request", len(rows), wrapper, e.maxBatch, wrapper)
	}
	return rows, ""
}

// importRows validates the rows and stores them; an existing guid is left as
// it is. RejectRow is asked about each valid row without the lock held; the
// rows it lets through are then stored under one hold of the lock, rather
// than one per row.
func (e *Emulator) importRows(rows []importRow[cometchat.Group], reject func(string) (string, string, bool)) []rowResult {
	results := make([]rowResult, len(rows))
	type pending struct {
		i       int
		group   cometchat.Group
		created int64
	}
	store := make([]pending, 0, len(rows))
	for i, row := range rows {
		g, ferr := groupImport.decodeRow(row, !e.referenceOnly)
		if ferr != nil {
			code := ferr.code
			if code == "" {
				code = groupImport.invalidCode
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
		views[j] = rec.view(nil)
		results[p.i] = rowResult{Success: true, Data: &views[j]}
	}
	return results
}

// decodeImportGroup checks one row against the documented constraints and
// returns it as it is stored: guid lowercased, metadata compact.
func decodeImportGroup(row importRow[cometchat.Group]) (cometchat.Group, *fieldError) {
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

// importEach imports the rows of a users or members request: it decodes
// each row (a refusal answered with k.invalidCode unless the check names
// its own), asks reject about the valid ones without the lock held, and
// stores the rest with store under one hold of the lock.
func importEach[T any](e *Emulator, rows []importRow[T], reject func(string) (string, string, bool), k importKind[T],
	key func(T) string, store func(T) rowResult) []rowResult {
	results := make([]rowResult, len(rows))
	pending := make([]int, 0, len(rows))
	items := make([]T, len(rows))
	for i, row := range rows {
		it, ferr := k.decodeRow(row, !e.referenceOnly)
		if ferr != nil {
			code := ferr.code
			if code == "" {
				code = k.invalidCode
			}
			results[i] = failed(code, ferr.message())
			continue
		}
		if reject != nil {
			if code, msg, ok := reject(key(it)); ok {
				if code == "" {
					code = codeRowFailed
				}
				results[i] = failed(code, msg)
				continue
			}
		}
		items[i] = it
		pending = append(pending, i)
	}
	if len(pending) == 0 {
		return results
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, i := range pending {
		results[i] = store(items[i])
	}
	return results
}

// failed is a row's failure.
func failed(code, message string) rowResult {
	return rowResult{Error: &rowError{Code: code, Message: message}}
}
