// Package mapping turns one row of a stream's source query into the object
// CometChat's data-import endpoint takes: a cometchat.Group (Mapper), User
// (UserMapper) or Member (MemberMapper).
//
// The query's column names are the mapping: a column named "name" becomes the
// group's name, "owner_avatar" the owner's avatar, and so on. New, NewUsers
// and NewMembers check the columns once at start-up (columns.go); Map then
// converts each row without reflection (the conversions are shared:
// convert.go, fields.go), and refuses rows that break CometChat's
// documented constraints so that they become row errors here instead of
// failed API calls.
package mapping

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// mappingVersion is part of every fingerprint. Bump it whenever Map's output
// for the same row changes (a new conversion, a new default), so that users
// are told their groups follow an older mapping and offered a resync.
const mappingVersion = "cometsync-mapping-1"

// CometChat's documented limits ("Properties and constraints").
const (
	maxGUID     = 100  // characters of a-z 0-9 - _
	maxName     = 100  // characters
	maxPassword = 100  // characters
	maxIcon     = 3000 // characters of a URL
	maxUID      = 100  // characters, like a guid
	maxRole     = 100  // characters, like a guid
	maxMetadata = 5120 // bytes of compact JSON (5 KB)
	maxTags     = 25
	maxTag      = 100 // characters per tag
)

// field identifies an import field; its value indexes Mapper.index.
type field int

const (
	fGUID field = iota
	fName
	fType
	fPassword
	fIcon
	fOwner
	fCreatedAt
	fMetadata
	fTags
	fOwnerUID
	fOwnerName
	fOwnerAvatar
	fOwnerLink
	fOwnerRole
	fOwnerCreatedAt
	fOwnerLastActiveAt
	fOwnerMetadata
	fOwnerTags
	fOwnerDeactivatedAt
	numFields
)

// fieldNames are the column names of the import fields, in field order.
var fieldNames = [numFields]string{
	fGUID:               "guid",
	fName:               "name",
	fType:               "type",
	fPassword:           "password",
	fIcon:               "icon",
	fOwner:              "owner",
	fCreatedAt:          "created_at",
	fMetadata:           "metadata",
	fTags:               "tags",
	fOwnerUID:           "owner_uid",
	fOwnerName:          "owner_name",
	fOwnerAvatar:        "owner_avatar",
	fOwnerLink:          "owner_link",
	fOwnerRole:          "owner_role",
	fOwnerCreatedAt:     "owner_created_at",
	fOwnerLastActiveAt:  "owner_last_active_at",
	fOwnerMetadata:      "owner_metadata",
	fOwnerTags:          "owner_tags",
	fOwnerDeactivatedAt: "owner_deactivated_at",
}

// Bits of Present's mask, one per optional field of the import object.
const (
	FieldIcon uint32 = 1 << iota
	FieldMetadata
	FieldTags
	FieldPassword
	FieldOwner
	FieldCreatedAt
	FieldGroupOwnerDetails
)

// Mapper converts rows of one query into import objects. It is safe for
// concurrent use: Map only reads it.
type Mapper struct {
	binding
}

// groupSchema is the groups' import fields; a legacy config names its
// query source.query.
var groupSchema = schema{section: "source", names: fieldNames[:], required: []field{fGUID, fName, fType}}

// FieldError is a row that cannot be imported: a value that cannot be
// converted, or that breaks one of CometChat's documented constraints.
type FieldError struct {
	// Field is the import field's column name, e.g. "name" or "owner_tags".
	Field string
	// Message says what is wrong; it never repeats a password.
	Message string
}

// Error returns "field: message".
func (e *FieldError) Error() string {
	return e.Field + ": " + e.Message
}

func fieldErr(f field, format string, args ...any) *FieldError {
	return nameErr(fieldNames[f], format, args...)
}

// nameErr is a *FieldError of the import field named name.
func nameErr(name, format string, args ...any) *FieldError {
	return &FieldError{Field: name, Message: fmt.Sprintf(format, args...)}
}

// GUIDColumn is the result column the guid is mapped from, as the query
// names it.
func (m *Mapper) GUIDColumn() string { return m.column(fGUID) }

// Map converts one row, values aligned with Columns, into an import object.
// NULL (nil) and empty text leave an optional field out.
//
// Errors are *FieldError, except for a row whose length does not match the
// columns, which is a programming error. On error the returned Group holds
// only the GUID, when the guid itself was valid, so that the row error can
// be recorded under it.
func (m *Mapper) Map(values []any) (cometchat.Group, error) {
	if len(values) != len(m.columns) {
		return cometchat.Group{}, fmt.Errorf("map row: got %d values for %d columns", len(values), len(m.columns))
	}
	var g cometchat.Group
	if err := m.mapRow(values, &g); err != nil {
		return cometchat.Group{GUID: g.GUID}, err
	}
	return g, nil
}

