package mapping

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
)

func mustNewMembers(tb testing.TB, cols []string, cursor, tiebreaker string) *MemberMapper {
	tb.Helper()
	m, err := NewMembers(cols, cursor, tiebreaker, nil)
	if err != nil {
		tb.Fatalf("NewMembers(%q): %v", cols, err)
	}
	return m
}

func memberJSON(tb testing.TB, mb cometchat.Member) string {
	tb.Helper()
	b, err := json.Marshal(mb)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func TestMapMember(t *testing.T) {
	tests := []struct {
		name string
		row  row
		want string // JSON of the import object
	}{
		{"required only: a participant", r("guid", []byte("g1"), "uid", []byte("u1")),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant"}`},
		{"ids trimmed and lowercased, and so the member id", r("guid", " Team-A ", "uid", "Ann_1 "),
			`{"memberId":"team-a_member_ann_1","guid":"team-a","uid":"ann_1","scope":"participant"}`},
		{"integer ids", r("guid", int64(7), "uid", uint64(42)),
			`{"memberId":"7_member_42","guid":"7","uid":"42","scope":"participant"}`},
		{"admin", r("guid", "g1", "uid", "u1", "scope", []byte("admin")),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"admin"}`},
		{"moderator, any case and spacing", r("guid", "g1", "uid", "u1", "scope", " Moderator "),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"moderator"}`},
		{"participant", r("guid", "g1", "uid", "u1", "scope", "participant"),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant"}`},
		{"NULL scope is participant", r("guid", "g1", "uid", "u1", "scope", nil),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant"}`},
		{"empty scope is participant", r("guid", "g1", "uid", "u1", "scope", []byte(" ")),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant"}`},
		{"joined_at", r("guid", "g1", "uid", "u1", "joined_at", []byte("2023-01-11 07:16:59")),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant","joinedAt":1673421419}`},
		{"NULL joined_at is omitted", r("guid", "g1", "uid", "u1", "joined_at", nil),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant"}`},
		{"cursor columns are not sent", r("id", int64(1), "updated_at", "2024-01-01 00:00:00", "guid", "g1", "uid", "u1"),
			`{"memberId":"g1_member_u1","guid":"g1","uid":"u1","scope":"participant"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cursor, tiebreaker := "", ""
			if strings.Contains(tt.name, "cursor") {
				cursor, tiebreaker = "updated_at", "id"
			}
			mb, err := mustNewMembers(t, tt.row.cols, cursor, tiebreaker).Map(tt.row.vals)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if got := memberJSON(t, mb); got != tt.want {
				t.Errorf("Map:\n got %s\nwant %s", got, tt.want)
			}
			if mb.MemberID != cometchat.MemberID(mb.GUID, mb.UID) {
				t.Errorf("MemberID = %q, want cometchat.MemberID = %q", mb.MemberID, cometchat.MemberID(mb.GUID, mb.UID))
			}
		})
	}
}

func TestMapMemberRowErrors(t *testing.T) {
	tests := []struct {
		name  string
		row   row
		field string
		key   bool // whether the error keeps the member id
		want  string
	}{
		{"guid NULL", r("guid", nil, "uid", "u1"), "guid", false, "guid: is NULL; every membership needs a guid"},
		{"guid with a space", r("guid", "team a", "uid", "u1"), "guid", false,
			`guid: may only contain a-z, 0-9, - and _, got "team a"`},
		{"uid NULL (a LEFT JOIN without a user)", r("guid", "g1", "uid", nil), "uid", false,
			"uid: is NULL; every membership needs a uid"},
		{"uid over 100", r("guid", "g1", "uid", strings.Repeat("u", 101)), "uid", false,
			"uid: must be 1 to 100 characters, got 101"},
		{"unknown scope", r("guid", "g1", "uid", "u1", "scope", []byte("owner")), "scope", true,
			`scope: must be admin, moderator or participant, got "owner"`},
		{"a numeric role code as scope", r("guid", "g1", "uid", "u1", "scope", int64(2)), "scope", true,
			`scope: must be admin, moderator or participant, got "2"`},
		{"scope of an unsupported type", r("guid", "g1", "uid", "u1", "scope", true), "scope", true,
			"scope: cannot use a value of type bool as text; select it as a string"},
		{"joined_at unparsable", r("guid", "g1", "uid", "u1", "joined_at", "yesterday"), "joined_at", true,
			`joined_at: cannot convert "yesterday" to a UNIX time: want a DATETIME or TIMESTAMP (2006-01-02 15:04:05), RFC 3339 text or an integer`},
		{"joined_at 12 digits", r("guid", "g1", "uid", "u1", "joined_at", int64(123456789012)), "joined_at", true,
			"joined_at: 123456789012 is not a UNIX time in seconds (up to 10 digits), milliseconds (13) or microseconds (16)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mb, err := mustNewMembers(t, tt.row.cols, "", "").Map(tt.row.vals)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Map: got %v (%T), want a *FieldError", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("Map error:\n got %s\nwant %s", err, tt.want)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q", fe.Field, tt.field)
			}
			var want cometchat.Member
			if tt.key {
				want = cometchat.Member{MemberID: "g1_member_u1", GUID: "g1", UID: "u1"}
			}
			if got := memberJSON(t, mb); got != memberJSON(t, want) {
				t.Errorf("Member on error = %s, want %s: the ids only, and only when both are valid", got, memberJSON(t, want))
			}
		})
	}
}

func TestNewMembersColumnErrors(t *testing.T) {
	tests := []struct {
		name       string
		cols       []string
		cursor     string
		tiebreaker string
		columns    []string
		want       string
	}{
		{"role instead of scope", []string{"id", "updated_at", "guid", "uid", "role"}, "updated_at", "id", []string{"role"},
			`members.query: column "role" is not an import field (known: guid, uid, scope, joined_at; the cursor column "updated_at" and the tiebreaker "id" are also allowed)`},
		{"missing both ids", []string{"group_id", "user_uid", "scope"}, "", "", []string{"group_id", "user_uid", "guid", "uid"},
			`members.query: 4 problems with the query's columns:
  column "group_id" is not an import field
  column "user_uid" is not an import field
  required column "guid" is missing
  required column "uid" is missing
  known columns: guid, uid, scope, joined_at`},
		{"cursor column missing", []string{"guid", "uid", "id"}, "updated_at", "id", []string{"updated_at"},
			`members.query: cursor column "updated_at" (members.cursor.column) is missing from the query's columns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMembers(tt.cols, tt.cursor, tt.tiebreaker, nil)
			if err == nil {
				t.Fatalf("NewMembers: got %v, want an error", m)
			}
			if err.Error() != tt.want {
				t.Errorf("NewMembers error:\n got %s\nwant %s", err, tt.want)
			}
			var got []string
			for _, ce := range columnErrors(t, err) {
				got = append(got, ce.Column)
			}
			if strings.Join(got, ",") != strings.Join(tt.columns, ",") {
				t.Errorf("problems name columns %q, want %q", got, tt.columns)
			}
		})
	}
}

func TestMemberKeyColumns(t *testing.T) {
	m := mustNewMembers(t, []string{"id", "updated_at", "GUID", "Uid"}, "updated_at", "id")
	if m.GUIDColumn() != "GUID" || m.UIDColumn() != "Uid" {
		t.Errorf("GUIDColumn, UIDColumn = %q, %q; want the columns as the query names them, GUID and Uid", m.GUIDColumn(), m.UIDColumn())
	}
}

func TestMemberHash(t *testing.T) {
	mb := cometchat.Member{MemberID: "g1_member_u1", GUID: "g1", UID: "u1", Scope: "participant", JoinedAt: 1}
	h := MemberHash(mb)
	if len(h) != 16 {
		t.Fatalf("MemberHash = %q, want 16 bytes", h)
	}
	if MemberHash(mb) != h {
		t.Error("equal memberships hash differently")
	}
	changed := map[string]func(*cometchat.Member){
		"scope":     func(m *cometchat.Member) { m.Scope = "admin" },
		"joined at": func(m *cometchat.Member) { m.JoinedAt = 2 },
		"guid/uid boundary": func(m *cometchat.Member) {
			m.GUID, m.UID = "g1_member_u", "1"
		},
	}
	for name, change := range changed {
		t.Run(name, func(t *testing.T) {
			c := mb
			change(&c)
			if MemberHash(c) == h {
				t.Errorf("hash did not change")
			}
		})
	}
}

func TestMemberPresent(t *testing.T) {
	if got := MemberPresent(cometchat.Member{GUID: "g", UID: "u", Scope: "admin"}); got != 0 {
		t.Errorf("MemberPresent without joinedAt = %b, want 0", got)
	}
	if got := MemberPresent(cometchat.Member{JoinedAt: 1}); got != MemberJoinedAt {
		t.Errorf("MemberPresent with joinedAt = %b, want %b", got, MemberJoinedAt)
	}
}

func TestMemberFingerprint(t *testing.T) {
	cols := []string{"guid", "uid", "updated_at", "id"}
	const q = "SELECT guid, uid, updated_at, id FROM memberships"
	m := mustNewMembers(t, cols, "updated_at", "id")
	fp := m.Fingerprint(q, "via=import")
	if m.Fingerprint(q, "via=rest") == fp {
		t.Error("fingerprint did not change with the extra settings")
	}
	if again := mustNewMembers(t, cols, "updated_at", "id").Fingerprint(q, "via=import"); again != fp {
		t.Errorf("same query and columns: fingerprint %s, then %s", fp, again)
	}
}

// BenchmarkMapMember maps a typical MySQL members row.
func BenchmarkMapMember(b *testing.B) {
	cols := []string{"id", "updated_at", "guid", "uid", "scope", "joined_at"}
	m, err := NewMembers(cols, "updated_at", "id", nil)
	if err != nil {
		b.Fatal(err)
	}
	values := []any{[]byte("12345"), []byte("2024-05-01 10:00:00.123456"), []byte("team-12345"), []byte("user-42"),
		[]byte("moderator"), []byte("2023-01-11 07:16:59")}
	b.ReportAllocs()
	for b.Loop() {
		mb, err := m.Map(values)
		if err != nil {
			b.Fatal(err)
		}
		_ = MemberHash(mb)
	}
}
