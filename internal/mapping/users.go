package mapping

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// usersMappingVersion is part of every users fingerprint; bump it whenever
// UserMapper.Map's output for the same row changes.
const usersMappingVersion = "cometsync-users-mapping-1"

// maxURL is the longest avatar or link taken: CometChat documents 3,000
// characters for a group's icon URL and no limit for a user's URLs, so the
// icon's limit stands for both.
const maxURL = maxIcon

// The user import fields; their values index a UserMapper's binding.
const (
	uUID field = iota
	uName
	uAvatar
	uLink
	uRole
	uMetadata
	uTags
	uCreatedAt
	uLastActiveAt
	uDeactivatedAt
	numUserFields
)

// userFieldNames are the column names of the user import fields, in field
// order.
var userFieldNames = [numUserFields]string{
	uUID:           "uid",
	uName:          "name",
	uAvatar:        "avatar",
	uLink:          "link",
	uRole:          "role",
	uMetadata:      "metadata",
	uTags:          "tags",
	uCreatedAt:     "created_at",
	uLastActiveAt:  "last_active_at",
	uDeactivatedAt: "deactivated_at",
}

var userSchema = schema{section: "users", names: userFieldNames[:], required: []field{uUID, uName}}

// Bits of UserPresent's mask, one per optional field of a user.
const (
	UserAvatar uint32 = 1 << iota
	UserLink
	UserRole
	UserMetadata
	UserTags
	UserCreatedAt
	UserLastActiveAt
	UserDeactivatedAt
)

// UserMapper converts rows of the users query into cometchat.User. It is
// safe for concurrent use: Map only reads it.
type UserMapper struct {
	binding
}

// NewUsers checks the users query's result columns once, at start-up, and
// returns a UserMapper for rows with exactly these columns in this order.
// The columns are uid and name (required), avatar, link, role, metadata,
// tags, created_at, last_active_at and deactivated_at; the rest is as for
// New, with the problems naming users.query and users.cursor.
func NewUsers(columns []string, cursorColumn, tiebreakerColumn string, loc *time.Location) (*UserMapper, error) {
	b, err := userSchema.bind(columns, cursorColumn, tiebreakerColumn, loc, nil)
	if err != nil {
		return nil, err
	}
	return &UserMapper{binding: *b}, nil
}

// UIDColumn is the result column the uid is mapped from, as the query names
// it.
func (m *UserMapper) UIDColumn() string { return m.column(uUID) }

// Map converts one row, values aligned with Columns, into a user. NULL and
// empty text leave an optional field out. Errors are *FieldError, except
// for a row whose length does not match the columns; on error the User
// holds only the UID, when the uid itself was valid.
func (m *UserMapper) Map(values []any) (cometchat.User, error) {
	if err := m.checkLen(values); err != nil {
		return cometchat.User{}, err
	}
	var u cometchat.User
	if err := m.mapRow(values, &u); err != nil {
		return cometchat.User{UID: u.UID}, err
	}
	return u, nil
}

func (m *UserMapper) mapRow(values []any, u *cometchat.User) error {
	var err error
	if u.UID, err = mapID(values[m.index[uUID]], "uid", "user"); err != nil {
		return err
	}
	if u.Name, err = mapRequiredText(values[m.index[uName]], "name", "user", maxName); err != nil {
		return err
	}
	if u.Avatar, err = m.text(values, uAvatar, maxURL); err != nil {
		return err
	}
	if u.Link, err = m.text(values, uLink, maxURL); err != nil {
		return err
	}
	if u.Role, err = m.text(values, uRole, maxRole); err != nil {
		return err
	}
	if u.Metadata, err = m.metadata(values, uMetadata); err != nil {
		return err
	}
	if u.Tags, err = m.tags(values, uTags); err != nil {
		return err
	}
	if u.CreatedAt, err = m.time(values, uCreatedAt); err != nil {
		return err
	}
	if u.LastActiveAt, err = m.time(values, uLastActiveAt); err != nil {
		return err
	}
	u.DeactivatedAt, err = m.time(values, uDeactivatedAt)
	return err
}

// Fingerprint identifies this mapping of this users query, as
// Mapper.Fingerprint does for groups.
func (m *UserMapper) Fingerprint(query string, extra ...string) string {
	return m.fingerprint(usersMappingVersion, query, extra)
}

// UserHash is a content hash of a user, as Hash is of a group: 16 raw bytes
// of a SHA-256 over its fields, length-prefixed one by one.
func UserHash(u cometchat.User) string {
	var arr [512]byte
	b := arr[:0]
	b = appendStr(b, u.UID)
	b = appendStr(b, u.Name)
	b = appendStr(b, u.Avatar)
	b = appendStr(b, u.Link)
	b = appendStr(b, u.Role)
	b = appendStr(b, string(u.Metadata))
	b = appendList(b, u.Tags)
	b = binary.AppendVarint(b, u.CreatedAt)
	b = binary.AppendVarint(b, u.LastActiveAt)
	b = binary.AppendVarint(b, u.DeactivatedAt)
	sum := sha256.Sum256(b)
	return string(sum[:16])
}

// UserPresent returns the User* bits of the optional fields that u carries,
// as Present does for a group.
func UserPresent(u cometchat.User) uint32 {
	var p uint32
	set := func(bit uint32, has bool) {
		if has {
			p |= bit
		}
	}
	set(UserAvatar, u.Avatar != "")
	set(UserLink, u.Link != "")
	set(UserRole, u.Role != "")
	set(UserMetadata, len(u.Metadata) > 0)
	set(UserTags, len(u.Tags) > 0)
	set(UserCreatedAt, u.CreatedAt != 0)
	set(UserLastActiveAt, u.LastActiveAt != 0)
	set(UserDeactivatedAt, u.DeactivatedAt != 0)
	return p
}

// appendStr appends s length-prefixed, for the content hashes.
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendList appends a counted list of length-prefixed strings.
func appendList(b []byte, l []string) []byte {
	b = binary.AppendVarint(b, int64(len(l)))
	for _, s := range l {
		b = appendStr(b, s)
	}
	return b
}