func (m *Mapper) mapRow(values []any, g *cometchat.Group) error {
	var err error
	if g.GUID, err = mapGUID(values[m.index[fGUID]]); err != nil {
		return err
	}
	if g.Name, err = mapName(values[m.index[fName]]); err != nil {
		return err
	}
	if g.Type, err = mapType(values[m.index[fType]]); err != nil {
		return err
	}
	if g.Password, err = m.text(values, fPassword, maxPassword); err != nil {
		return err
	}
	if g.Type == "password" && g.Password == "" {
		return fieldErr(fPassword, "is required for a password group")
	}
	if g.Icon, err = m.text(values, fIcon, maxIcon); err != nil {
		return err
	}
	if g.Owner, err = m.text(values, fOwner, maxUID); err != nil {
		return err
	}
	if g.CreatedAt, err = m.time(values, fCreatedAt); err != nil {
		return err
	}
	if g.Metadata, err = m.metadata(values, fMetadata); err != nil {
		return err
	}
	if g.Tags, err = m.tags(values, fTags); err != nil {
		return err
	}
	if g.GroupOwnerDetails, err = m.ownerDetails(values); err != nil {
		return err
	}
	if g.Owner == "" && g.GroupOwnerDetails != nil {
		g.Owner = g.GroupOwnerDetails.UID
	}
	return nil
}

func (m *Mapper) ownerDetails(values []any) (*cometchat.OwnerDetails, error) {
	uid, err := m.text(values, fOwnerUID, maxUID)
	if err != nil || uid == "" {
		return nil, err
	}
	d := &cometchat.OwnerDetails{UID: uid}
	if d.Name, err = m.text(values, fOwnerName, maxName); err != nil {
		return nil, err
	}
	if d.Name == "" {
		// The OpenAPI schema requires uid and name.
		d.Name = uid
	}
	if d.Avatar, err = m.text(values, fOwnerAvatar, maxIcon); err != nil {
		return nil, err
	}
	if d.Link, err = m.text(values, fOwnerLink, maxIcon); err != nil {
		return nil, err
	}
	if d.Role, err = m.text(values, fOwnerRole, maxRole); err != nil {
		return nil, err
	}
	if d.CreatedAt, err = m.time(values, fOwnerCreatedAt); err != nil {
		return nil, err
	}
	if d.LastActiveAt, err = m.time(values, fOwnerLastActiveAt); err != nil {
		return nil, err
	}
	if d.Metadata, err = m.metadata(values, fOwnerMetadata); err != nil {
		return nil, err
	}
	if d.Tags, err = m.tags(values, fOwnerTags); err != nil {
		return nil, err
	}
	if d.DeactivatedAt, err = m.time(values, fOwnerDeactivatedAt); err != nil {
		return nil, err
	}
	return d, nil
}

func mapGUID(v any) (string, error) { return mapID(v, "guid", "group") }

func mapName(v any) (string, error) { return mapRequiredText(v, "name", "group", maxName) }

func mapType(v any) (string, error) {
	s, ok, err := toText(v, "type")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fieldErr(fType, "is NULL; must be public, password or private")
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "public":
		return "public", nil
	case "password":
		return "password", nil
	case "private":
		return "private", nil
	}
	return "", fieldErr(fType, "must be public, password or private, got %q", truncate(s, 40))
}

// runeCount returns the number of characters of s when s is longer than
// limit bytes, and its length in bytes otherwise: enough to compare with
// limit (a character is at least a byte) without counting every short value.
func runeCount(s string, limit int) int {
	if len(s) <= limit {
		return len(s)
	}
	return utf8.RuneCountInString(s)
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Fingerprint identifies this mapping of this query: a hex SHA-256 over the
// mapping version, the columns, the time zone for zone-less times, the query
// and extra (e.g. the cursor settings). It changes when the query or the
// mapping changes, so that a pass can tell groups were sent under another.
func (m *Mapper) Fingerprint(query string, extra ...string) string {
	return m.fingerprint(mappingVersion, query, extra)
}

// Hash is a content hash of an import object: the first 16 bytes of a
// SHA-256 over its fields, as an opaque (not printable) string. Equal
// objects hash equal, so an unchanged row need not be sent again. It is
// kept raw rather than in hex because the state stores one per group.
func Hash(g cometchat.Group) string {
	// A length-prefixed field-by-field encoding rather than JSON: the same
	// guarantee (equal objects hash equal, any difference changes the hash)
	// at a fraction of the cost, and this runs for every row read.
	var arr [512]byte
	b := arr[:0]
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(n int64) { b = binary.AppendVarint(b, n) }
	list := func(l []string) {
		num(int64(len(l)))
		for _, s := range l {
			str(s)
		}
	}
	str(g.GUID)
	str(g.Name)
	str(g.Type)
	str(g.Password)
	str(g.Icon)
	str(g.Owner)
	num(g.CreatedAt)
	str(string(g.Metadata))
	list(g.Tags)
	if o := g.GroupOwnerDetails; o != nil {
		b = append(b, 1)
		str(o.UID)
		str(o.Name)
		str(o.Avatar)
		str(o.Link)
		str(o.Role)
		num(o.CreatedAt)
		num(o.LastActiveAt)
		str(string(o.Metadata))
		list(o.Tags)
		num(o.DeactivatedAt)
	}
	sum := sha256.Sum256(b)
	return string(sum[:16])
}

// Present returns the Field* bits of the optional fields that g carries.
// Comparing it with the mask of the last delivery tells which fields became
// NULL since, and so must be cleared explicitly in an update.
func Present(g cometchat.Group) uint32 {
	var p uint32
	if g.Icon != "" {
		p |= FieldIcon
	}
	if len(g.Metadata) > 0 {
		p |= FieldMetadata
	}
	if len(g.Tags) > 0 {
		p |= FieldTags
	}
	if g.Password != "" {
		p |= FieldPassword
	}
	if g.Owner != "" {
		p |= FieldOwner
	}
	if g.CreatedAt != 0 {
		p |= FieldCreatedAt
	}
	if g.GroupOwnerDetails != nil {
		p |= FieldGroupOwnerDetails
	}
	return p
}
