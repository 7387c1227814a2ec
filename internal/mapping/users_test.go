package mapping

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

func mustNewUsers(tb testing.TB, cols []string, cursor, tiebreaker string) *UserMapper {
	tb.Helper()
	m, err := NewUsers(cols, cursor, tiebreaker, nil)
	if err != nil {
		tb.Fatalf("NewUsers(%q): %v", cols, err)
	}
	return m
}

func userJSON(tb testing.TB, u cometchat.User) string {
	tb.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// userBase is the two required columns, as the MySQL driver returns them.
func userBase(extra ...any) row {
	return r(append([]any{"uid", []byte("u1"), "name", []byte("Ann")}, extra...)...)
}

func TestMapUser(t *testing.T) {
	tests := []struct {
		name string
		row  row
		want string // JSON of the import object
	}{
		{"required only", userBase(), `{"uid":"u1","name":"Ann"}`},
		{"uid trimmed and lowercased", r("uid", " Ann-Example_1 ", "name", "Ann"), `{"uid":"ann-example_1","name":"Ann"}`},
		{"integer uid becomes decimal text", r("uid", int64(42), "name", "Ann"), `{"uid":"42","name":"Ann"}`},
		{"every field",
			userBase("avatar", []byte("https://cdn.example.com/u1.png"), "link", "https://example.com/u1", "role", "default",
				"metadata", []byte(`{ "email": "ann@example.com" }`), "tags", "vip, emea",
				"created_at", []byte("2023-01-11 07:16:59"), "last_active_at", int64(1673421420000), "deactivated_at", time.Unix(ts, 0)),
			`{"uid":"u1","name":"Ann","avatar":"https://cdn.example.com/u1.png","link":"https://example.com/u1","role":"default",` +
				`"metadata":{"email":"ann@example.com"},"tags":["vip","emea"],"createdAt":1673421419,"lastActiveAt":1673421420,"deactivatedAt":1673421419}`},
		{"NULLs are omitted", userBase("avatar", nil, "link", nil, "role", nil, "metadata", nil, "tags", nil,
			"created_at", nil, "last_active_at", nil, "deactivated_at", nil), `{"uid":"u1","name":"Ann"}`},
		{"empty text is omitted", userBase("avatar", "", "link", []byte(""), "metadata", " ", "tags", " , "),
			`{"uid":"u1","name":"Ann"}`},
		{"JSON tags", userBase("tags", `["a", " b "]`), `{"uid":"u1","name":"Ann","tags":["a","b"]}`},
		{"avatar of 3000 characters", userBase("avatar", strings.Repeat("a", 3000)),
			`{"uid":"u1","name":"Ann","avatar":"` + strings.Repeat("a", 3000) + `"}`},
		{"cursor columns are not sent", userBase("updated_at", time.Now(), "id", int64(7)), `{"uid":"u1","name":"Ann"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cursor, tiebreaker := "", ""
			if strings.Contains(tt.name, "cursor") {
				cursor, tiebreaker = "updated_at", "id"
			}
			u, err := mustNewUsers(t, tt.row.cols, cursor, tiebreaker).Map(tt.row.vals)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if got := userJSON(t, u); got != tt.want {
				t.Errorf("Map:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMapUserRowErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	bigMeta := `{"k":"` + long(5120-7) + `"}` // 5121 bytes
	tests := []struct {
		name  string
		row   row
		field string
		want  string
	}{
		{"uid NULL", r("uid", nil, "name", "Ann"), "uid", "uid: is NULL; every user needs a uid"},
		{"uid empty", r("uid", " ", "name", "Ann"), "uid", "uid: must be 1 to 100 characters, got 0"},
		{"uid over 100", r("uid", long(101), "name", "Ann"), "uid", "uid: must be 1 to 100 characters, got 101"},
		{"uid with an @", r("uid", "ann@example.com", "name", "Ann"), "uid",
			`uid: may only contain a-z, 0-9, - and _, got "ann@example.com"`},
		{"uid of an unsupported type", r("uid", true, "name", "Ann"), "uid",
			"uid: cannot use a value of type bool as text; select it as a string"},
		{"name NULL", r("uid", "u1", "name", nil), "name", "name: is NULL; every user needs a name"},
		{"name empty", r("uid", "u1", "name", ""), "name", "name: must be 1 to 100 characters, got 0"},
		{"name over 100 characters", r("uid", "u1", "name", strings.Repeat("ß", 101)), "name",
			"name: must be 1 to 100 characters, got 101"},
		{"avatar over 3000", userBase("avatar", long(3001)), "avatar", "avatar: must be at most 3000 characters, got 3001"},
		{"link over 3000", userBase("link", long(3001)), "link", "link: must be at most 3000 characters, got 3001"},
		{"role over 100", userBase("role", long(101)), "role", "role: must be at most 100 characters, got 101"},
		{"metadata an array", userBase("metadata", "[1]"), "metadata", "metadata: must be a JSON object, got a JSON array"},
		{"metadata over 5 KB", userBase("metadata", bigMeta), "metadata",
			"metadata: must be at most 5120 bytes as compact JSON, got 5121"},
		{"tags over 25", userBase("tags", strings.Repeat("t,", 26)), "tags", "tags: must be at most 25 tags, got 26"},
		{"a tag over 100", userBase("tags", "ok,"+long(101)), "tags", "tags: tag 2 must be at most 100 characters, got 101"},
		{"created_at unparsable", userBase("created_at", "soon"), "created_at",
			`created_at: cannot convert "soon" to a UNIX time: want a DATETIME or TIMESTAMP (2006-01-02 15:04:05), RFC 3339 text or an integer`},
		{"last_active_at 11 digits", userBase("last_active_at", int64(16734214190)), "last_active_at",
			"last_active_at: 16734214190 is not a UNIX time in seconds (up to 10 digits), milliseconds (13) or microseconds (16)"},
		{"deactivated_at negative", userBase("deactivated_at", -1), "deactivated_at",
			"deactivated_at: -1 is before 1970 (a negative UNIX time)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNewUsers(t, tt.row.cols, "", "")
			u, err := m.Map(tt.row.vals)
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
			want := cometchat.User{UID: "u1"}
			if tt.field == "uid" {
				want.UID = ""
			}
			if got := userJSON(t, u); got != userJSON(t, want) {
				t.Errorf("User on error = %s, want only the uid, so the row error can be keyed by it", got)
			}
		})
	}
}

func TestNewUsersColumnErrors(t *testing.T) {
	tests := []struct {
		name       string
		cols       []string
		cursor     string
		tiebreaker string
		columns    []string
		want       string
	}{
		{"unknown column", []string{"id", "uid", "name", "email", "updated_at"}, "updated_at", "id", []string{"email"},
			`users.query: column "email" is not an import field (known: uid, name, avatar, link, role, metadata, tags, created_at, last_active_at, deactivated_at; the cursor column "updated_at" and the tiebreaker "id" are also allowed)`},
		{"missing uid", []string{"name"}, "", "", []string{"uid"}, `users.query: required column "uid" is missing`},
		{"a groups query given as the users query", []string{"guid", "name", "type", "updated_at"}, "updated_at", "id",
			[]string{"guid", "type", "uid", "id"},
			`users.query: 4 problems with the query's columns:
  column "guid" is not an import field
  column "type" is not an import field
  required column "uid" is missing
  tiebreaker column "id" (users.cursor.tiebreaker) is missing from the query's columns
  known columns: uid, name, avatar, link, role, metadata, tags, created_at, last_active_at, deactivated_at; the cursor column "updated_at" and the tiebreaker "id" are also allowed`},
		{"duplicate and missing", []string{"UID", "uid", "avatar", "Avatar"}, "updated_at", "", []string{"uid", "Avatar", "name", "updated_at"},
			`users.query: 4 problems with the query's columns:
  column "uid" appears twice (columns 1 and 2)
  column "Avatar" appears twice (columns 3 and 4)
  required column "name" is missing
  cursor column "updated_at" (users.cursor.column) is missing from the query's columns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewUsers(tt.cols, tt.cursor, tt.tiebreaker, nil)
			if err == nil {
				t.Fatalf("NewUsers: got %v, want an error", m)
			}
			if err.Error() != tt.want {
				t.Errorf("NewUsers error:\n got %s\nwant %s", err, tt.want)
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

// columnErrors returns the problems of a constructor's error, one or many.
func columnErrors(tb testing.TB, err error) []*ColumnError {
	tb.Helper()
	var all ColumnErrors
	if errors.As(err, &all) {
		return all
	}
	var one *ColumnError
	if !errors.As(err, &one) {
		tb.Fatalf("got %v (%T), want a *ColumnError or ColumnErrors", err, err)
	}
	return []*ColumnError{one}
}

func TestUIDColumn(t *testing.T) {
	m := mustNewUsers(t, []string{"id", "updated_at", " UID ", "name"}, "updated_at", "id")
	if got := m.UIDColumn(); got != " UID " {
		t.Errorf("UIDColumn = %q, want the column as the query names it, %q", got, " UID ")
	}
}

func TestUserHash(t *testing.T) {
	u := cometchat.User{UID: "u1", Name: "Ann", Avatar: "https://a/u1.png", Tags: []string{"a", "b"},
		Metadata: json.RawMessage(`{"x":1}`), CreatedAt: 1}
	h := UserHash(u)
	if len(h) != 16 {
		t.Fatalf("UserHash = %q, want 16 bytes", h)
	}
	same := u
	same.Tags = []string{"a", "b"}
	if UserHash(same) != h {
		t.Error("equal users hash differently")
	}
	changed := map[string]func(*cometchat.User){
		"name":           func(u *cometchat.User) { u.Name = "Bob" },
		"avatar unset":   func(u *cometchat.User) { u.Avatar = "" },
		"link":           func(u *cometchat.User) { u.Link = "https://a" },
		"role":           func(u *cometchat.User) { u.Role = "default" },
		"metadata":       func(u *cometchat.User) { u.Metadata = json.RawMessage(`{"x":2}`) },
		"tag order":      func(u *cometchat.User) { u.Tags = []string{"b", "a"} },
		"tags joined":    func(u *cometchat.User) { u.Tags = []string{"ab"} },
		"created at":     func(u *cometchat.User) { u.CreatedAt = 2 },
		"last active":    func(u *cometchat.User) { u.LastActiveAt = 1 },
		"deactivated at": func(u *cometchat.User) { u.DeactivatedAt = 1 },
		"avatar/link":    func(u *cometchat.User) { u.Avatar, u.Link = "", "https://a/u1.png" },
		"uid/name":       func(u *cometchat.User) { u.UID, u.Name = "u1A", "nn" },
	}
	for name, change := range changed {
		t.Run(name, func(t *testing.T) {
			c := u
			change(&c)
			if UserHash(c) == h {
				t.Errorf("hash did not change")
			}
		})
	}
}

func TestUserHashOfMappedRowsIsStable(t *testing.T) {
	m := mustNewUsers(t, []string{"uid", "name", "metadata", "tags"}, "", "")
	a, err := m.Map([]any{[]byte("U1"), []byte("Ann"), []byte(`{ "x": 1 }`), []byte("a, b")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Map([]any{"u1", "Ann", `{"x":1}`, `["a","b"]`})
	if err != nil {
		t.Fatal(err)
	}
	if UserHash(a) != UserHash(b) {
		t.Errorf("the same user read two ways hashes differently: %s vs %s", userJSON(t, a), userJSON(t, b))
	}
}

func TestUserPresent(t *testing.T) {
	tests := []struct {
		name string
		u    cometchat.User
		want uint32
	}{
		{"required only", cometchat.User{UID: "u", Name: "n"}, 0},
		{"avatar", cometchat.User{Avatar: "a"}, UserAvatar},
		{"link", cometchat.User{Link: "l"}, UserLink},
		{"role", cometchat.User{Role: "r"}, UserRole},
		{"metadata", cometchat.User{Metadata: json.RawMessage(`{}`)}, UserMetadata},
		{"tags", cometchat.User{Tags: []string{"a"}}, UserTags},
		{"createdAt", cometchat.User{CreatedAt: 1}, UserCreatedAt},
		{"lastActiveAt", cometchat.User{LastActiveAt: 1}, UserLastActiveAt},
		{"deactivatedAt", cometchat.User{DeactivatedAt: 1}, UserDeactivatedAt},
		{"all", cometchat.User{Avatar: "a", Link: "l", Role: "r", Metadata: json.RawMessage(`{}`), Tags: []string{"a"},
			CreatedAt: 1, LastActiveAt: 1, DeactivatedAt: 1},
			UserAvatar | UserLink | UserRole | UserMetadata | UserTags | UserCreatedAt | UserLastActiveAt | UserDeactivatedAt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UserPresent(tt.u); got != tt.want {
				t.Errorf("UserPresent = %08b, want %08b", got, tt.want)
			}
		})
	}
}

func TestUserFingerprint(t *testing.T) {
	cols := []string{"uid", "name", "updated_at", "id"}
	const q = "SELECT uid, name, updated_at, id FROM users"
	m := mustNewUsers(t, cols, "updated_at", "id")
	fp := m.Fingerprint(q, "updated_at", "id")
	if again := mustNewUsers(t, cols, "updated_at", "id").Fingerprint(q, "updated_at", "id"); again != fp {
		t.Errorf("same query and columns: fingerprint %s, then %s", fp, again)
	}
	withAvatar := mustNewUsers(t, []string{"uid", "name", "avatar", "updated_at", "id"}, "updated_at", "id")
	for name, other := range map[string]string{
		"query changed":   m.Fingerprint(q+" WHERE active", "updated_at", "id"),
		"columns changed": withAvatar.Fingerprint(q, "updated_at", "id"),
		"extra changed":   m.Fingerprint(q, "created_at", "id"),
	} {
		if other == fp {
			t.Errorf("%s: fingerprint did not change", name)
		}
	}
}

// BenchmarkMapUser maps a typical MySQL users row.
func BenchmarkMapUser(b *testing.B) {
	cols := []string{"id", "updated_at", "uid", "name", "avatar", "link", "metadata", "tags", "created_at"}
	m, err := NewUsers(cols, "updated_at", "id", time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	values := []any{[]byte("12345"), []byte("2024-05-01 10:00:00.123456"), []byte("user-12345"), []byte("Ann Example"),
		[]byte("https://cdn.example.com/users/12345.png"), []byte("https://example.com/ann"),
		[]byte(`{"email": "ann@example.com", "plan": "pro"}`), []byte("sales, emea"), []byte("2023-01-11 07:16:59")}
	b.ReportAllocs()
	for b.Loop() {
		u, err := m.Map(values)
		if err != nil {
			b.Fatal(err)
		}
		_ = UserHash(u)
	}
}
