package cometchattest

import (
	"encoding/json"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// The strings of a userRecord, in the order they are packed.
const (
	strUID = iota
	strName
	strAvatar
	strLink
	strRole
	strStatusMessage
	strMetadata
	numUserStrings
)

// userRecord is one stored user, packed: its strings end to end in one
// string (the tags last, each after its length in 4 bytes), which also
// serves as the key of e.users. A million users are then two heap objects
// each for the garbage collector to mark, this record and its strings,
// rather than one a string and a tag (docs/PERFORMANCE.md). The user is
// deactivated when deactivatedAt is set.
type userRecord struct {
	strs string
	ends [numUserStrings]uint32 // where each string of strs ends

	createdAt, lastActiveAt, deactivatedAt int64 // as imported or updated
	created                                int64 // the server's creation time, answered when the import sent none
	updated                                int64
}

// newUserRecord packs u (whose uid the caller has lowercased).
func newUserRecord(u cometchat.User, created, updated int64) *userRecord {
	rec := &userRecord{created: created, updated: updated}
	rec.set(u, "")
	return rec
}

// set packs u and statusMessage into rec.
func (rec *userRecord) set(u cometchat.User, statusMessage string) {
	fixed := [numUserStrings - 1]string{u.UID, u.Name, u.Avatar, u.Link, u.Role, statusMessage}
	n := len(u.Metadata)
	for _, s := range fixed {
		n += len(s)
	}
	for _, tag := range u.Tags {
		n += 4 + len(tag)
	}
	var b strings.Builder
	b.Grow(n)
	for i, s := range fixed {
		b.WriteString(s)
		rec.ends[i] = uint32(b.Len())
	}
	b.Write(u.Metadata)
	rec.ends[strMetadata] = uint32(b.Len())
	for _, tag := range u.Tags {
		l := len(tag)
		b.Write([]byte{byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)})
		b.WriteString(tag)
	}
	rec.strs = b.String()
	rec.createdAt, rec.lastActiveAt, rec.deactivatedAt = u.CreatedAt, u.LastActiveAt, u.DeactivatedAt
}

// str returns the i'th string of rec.
func (rec *userRecord) str(i int) string {
	start := uint32(0)
	if i > 0 {
		start = rec.ends[i-1]
	}
	return rec.strs[start:rec.ends[i]]
}

func (rec *userRecord) uid() string { return rec.str(strUID) }

func (rec *userRecord) active() bool { return rec.deactivatedAt == 0 }

// user unpacks rec into a user of the caller's own: empty metadata and
// tags are nil.
func (rec *userRecord) user() cometchat.User {
	u := cometchat.User{UID: rec.uid(), Name: rec.str(strName), Avatar: rec.str(strAvatar), Link: rec.str(strLink),
		Role: rec.str(strRole), CreatedAt: rec.createdAt, LastActiveAt: rec.lastActiveAt, DeactivatedAt: rec.deactivatedAt}
	if md := rec.str(strMetadata); md != "" {
		u.Metadata = json.RawMessage(md)
	}
	for rest := rec.strs[rec.ends[strMetadata]:]; rest != ""; {
		l := int(rest[0])<<24 | int(rest[1])<<16 | int(rest[2])<<8 | int(rest[3])
		u.Tags = append(u.Tags, rest[4:4+l])
		rest = rest[4+l:]
	}
	return u
}

// view renders rec; the caller holds e.mu.
func (rec *userRecord) view() userView {
	u := rec.user()
	v := userView{UID: u.UID, Name: u.Name, Avatar: u.Avatar, Link: u.Link, Role: u.Role,
		StatusMessage: rec.str(strStatusMessage), Metadata: u.Metadata, Tags: u.Tags, Status: "offline",
		CreatedAt: u.CreatedAt, UpdatedAt: rec.updated, LastActiveAt: u.LastActiveAt, DeactivatedAt: u.DeactivatedAt}
	if v.CreatedAt == 0 {
		v.CreatedAt = rec.created
	}
	if v.Role == "" {
		v.Role = "default"
	}
	return v
}
