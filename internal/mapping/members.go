package mapping

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// membersMappingVersion is part of every members fingerprint; bump it
// whenever MemberMapper.Map's output for the same row changes.
const membersMappingVersion = "cometsync-members-mapping-1"

// The member import fields; their values index a MemberMapper's binding.
const (
	mGUID field = iota
	mUID
	mScope
	mJoinedAt
	numMemberFields
)

// memberFieldNames are the column names of the member import fields, in
// field order.
var memberFieldNames = [numMemberFields]string{
	mGUID:     "guid",
	mUID:      "uid",
	mScope:    "scope",
	mJoinedAt: "joined_at",
}

var memberSchema = schema{section: "members", names: memberFieldNames[:], required: []field{mGUID, mUID}}

// MemberJoinedAt is the bit of MemberPresent's mask for a membership that
// carries its joinedAt. The scope is always sent (participant by default).
const MemberJoinedAt uint32 = 1

// MemberMapper converts rows of the members query into cometchat.Member. It
// is safe for concurrent use: Map only reads it.
type MemberMapper struct {
	binding
}

// NewMembers checks the members query's result columns once, at start-up,
// and returns a MemberMapper for rows with exactly these columns in this
// order. The columns are guid and uid (required), scope and joined_at; the
// rest is as for New, with the problems naming members.query and
// members.cursor.
func NewMembers(columns []string, cursorColumn, tiebreakerColumn string, loc *time.Location) (*MemberMapper, error) {
	b, err := memberSchema.bind(columns, cursorColumn, tiebreakerColumn, loc, nil)
	if err != nil {
		return nil, err
	}
	return &MemberMapper{binding: *b}, nil
}

// GUIDColumn is the result column the membership's guid is mapped from, as
// the query names it.
func (m *MemberMapper) GUIDColumn() string { return m.column(mGUID) }

// UIDColumn is the result column the membership's uid is mapped from.
func (m *MemberMapper) UIDColumn() string { return m.column(mUID) }

// Map converts one row, values aligned with Columns, into a membership
// keyed by cometchat.MemberID. A NULL or empty scope is participant; scopes
// are read case-insensitively. Errors are *FieldError, except for a row
// whose length does not match the columns; on error the Member holds only
// its GUID, UID and MemberID, when both ids were valid.
func (m *MemberMapper) Map(values []any) (cometchat.Member, error) {
	if err := m.checkLen(values); err != nil {
		return cometchat.Member{}, err
	}
	var mb cometchat.Member
	if err := m.mapRow(values, &mb); err != nil {
		if mb.MemberID == "" {
			return cometchat.Member{}, err
		}
		return cometchat.Member{MemberID: mb.MemberID, GUID: mb.GUID, UID: mb.UID}, err
	}
	return mb, nil
}

func (m *MemberMapper) mapRow(values []any, mb *cometchat.Member) error {
	guid, err := mapID(values[m.index[mGUID]], "guid", "membership")
	if err != nil {
		return err
	}
	uid, err := mapID(values[m.index[mUID]], "uid", "membership")
	if err != nil {
		return err
	}
	mb.GUID, mb.UID, mb.MemberID = guid, uid, cometchat.MemberID(guid, uid)
	if mb.Scope, err = m.scope(values); err != nil {
		return err
	}
	mb.JoinedAt, err = m.time(values, mJoinedAt)
	return err
}

// scope maps the scope column: participant when absent, NULL or empty.
func (m *MemberMapper) scope(values []any) (string, error) {
	i := m.index[mScope]
	if i < 0 {
		return cometchat.ScopeParticipant, nil
	}
	s, _, err := toText(values[i], "scope")
	if err != nil {
		return "", err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", cometchat.ScopeParticipant:
		return cometchat.ScopeParticipant, nil
	case cometchat.ScopeAdmin:
		return cometchat.ScopeAdmin, nil
	case cometchat.ScopeModerator:
		return cometchat.ScopeModerator, nil
	}
	return "", nameErr("scope", "must be admin, moderator or participant, got %q", truncate(s, 40))
}

// Fingerprint identifies this mapping of this members query, as
// Mapper.Fingerprint does for groups.
func (m *MemberMapper) Fingerprint(query string, extra ...string) string {
	return m.fingerprint(membersMappingVersion, query, extra)
}

// MemberHash is a content hash of a membership, as Hash is of a group.
func MemberHash(mb cometchat.Member) string {
	var arr [256]byte
	b := arr[:0]
	b = appendStr(b, mb.MemberID)
	b = appendStr(b, mb.GUID)
	b = appendStr(b, mb.UID)
	b = appendStr(b, mb.Scope)
	b = binary.AppendVarint(b, mb.JoinedAt)
	sum := sha256.Sum256(b)
	return string(sum[:16])
}

// MemberPresent returns the Member* bits of the optional fields that mb
// carries, as Present does for a group.
func MemberPresent(mb cometchat.Member) uint32 {
	if mb.JoinedAt != 0 {
		return MemberJoinedAt
	}
	return 0
}
