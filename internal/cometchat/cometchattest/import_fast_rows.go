package cometchattest

import (
	"slices"
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// The fast path's rows of POST /data_import/users and /data_import/members;
// import_fast.go says how the fast path stays honest.

// user reads the fields of a user object, which a user import row and a
// group's groupOwnerDetails share: bit i of seen is userImportFields[i].
// The uid is returned as its bytes, a string without escapes, and not set
// in u.
func (s *scanner) user() (u cometchat.User, uid []byte, seen int, ok bool) {
	seen, ok = s.object(func(name []byte) (bit int, ok bool) {
		i := slices.Index(userImportFields, string(name))
		switch i {
		case 0:
			uid, ok = s.plainStr()
		case 1:
			u.Name, ok = s.str()
		case 2:
			u.Avatar, ok = s.optStr()
		case 3:
			u.Link, ok = s.optStr()
		case 4:
			u.Role, ok = s.optStr()
		case 5:
			u.CreatedAt, ok = s.unixSeconds()
		case 6:
			u.LastActiveAt, ok = s.unixSeconds()
		case 7:
			u.Metadata, ok = s.metadata()
		case 8:
			u.Tags, ok = s.tags()
		case 9:
			u.DeactivatedAt, ok = s.unixSeconds()
		default:
			return 0, false
		}
		return 1 << i, ok
	})
	return u, uid, seen, ok
}

// importUser reads one row as decodeImportUser stores it, when that
// accepts it.
func (s *scanner) importUser(key string) (cometchat.User, bool) {
	u, uid, seen, ok := s.user()
	// uid and name are required; str refuses a null, which the reference
	// path refuses too.
	const required = 1<<0 | 1<<1
	if !ok || seen&required != required || string(uid) != key {
		return u, false
	}
	u.UID = strings.ToLower(key)
	if checkID("uid", u.UID) != nil || checkName(u.Name) != nil {
		return u, false
	}
	return u, true
}

// memberInfix joins a member id's guid and uid.
const memberInfix = "_member_"

// importMember reads one row as decodeImportMember stores it, when that
// accepts it; now is the server's time, which joinedAt may not pass.
func (s *scanner) importMember(key string, now int64) (cometchat.Member, bool) {
	var m cometchat.Member
	var id, guid, uid []byte
	seen, ok := s.object(func(name []byte) (bit int, ok bool) {
		i := slices.Index(memberImportFields, string(name))
		switch i {
		case 0:
			id, ok = s.plainStr()
		case 1:
			guid, ok = s.plainStr()
		case 2:
			uid, ok = s.plainStr()
		case 3:
			m.Scope, ok = s.scope()
		case 4:
			ok = s.notTrue() // isBanned: bans are not modelled
		case 5:
			m.JoinedAt, ok = s.unixSeconds()
		case 6, 7:
			ok = s.null() // groupDetails, userDetails: not modelled
		default:
			return 0, false
		}
		return 1 << i, ok
	})
	const required = 1<<0 | 1<<1 | 1<<2 // memberId, guid, uid
	if !ok || seen&required != required || string(id) != key || m.JoinedAt > now {
		return m, false
	}
	// The id is ASCII, so lowercasing it lowercases its guid and uid: the
	// stored ids are slices of the stored member id, not copies.
	m.MemberID = strings.ToLower(key)
	n := len(guid)
	if len(m.MemberID) != n+len(memberInfix)+len(uid) || m.MemberID[n:n+len(memberInfix)] != memberInfix {
		return m, false
	}
	m.GUID, m.UID = m.MemberID[:n], m.MemberID[n+len(memberInfix):]
	if !lowerEqual(m.GUID, guid) || !lowerEqual(m.UID, uid) {
		return m, false
	}
	if checkID("guid", m.GUID) != nil || checkID("uid", m.UID) != nil {
		return m, false
	}
	if m.Scope == "" {
		m.Scope = cometchat.ScopeParticipant
	}
	return m, true
}

// scope reads null or a scope the reference path accepts; "" is the
// default, participant.
func (s *scanner) scope() (string, bool) {
	if s.null() {
		return "", true
	}
	return s.oneOf("", cometchat.ScopeAdmin, cometchat.ScopeModerator, cometchat.ScopeParticipant)
}

// lowerEqual reports whether lower is ascii lowercased, ASCII-wise as
// strings.ToLower lowercases ASCII.
func lowerEqual(lower string, ascii []byte) bool {
	if len(lower) != len(ascii) {
		return false
	}
	for i, c := range ascii {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if lower[i] != c {
			return false
		}
	}
	return true
}
