package cometchat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// MaxBatch is CometChat's limit of entities (groups, users or members) in
// one data-import request.
const MaxBatch = 50

// RowResult is CometChat's answer for one entity of an import request, or
// for one uid of an add-members call.
type RowResult struct {
	OK      bool
	Code    string // e.g. ERR_GUID_ALREADY_EXISTS when !OK
	Message string
}

// Exists reports whether the row was refused because the entity is already
// there (see CodeSaysExists): the caller updates it instead.
func (r RowResult) Exists() bool { return !r.OK && CodeSaysExists(r.Code) }

// NotFound reports whether the row was refused because a group, a user or a
// membership it names does not exist (see CodeSaysNotFound).
func (r RowResult) NotFound() bool { return !r.OK && CodeSaysNotFound(r.Code) }

// importSpec is what differs between the data-import endpoints: the
// entities' wrapper object and how an entity is keyed in it.
type importSpec[T any] struct {
	endpoint string // name in APIError and Observe
	path     string // e.g. /data_import/groups
	wrapper  string // the body's top-level key, e.g. "groups"
	keyName  string // what the key is called in messages, e.g. "guid"
	key      func(T) string
}

// importBatch sends up to MaxBatch entities to one data-import endpoint,
// paced by the import pacer that every data-import endpoint shares, and
// returns the per-row answers keyed by the keys sent.
func importBatch[T any](ctx context.Context, c *Client, spec importSpec[T], items []T) (map[string]RowResult, error) {
	if len(items) == 0 {
		return map[string]RowResult{}, nil
	}
	if len(items) > MaxBatch {
		return nil, fmt.Errorf("cometchat %s: %d %s in one request, CometChat takes at most %d", spec.endpoint, len(items), spec.wrapper, MaxBatch)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = spec.key(it)
	}
	body, err := importBody(spec.wrapper, keys, items)
	if err != nil {
		return nil, fmt.Errorf("cometchat %s: encode request: %w", spec.endpoint, err)
	}
	raw, err := c.do(ctx, spec.endpoint, http.MethodPost, spec.path, body, c.importPace)
	if err != nil {
		return nil, err
	}
	return parseImport(raw, keys, spec.keyName), nil
}

// importBody encodes {"<wrapper>": {"<key>": {...}, ...}} in the items'
// order, without building and sorting a map: this runs for every batch.
func importBody[T any](wrapper string, keys []string, items []T) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, 256*len(items)))
	buf.WriteString(`{"` + wrapper + `":{`)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := enc.Encode(keys[i]); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		buf.WriteByte(':')
		if err := enc.Encode(it); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString("}}")
	return buf.Bytes(), nil
}

// parseImport reads {"data": {"<key>": {"success": ..., "error": ...}}}
// tolerantly: the shape of a per-row error is not documented.
func parseImport(raw []byte, keys []string, keyName string) map[string]RowResult {
	if out, ok := parseImportFast(raw, keys); ok {
		return out
	}
	var env struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		env.Data = nil
	}
	return rowResults(env.Data, keys, "the import answer did not mention this "+keyName)
}

// rowResults reads the entry of each key in data, matched
// case-insensitively (CometChat answers under lowercased ids). A key with
// no entry gets CodeNoRowResult and missing as its message.
func rowResults(data map[string]json.RawMessage, keys []string, missing string) map[string]RowResult {
	out := make(map[string]RowResult, len(keys))
	byLower := make(map[string]json.RawMessage, len(data))
	for k, v := range data {
		byLower[strings.ToLower(k)] = v
	}
	for _, key := range keys {
		entry, ok := data[key]
		if !ok {
			entry, ok = byLower[strings.ToLower(key)]
		}
		if !ok {
			out[key] = RowResult{Code: CodeNoRowResult, Message: missing}
			continue
		}
		out[key] = parseRow(entry)
	}
	return out
}

// parseImportFast reads the usual answer in one decode: every row an
// object with a boolean success and, on failure, an {"code","message"}
// error. Anything else goes to the tolerant path.
func parseImportFast(raw []byte, keys []string) (map[string]RowResult, bool) {
	type rowError struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		DevMessage string `json:"devMessage"`
	}
	var env struct {
		Data map[string]struct {
			Success *bool     `json:"success"`
			Error   *rowError `json:"error"`
		} `json:"data"`
	}
	if json.Unmarshal(raw, &env) != nil {
		return nil, false
	}
	out := make(map[string]RowResult, len(keys))
	for _, key := range keys {
		row, ok := env.Data[key]
		switch {
		case !ok || row.Success == nil:
			return nil, false // missing, differently cased, or unreadable
		case *row.Success:
			out[key] = RowResult{OK: true}
		case row.Error == nil || row.Error.Code == "":
			return nil, false
		default:
			msg := row.Error.Message
			if msg == "" {
				msg = row.Error.DevMessage
			}
			out[key] = RowResult{Code: row.Error.Code, Message: msg}
		}
	}
	return out, true
}

// parseRow reads one entry: {"success": true, ...} or {"success": false,
// "error": ...}. An entry without a readable verdict is a failure with
// CodeUnreadableRowResult and the entry's text, never a success.
func parseRow(entry json.RawMessage) RowResult {
	var row struct {
		Success *bool           `json:"success"`
		Error   json.RawMessage `json:"error"`
		Code    string          `json:"code"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(entry, &row); err != nil || row.Success == nil {
		return RowResult{Code: CodeUnreadableRowResult, Message: "unreadable row result: " + clip(string(entry), 300)}
	}
	if *row.Success {
		return RowResult{OK: true}
	}
	code, msg := parseErrorValue(row.Error)
	if code == "" && msg == "" {
		// Not in an error object: perhaps beside success.
		code, msg = row.Code, row.Message
	}
	if code == "" {
		code = CodeUnreadableRowResult
		if msg == "" {
			msg = "failed without a readable error: " + clip(string(entry), 300)
		}
	}
	return RowResult{Code: code, Message: msg}
}

// parseErrorValue reads an error that may be {"code","message"}, a string,
// or anything else.
func parseErrorValue(v json.RawMessage) (code, msg string) {
	var obj struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		DevMessage string `json:"devMessage"`
	}
	if json.Unmarshal(v, &obj) == nil && (obj.Code != "" || obj.Message != "") {
		msg = obj.Message
		if msg == "" {
			msg = obj.DevMessage
		}
		return obj.Code, msg
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return "", s
	}
	return "", clip(string(v), 300)
}
