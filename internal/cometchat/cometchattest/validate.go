package cometchattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// CometChat's documented constraints ("Properties and constraints").
const (
	maxGUIDLen     = 100
	maxNameLen     = 100
	maxPasswordLen = 100
	maxIconLen     = 3000
	maxMetadata    = 5 << 10 // bytes of compact JSON
	maxTags        = 25
	maxTagLen      = 100
	maxTimeDigits  = 10 // UNIX seconds, not milliseconds
)

// fieldError is one field that breaks a constraint. An empty code means the
// endpoint's own invalid-input code (ERR_IMPORT_INVALID_GROUP_FORMAT for an
// import row, ERR_BAD_REQUEST for a PUT).
type fieldError struct {
	code   string
	field  string
	reason string
}

func (f *fieldError) message() string { return f.field + ": " + f.reason }

func invalid(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// fields is a JSON object decoded one level deep, so that unknown fields and
// wrong types can be reported by name.
type fields map[string]json.RawMessage

func decodeObject(raw []byte, what string) (fields, *fieldError) {
	var obj fields
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, invalid(what, "must be a JSON object")
	}
	return obj, nil
}

// unknownField names the first field (in sorted order, for stable messages)
// that is not in known.
func (obj fields) unknownField(prefix string, known ...string) *fieldError {
	var names []string
	for name := range obj {
		if !slices.Contains(known, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return invalid(prefix+names[0], "unknown field; the API does not take it")
}

// present reports whether name was sent with a non-null value. A JSON null is
// read as absent: clients that do not omit empty optional fields still work.
func (obj fields) present(name string) bool {
	raw, ok := obj[name]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func (obj fields) str(name string) (string, *fieldError) {
	if !obj.present(name) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(obj[name], &s); err != nil {
		return "", invalid(name, "must be a string")
	}
	return s, nil
}

func (obj fields) required(name string) (string, *fieldError) {
	if !obj.present(name) {
		return "", invalid(name, "is required")
	}
	return obj.str(name)
}

func (obj fields) tags(name string) ([]string, *fieldError) {
	if !obj.present(name) {
		return nil, nil
	}
	var tags []string
	if err := json.Unmarshal(obj[name], &tags); err != nil {
		return nil, invalid(name, "must be an array of strings")
	}
	return tags, checkTags(name, tags)
}

// unixSeconds reads a 10-digit UNIX time. CometChat's own example sends it
// as a string of digits, so that is accepted as well as a JSON integer.
func (obj fields) unixSeconds(name string) (int64, *fieldError) {
	if !obj.present(name) {
		return 0, nil
	}
	raw := bytes.TrimSpace(obj[name])
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, invalid(name, "must be an integer UNIX time in seconds, got %s", raw)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || len(s) > maxTimeDigits {
		return 0, invalid(name, "must be UNIX seconds of at most 10 digits, got %s (milliseconds?)", s)
	}
	return n, nil
}

func checkGUID(guid string) *fieldError { return checkID("guid", guid) }

// checkID checks a lowercased guid or uid: CometChat documents the same
// constraints for both.
func checkID(field, id string) *fieldError {
	if len(id) == 0 || len(id) > maxGUIDLen {
		return invalid(field, "must be 1 to %d characters, got %d", maxGUIDLen, len(id))
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return invalid(field, "may hold only a-z, 0-9, - and _, got %q", id)
		}
	}
	return nil
}

func checkName(name string) *fieldError {
	if n := utf8.RuneCountInString(name); n == 0 || n > maxNameLen {
		return invalid("name", "must be 1 to %d characters, got %d", maxNameLen, n)
	}
	return nil
}

func checkType(typ string) *fieldError {
	switch typ {
	case "public", "password", "private":
		return nil
	}
	return invalid("type", "must be public, password or private, got %q", typ)
}

// checkPassword checks the password a group of type typ ends up with.
func checkPassword(typ, password string) *fieldError {
	if typ == "password" && password == "" {
		return &fieldError{code: codeEmptyPassword, field: "password", reason: "is required when type is password"}
	}
	if n := utf8.RuneCountInString(password); n > maxPasswordLen {
		return invalid("password", "must be at most %d characters, got %d", maxPasswordLen, n)
	}
	return nil
}

func checkIcon(icon string) *fieldError {
	if n := utf8.RuneCountInString(icon); n > maxIconLen {
		return invalid("icon", "must be at most %d characters, got %d", maxIconLen, n)
	}
	return nil
}

func checkTags(field string, tags []string) *fieldError {
	if len(tags) > maxTags {
		return invalid(field, "must be at most %d tags, got %d", maxTags, len(tags))
	}
	for i, tag := range tags {
		if n := utf8.RuneCountInString(tag); n > maxTagLen {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be at most %d characters, got %d", maxTagLen, n)
		}
	}
	return nil
}

// metadata returns a JSON object field compacted, as it is stored.
func (obj fields) metadata(name string) (json.RawMessage, *fieldError) {
	if !obj.present(name) {
		return nil, nil
	}
	raw := bytes.TrimSpace(obj[name])
	if raw[0] != '{' {
		return nil, invalid(name, "must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, invalid(name, "must be a JSON object")
	}
	if buf.Len() > maxMetadata {
		return nil, invalid(name, "must be at most %d bytes of JSON, got %d", maxMetadata, buf.Len())
	}
	return json.RawMessage(buf.Bytes()), nil
}

// ownerDetails reads the import row's groupOwnerDetails, whose schema
// requires uid and name.
func (obj fields) ownerDetails(name string) (*cometchat.OwnerDetails, *fieldError) {
	if !obj.present(name) {
		return nil, nil
	}
	od, ferr := decodeObject(obj[name], name)
	if ferr != nil {
		return nil, ferr
	}
	if ferr := od.unknownField(name+".", "uid", "name", "avatar", "link", "role", "createdAt",
		"lastActiveAt", "metadata", "tags", "deactivatedAt"); ferr != nil {
		return nil, ferr
	}
	var d cometchat.OwnerDetails
	var errs [10]*fieldError
	d.UID, errs[0] = od.required("uid")
	d.Name, errs[1] = od.required("name")
	d.Avatar, errs[2] = od.str("avatar")
	d.Link, errs[3] = od.str("link")
	d.Role, errs[4] = od.str("role")
	d.CreatedAt, errs[5] = od.unixSeconds("createdAt")
	d.LastActiveAt, errs[6] = od.unixSeconds("lastActiveAt")
	d.Metadata, errs[7] = od.metadata("metadata")
	d.Tags, errs[8] = od.tags("tags")
	d.DeactivatedAt, errs[9] = od.unixSeconds("deactivatedAt")
	if d.UID == "" && errs[0] == nil {
		errs[0] = invalid("uid", "must not be empty")
	}
	if d.Name == "" && errs[1] == nil {
		errs[1] = invalid("name", "must not be empty")
	}
	for _, ferr := range errs {
		if ferr != nil {
			ferr.field = name + "." + ferr.field
			return nil, ferr
		}
	}
	if len(d.Tags) == 0 {
		d.Tags = nil
	}
	return &d, nil
}

// firstError returns the first non-nil error, so that a row's fields are
// reported in a fixed order.
func firstError(errs ...*fieldError) *fieldError {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// cloneGroup deep-copies g, so that stored groups never share memory with
// callers.
func cloneGroup(g cometchat.Group) cometchat.Group {
	g.Metadata = slices.Clone(g.Metadata)
	g.Tags = slices.Clone(g.Tags)
	if g.GroupOwnerDetails != nil {
		d := *g.GroupOwnerDetails
		d.Metadata = slices.Clone(d.Metadata)
		d.Tags = slices.Clone(d.Tags)
		g.GroupOwnerDetails = &d
	}
	return g
}

// boolean reads a JSON boolean; "true" and "false" as strings are taken
// too, as CometChat's own description has the default as a string.
func (obj fields) boolean(name string) (bool, *fieldError) {
	if !obj.present(name) {
		return false, nil
	}
	var b bool
	if json.Unmarshal(obj[name], &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(obj[name], &s) == nil && (s == "true" || s == "false") {
		return s == "true", nil
	}
	return false, invalid(name, "must be true or false")
}
