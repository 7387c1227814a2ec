package mapping

import (
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// row is one source row as column → value, in the order of its columns.
type row struct {
	cols []string
	vals []any
}

func r(kv ...any) row {
	var x row
	for i := 0; i < len(kv); i += 2 {
		x.cols = append(x.cols, kv[i].(string))
		x.vals = append(x.vals, kv[i+1])
	}
	return x
}

// base is the three required columns, as the MySQL driver returns them.
func base(extra ...any) row {
	return r(append([]any{"guid", []byte("g1"), "name", []byte("Group"), "type", []byte("public")}, extra...)...)
}

func mustNew(tb testing.TB, cols []string, cursor, tiebreaker string, loc *time.Location) *Mapper {
	tb.Helper()
	m, err := New(cols, cursor, tiebreaker, loc)
	if err != nil {
		tb.Fatalf("New(%q): %v", cols, err)
	}
	return m
}

func mustJSON(tb testing.TB, g cometchat.Group) string {
	tb.Helper()
	b, err := json.Marshal(g)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// 2023-01-11T07:16:59Z, the OpenAPI example's createdAt.
const ts = 1673421419

func TestMap(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	tests := []struct {
		name       string
		row        row
		cursor     string
		tiebreaker string
		loc        *time.Location
		want       string // JSON of the import object
	}{
		{"required only, []byte", base(),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"string values from sqlite", r("guid", "g1", "name", "Group", "type", "private"),
			"", "", nil, `{"guid":"g1","name":"Group","type":"private"}`},
		{"sql.RawBytes values", r("guid", sql.RawBytes("g1"), "name", sql.RawBytes("Group"), "type", sql.RawBytes("public")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"integer guid becomes decimal text", r("guid", int64(42), "name", "Group", "type", "public"),
			"", "", nil, `{"guid":"42","name":"Group","type":"public"}`},
		{"unsigned guid", r("guid", uint64(18446744073709551615), "name", "Group", "type", "public"),
			"", "", nil, `{"guid":"18446744073709551615","name":"Group","type":"public"}`},
		{"guid lowercased and trimmed, type lowercased", r("guid", []byte(" Team-A_1 "), "name", "Group", "type", "Public"),
			"", "", nil, `{"guid":"team-a_1","name":"Group","type":"public"}`},
		{"name of 100 multibyte characters", r("guid", "g1", "name", strings.Repeat("é", 100), "type", "public"),
			"", "", nil, `{"guid":"g1","name":"` + strings.Repeat("é", 100) + `","type":"public"}`},
		{"password group", r("guid", "g1", "name", "Group", "type", "password", "password", []byte("s3cret")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"password","password":"s3cret"}`},
		{"icon", base("icon", []byte("https://cdn.example.com/g1.png")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","icon":"https://cdn.example.com/g1.png"}`},
		{"NULLs are omitted", base("password", nil, "icon", nil, "owner", nil, "created_at", nil, "metadata", nil, "tags", nil, "owner_uid", nil),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"empty text is omitted", base("icon", []byte(""), "owner", "", "created_at", []byte(""), "metadata", []byte(" "), "tags", ""),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},

		{"created_at time.Time (parseTime=true)", base("created_at", time.Date(2023, 1, 11, 7, 16, 59, 123, time.UTC)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at time.Time in another zone", base("created_at", time.Date(2023, 1, 11, 12, 46, 59, 0, ist)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at DATETIME text", base("created_at", []byte("2023-01-11 07:16:59")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at DATETIME text with fraction", base("created_at", []byte("2023-01-11 07:16:59.123456")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at DATETIME string", base("created_at", "2023-01-11 07:16:59"),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at DATETIME text read in the mapper's location", base("created_at", []byte("2023-01-11 12:46:59")),
			"", "", ist, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at DATE text", base("created_at", []byte("2023-01-11")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673395200}`},
		{"created_at RFC 3339 Z", base("created_at", "2023-01-11T07:16:59Z"),
			"", "", ist, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at RFC 3339 with offset and fraction", base("created_at", "2023-01-11T12:46:59.5+05:30"),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at sqlite's time text", base("created_at", "2023-01-11 07:16:59.123456789+00:00"),
			"", "", ist, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at MySQL zero date is omitted", base("created_at", []byte("0000-00-00 00:00:00")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"created_at zero time.Time is omitted", base("created_at", time.Time{}),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"created_at integer seconds", base("created_at", int64(ts)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at integer milliseconds", base("created_at", int64(1673421419123)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at integer microseconds", base("created_at", int64(1673421419123456)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at unsigned seconds", base("created_at", uint64(ts)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at whole float", base("created_at", float64(ts)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at digit-only []byte milliseconds", base("created_at", []byte("1673421419000")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"created_at digit-only string seconds", base("created_at", "1673421419"),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},

		{"metadata JSON []byte compacted", base("metadata", []byte("{ \"plan\": \"pro\",\n  \"seats\": [1, 2] }")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","metadata":{"plan":"pro","seats":[1,2]}}`},
		{"metadata text string", base("metadata", `{"a": {"b": null}}`),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","metadata":{"a":{"b":null}}}`},
		{"metadata JSON null is omitted", base("metadata", []byte("null")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"metadata empty object is sent", base("metadata", []byte("{}")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","metadata":{}}`},

		{"comma tags", base("tags", []byte(" sales, emea,, vip ,")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","tags":["sales","emea","vip"]}`},
		{"JSON tags", base("tags", []byte(`[ "sales", " emea ", "" ]`)),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","tags":["sales","emea"]}`},
		{"JSON tags with escapes and commas", base("tags", `["a\"b", "caf\u00e9", "x,y"]`),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","tags":["a\"b","café","x,y"]}`},
		{"PostgreSQL text[] tags", base("tags", `{sales," emea ","a\"b","x,y",NULL,"NULL",""}`),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","tags":["sales","emea","a\"b","x,y","NULL"]}`},
		{"empty PostgreSQL text[] tags are omitted", base("tags", "{}"),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"empty JSON tags are omitted", base("tags", []byte("[]")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"only empty comma tags are omitted", base("tags", []byte(" , ,")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},

		{"owner details present, owner defaults to owner_uid",
			base("owner_uid", []byte("u1"), "owner_name", []byte("Ann"), "owner_avatar", []byte("https://a/u1.png"),
				"owner_link", []byte("https://a/u1"), "owner_role", []byte("admin"), "owner_created_at", []byte("2023-01-11 07:16:59"),
				"owner_last_active_at", int64(1673421420), "owner_metadata", []byte(`{"x": 1}`), "owner_tags", []byte("a,b"),
				"owner_deactivated_at", nil),
			"", "", nil,
			`{"guid":"g1","name":"Group","type":"public","owner":"u1","groupOwnerDetails":{"uid":"u1","name":"Ann","avatar":"https://a/u1.png","link":"https://a/u1","role":"admin","createdAt":1673421419,"lastActiveAt":1673421420,"metadata":{"x":1},"tags":["a","b"]}}`},
		{"owner column wins over owner_uid", base("owner", []byte("u2"), "owner_uid", []byte("u1"), "owner_name", []byte("Ann")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","owner":"u2","groupOwnerDetails":{"uid":"u1","name":"Ann"}}`},
		{"NULL owner defaults to owner_uid", base("owner", nil, "owner_uid", []byte("u1")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","owner":"u1","groupOwnerDetails":{"uid":"u1","name":"u1"}}`},
		{"NULL owner_name defaults to owner_uid", base("owner_uid", "u1", "owner_name", nil),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","owner":"u1","groupOwnerDetails":{"uid":"u1","name":"u1"}}`},
		{"NULL owner_uid: no owner details (LEFT JOIN without a match)", base("owner_uid", nil, "owner_name", nil, "owner_avatar", nil),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"owner column alone", base("owner", []byte("u9")),
			"", "", nil, `{"guid":"g1","name":"Group","type":"public","owner":"u9"}`},

		{"cursor and tiebreaker columns are not sent", base("updated_at", []byte("2024-05-01 10:00:00"), "id", int64(7)),
			"updated_at", "id", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"tiebreaker guid is sent", base("updated_at", time.Now()),
			"updated_at", "guid", nil, `{"guid":"g1","name":"Group","type":"public"}`},
		{"cursor created_at is sent", base("created_at", int64(ts), "id", int64(7)),
			"created_at", "id", nil, `{"guid":"g1","name":"Group","type":"public","createdAt":1673421419}`},
		{"column names are case-insensitive", r("GUID", "g1", "Name", "Group", "TYPE", "public", "Updated_At", int64(1)),
			"updated_at", "guid", nil, `{"guid":"g1","name":"Group","type":"public"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNew(t, tt.row.cols, tt.cursor, tt.tiebreaker, tt.loc)
			g, err := m.Map(tt.row.vals)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if got := mustJSON(t, g); got != tt.want {
				t.Errorf("Map:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMapRowErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tags := func(n int) string {
		t := make([]string, n)
		for i := range t {
			t[i] = "t"
		}
		return strings.Join(t, ",")
	}
	bigMeta := `{"k":"` + long(5120-7) + `"}` // 5121 bytes
	tests := []struct {
		name  string
		row   row
		field string
		want  string
	}{
		{"guid NULL", r("guid", nil, "name", "Group", "type", "public"),
			"guid", "guid: is NULL; every group needs a guid"},
		{"guid empty after trimming", r("guid", []byte("  "), "name", "Group", "type", "public"),
			"guid", "guid: must be 1 to 100 characters, got 0"},
		{"guid over 100", r("guid", long(101), "name", "Group", "type", "public"),
			"guid", "guid: must be 1 to 100 characters, got 101"},
		{"guid with a space", r("guid", "team a", "name", "Group", "type", "public"),
			"guid", `guid: may only contain a-z, 0-9, - and _, got "team a"`},
		{"guid with a non-ASCII letter", r("guid", "Café", "name", "Group", "type", "public"),
			"guid", `guid: may only contain a-z, 0-9, - and _, got "café"`},
		{"guid of an unsupported type", r("guid", true, "name", "Group", "type", "public"),
			"guid", "guid: cannot use a value of type bool as text; select it as a string"},
		{"name NULL", r("guid", "g1", "name", nil, "type", "public"),
			"name", "name: is NULL; every group needs a name"},
		{"name empty", r("guid", "g1", "name", []byte(""), "type", "public"),
			"name", "name: must be 1 to 100 characters, got 0"},
		{"name over 100 characters", r("guid", "g1", "name", strings.Repeat("é", 143), "type", "public"),
			"name", "name: must be 1 to 100 characters, got 143"},
		{"type NULL", r("guid", "g1", "name", "Group", "type", nil),
			"type", "type: is NULL; must be public, password or private"},
		{"type unknown", r("guid", "g1", "name", "Group", "type", []byte("secret")),
			"type", `type: must be public, password or private, got "secret"`},
		{"password missing for a password group", r("guid", "g1", "name", "Group", "type", "password", "password", nil),
			"password", "password: is required for a password group"},
		{"password column absent for a password group", r("guid", "g1", "name", "Group", "type", "password"),
			"password", "password: is required for a password group"},
		{"password over 100", r("guid", "g1", "name", "Group", "type", "password", "password", long(101)),
			"password", "password: must be at most 100 characters, got 101"},
		{"icon over 3000", base("icon", long(3001)),
			"icon", "icon: must be at most 3000 characters, got 3001"},
		{"owner over 100", base("owner", long(101)),
			"owner", "owner: must be at most 100 characters, got 101"},
		{"metadata invalid JSON", base("metadata", []byte(`{"a":`)),
			"metadata", "metadata: must be a JSON object, got invalid JSON: unexpected end of JSON input"},
		{"metadata not JSON at all", base("metadata", "plan=pro"),
			"metadata", "metadata: must be a JSON object, got invalid JSON: invalid character 'p' looking for beginning of value"},
		{"metadata an array", base("metadata", []byte(`[1, 2]`)),
			"metadata", "metadata: must be a JSON object, got a JSON array"},
		{"metadata a string", base("metadata", []byte(`"x"`)),
			"metadata", "metadata: must be a JSON object, got a JSON string"},
		{"metadata a number column", base("metadata", int64(5)),
			"metadata", "metadata: must be a JSON object, got a value of type int64"},
		{"metadata over 5 KB", base("metadata", []byte(bigMeta)),
			"metadata", "metadata: must be at most 5120 bytes as compact JSON, got 5121"},
		{"tags over 25", base("tags", tags(26)),
			"tags", "tags: must be at most 25 tags, got 26"},
		{"a tag over 100", base("tags", "ok, "+long(101)),
			"tags", "tags: tag 2 must be at most 100 characters, got 101"},
		{"JSON tags not strings", base("tags", []byte(`["a", 1]`)),
			"tags", "tags: must be a JSON array of strings, element 2 is not a string"},
		{"PostgreSQL text[] tags nested", base("tags", "{{a,b},{c,d}}"),
			"tags", "tags: must be a JSON array of strings, a PostgreSQL text[] or a comma-separated list, got an array literal that is nested or badly quoted"},
		{"JSON tags unterminated", base("tags", []byte(`["a", "b"`)),
			"tags", "tags: must be a JSON array of strings or a comma-separated list, got invalid JSON"},
		{"JSON tags trailing garbage", base("tags", []byte(`["a"] x`)),
			"tags", "tags: must be a JSON array of strings or a comma-separated list, got invalid JSON"},
		{"created_at unparsable text", base("created_at", []byte("yesterday")),
			"created_at", `created_at: cannot convert "yesterday" to a UNIX time: want a DATETIME or TIMESTAMP (2006-01-02 15:04:05), RFC 3339 text or an integer`},
		{"created_at impossible date", base("created_at", "2023-02-30 00:00:00"),
			"created_at", `created_at: cannot convert "2023-02-30 00:00:00" to a UNIX time: want a DATETIME or TIMESTAMP (2006-01-02 15:04:05), RFC 3339 text or an integer`},
		{"created_at 12 digits", base("created_at", int64(123456789012)),
			"created_at", "created_at: 123456789012 is not a UNIX time in seconds (up to 10 digits), milliseconds (13) or microseconds (16)"},
		{"created_at 19 digits of text", base("created_at", []byte("1234567890123456789")),
			"created_at", "created_at: 1234567890123456789 is not a UNIX time in seconds (up to 10 digits), milliseconds (13) or microseconds (16)"},
		{"created_at negative", base("created_at", int64(-1)),
			"created_at", "created_at: -1 is before 1970 (a negative UNIX time)"},
		{"created_at fractional float", base("created_at", 1673421419.5),
			"created_at", "created_at: 1.6734214195e+09 is not a whole number of seconds, milliseconds or microseconds"},
		{"created_at before 1970", base("created_at", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)),
			"created_at", "created_at: 1960-01-01T00:00:00Z is outside 1970-01-01 to 2286-11-20, the range of a 10-digit UNIX time"},
		{"created_at text before 1970", base("created_at", "1969-12-31 23:59:59"),
			"created_at", `created_at: "1969-12-31 23:59:59" is outside 1970-01-01 to 2286-11-20, the range of a 10-digit UNIX time`},
		{"created_at of an unsupported type", base("created_at", true),
			"created_at", "created_at: cannot convert a value of type bool to a UNIX time"},
		{"owner_uid over 100", base("owner_uid", long(101)),
			"owner_uid", "owner_uid: must be at most 100 characters, got 101"},
		{"owner_name over 100", base("owner_uid", "u1", "owner_name", strings.Repeat("ü", 101)),
			"owner_name", "owner_name: must be at most 100 characters, got 101"},
		{"owner_avatar over 3000", base("owner_uid", "u1", "owner_avatar", long(3001)),
			"owner_avatar", "owner_avatar: must be at most 3000 characters, got 3001"},
		{"owner_link over 3000", base("owner_uid", "u1", "owner_link", long(3001)),
			"owner_link", "owner_link: must be at most 3000 characters, got 3001"},
		{"owner_role over 100", base("owner_uid", "u1", "owner_role", long(101)),
			"owner_role", "owner_role: must be at most 100 characters, got 101"},
		{"owner_created_at unparsable", base("owner_uid", "u1", "owner_created_at", "soon"),
			"owner_created_at", `owner_created_at: cannot convert "soon" to a UNIX time: want a DATETIME or TIMESTAMP (2006-01-02 15:04:05), RFC 3339 text or an integer`},
		{"owner_last_active_at 11 digits", base("owner_uid", "u1", "owner_last_active_at", int64(16734214190)),
			"owner_last_active_at", "owner_last_active_at: 16734214190 is not a UNIX time in seconds (up to 10 digits), milliseconds (13) or microseconds (16)"},
		{"owner_deactivated_at negative", base("owner_uid", "u1", "owner_deactivated_at", -5),
			"owner_deactivated_at", "owner_deactivated_at: -5 is before 1970 (a negative UNIX time)"},
		{"owner_metadata not an object", base("owner_uid", "u1", "owner_metadata", []byte("true")),
			"owner_metadata", "owner_metadata: must be a JSON object, got a JSON boolean"},
		{"owner_metadata over 5 KB", base("owner_uid", "u1", "owner_metadata", bigMeta),
			"owner_metadata", "owner_metadata: must be at most 5120 bytes as compact JSON, got 5121"},
		{"owner_tags over 25", base("owner_uid", "u1", "owner_tags", tags(26)),
			"owner_tags", "owner_tags: must be at most 25 tags, got 26"},
		{"an owner_tag over 100", base("owner_uid", "u1", "owner_tags", `["`+long(101)+`"]`),
			"owner_tags", "owner_tags: tag 1 must be at most 100 characters, got 101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNew(t, tt.row.cols, "", "", nil)
			g, err := m.Map(tt.row.vals)
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
			want := cometchat.Group{GUID: "g1"}
			if tt.field == "guid" {
				want.GUID = ""
			}
			if got := mustJSON(t, g); got != mustJSON(t, want) {
				t.Errorf("Group on error = %s, want only the guid, so the row error can be keyed by it", got)
			}
		})
	}
}

func TestMapPasswordNeverInMessage(t *testing.T) {
	m := mustNew(t, []string{"guid", "name", "type", "password"}, "", "", nil)
	secret := strings.Repeat("hunter2", 20)
	_, err := m.Map([]any{"g1", "Group", "password", secret})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v must exist and not repeat the password", err)
	}
}

func TestMapWrongRowLength(t *testing.T) {
	m := mustNew(t, []string{"guid", "name", "type"}, "", "", nil)
	if _, err := m.Map([]any{"g1", "Group"}); err == nil {
		t.Fatal("Map accepted a row shorter than the columns")
	}
}

func TestNewColumnErrors(t *testing.T) {
	tests := []struct {
		name       string
		cols       []string
		cursor     string
		tiebreaker string
		column     string
		want       string
	}{
		{"unknown column", []string{"guid", "name", "type", "foo", "updated_at", "id"}, "updated_at", "id", "foo",
			`source.query: column "foo" is not an import field (known: guid, name, type, password, icon, owner, created_at, metadata, tags, owner_uid, owner_name, owner_avatar, owner_link, owner_role, owner_created_at, owner_last_active_at, owner_metadata, owner_tags, owner_deactivated_at; the cursor column "updated_at" and the tiebreaker "id" are also allowed)`},
		{"unknown column, no cursor", []string{"guid", "name", "type", "title"}, "", "", "title",
			`source.query: column "title" is not an import field (known: guid, name, type, password, icon, owner, created_at, metadata, tags, owner_uid, owner_name, owner_avatar, owner_link, owner_role, owner_created_at, owner_last_active_at, owner_metadata, owner_tags, owner_deactivated_at)`},
		{"missing guid", []string{"name", "type"}, "", "", "guid",
			`source.query: required column "guid" is missing`},
		{"missing name", []string{"guid", "type", "updated_at"}, "updated_at", "guid", "name",
			`source.query: required column "name" is missing`},
		{"missing type", []string{"guid", "name"}, "", "", "type",
			`source.query: required column "type" is missing`},
		{"duplicate column", []string{"guid", "name", "type", "GUID"}, "", "", "GUID",
			`source.query: column "GUID" appears twice (columns 1 and 4)`},
		{"unnamed column", []string{"guid", "name", "type", ""}, "", "", "",
			`source.query: column 4 has no name; give it one with AS`},
		{"owner details without owner_uid", []string{"guid", "name", "type", "owner_name"}, "", "", "owner_name",
			`source.query: column "owner_name" needs the column "owner_uid": owner details are sent only for a row that names its owner`},
		{"cursor column missing", []string{"guid", "name", "type", "id"}, "updated_at", "id", "updated_at",
			`source.query: cursor column "updated_at" (source.cursor.column) is missing from the query's columns`},
		{"tiebreaker column missing", []string{"guid", "name", "type", "updated_at"}, "updated_at", "id", "id",
			`source.query: tiebreaker column "id" (source.cursor.tiebreaker) is missing from the query's columns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cols, tt.cursor, tt.tiebreaker, nil)
			var ce *ColumnError
			if !errors.As(err, &ce) {
				t.Fatalf("New: got %v, %v; want a *ColumnError", m, err)
			}
			if err.Error() != tt.want {
				t.Errorf("New error:\n got %s\nwant %s", err, tt.want)
			}
			if ce.Column != tt.column {
				t.Errorf("Column = %q, want %q", ce.Column, tt.column)
			}
		})
	}
}

// A query with several bad columns is told about all of them at once, so
// that fixing it takes one round, not one per column.
func TestNewNamesEveryColumnProblem(t *testing.T) {
	tests := []struct {
		name       string
		cols       []string
		cursor     string
		tiebreaker string
		columns    []string // Column of each problem, in order
		want       string
	}{
		{"two unknown columns", []string{"id", "guid", "name", "type", "title", "updated_at", "kind"}, "updated_at", "id",
			[]string{"title", "kind"},
			`source.query: 2 problems with the query's columns:
  column "title" is not an import field
  column "kind" is not an import field
  known columns: guid, name, type, password, icon, owner, created_at, metadata, tags, owner_uid, owner_name, owner_avatar, owner_link, owner_role, owner_created_at, owner_last_active_at, owner_metadata, owner_tags, owner_deactivated_at; the cursor column "updated_at" and the tiebreaker "id" are also allowed`},
		{"unknown, duplicated and missing", []string{"guid", "title", "kind", "GUID", "icon", "Icon", "owner_name"}, "", "",
			[]string{"title", "kind", "GUID", "Icon", "name", "type", "owner_name"},
			`source.query: 7 problems with the query's columns:
  column "title" is not an import field
  column "kind" is not an import field
  column "GUID" appears twice (columns 1 and 4)
  column "Icon" appears twice (columns 5 and 6)
  required column "name" is missing
  required column "type" is missing
  column "owner_name" needs the column "owner_uid": owner details are sent only for a row that names its owner
  known columns: guid, name, type, password, icon, owner, created_at, metadata, tags, owner_uid, owner_name, owner_avatar, owner_link, owner_role, owner_created_at, owner_last_active_at, owner_metadata, owner_tags, owner_deactivated_at`},
		{"unnamed column and both cursor columns missing", []string{"guid", "name", "type", ""}, "updated_at", "id",
			[]string{"", "updated_at", "id"},
			`source.query: 3 problems with the query's columns:
  column 4 has no name; give it one with AS
  cursor column "updated_at" (source.cursor.column) is missing from the query's columns
  tiebreaker column "id" (source.cursor.tiebreaker) is missing from the query's columns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cols, tt.cursor, tt.tiebreaker, nil)
			var all ColumnErrors
			if !errors.As(err, &all) {
				t.Fatalf("New: got %v, %v; want ColumnErrors", m, err)
			}
			if err.Error() != tt.want {
				t.Errorf("New error:\n got %s\nwant %s", err, tt.want)
			}
			var got []string
			for _, ce := range all {
				got = append(got, ce.Column)
			}
			if strings.Join(got, ",") != strings.Join(tt.columns, ",") {
				t.Errorf("problems name columns %q, want %q", got, tt.columns)
			}
			// Callers that look for one column problem still find one: the first.
			var first *ColumnError
			if !errors.As(err, &first) || first.Column != tt.columns[0] {
				t.Errorf("errors.As *ColumnError: got %+v, want the first problem, column %q", first, tt.columns[0])
			}
		})
	}
}

// TestNewExampleQuery checks the columns of config.example.yaml's query.
func TestNewExampleQuery(t *testing.T) {
	cols := []string{"id", "guid", "name", "type", "password", "icon", "created_at", "updated_at",
		"metadata", "tags", "owner_uid", "owner_name", "owner_avatar"}
	m := mustNew(t, cols, "updated_at", "id", nil)
	g, err := m.Map([]any{int64(1), []byte("g1"), []byte("Group"), []byte("public"), nil, nil,
		[]byte("2023-01-11 07:16:59"), []byte("2024-05-01 10:00:00"), nil, nil, []byte("u1"), nil, nil})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"guid":"g1","name":"Group","type":"public","owner":"u1","createdAt":1673421419,"groupOwnerDetails":{"uid":"u1","name":"u1"}}`
	if got := mustJSON(t, g); got != want {
		t.Errorf("Map:\n got %s\nwant %s", got, want)
	}
}

func TestColumns(t *testing.T) {
	cols := []string{"guid", "name", "type", "updated_at", "id"}
	m := mustNew(t, cols, "updated_at", "id", nil)
	got := m.Columns()
	got[0] = "changed"
	if again := m.Columns(); strings.Join(again, ",") != strings.Join(cols, ",") {
		t.Errorf("Columns = %q, want %q (and a copy)", again, cols)
	}
}

func TestFingerprint(t *testing.T) {
	cols := []string{"guid", "name", "type", "updated_at", "id"}
	m := mustNew(t, cols, "updated_at", "id", nil)
	const q = "SELECT guid, name, type, updated_at, id FROM chat_groups"
	fp := m.Fingerprint(q, "updated_at", "id")
	if len(fp) != 64 {
		t.Fatalf("Fingerprint = %q, want 64 hex digits", fp)
	}
	if again := mustNew(t, cols, "updated_at", "id", nil).Fingerprint(q, "updated_at", "id"); again != fp {
		t.Errorf("same query and columns: fingerprint %s, then %s", fp, again)
	}
	withIcon := mustNew(t, []string{"guid", "name", "type", "icon", "updated_at", "id"}, "updated_at", "id", nil)
	ist := mustNew(t, cols, "updated_at", "id", time.FixedZone("IST", 19800))
	changes := map[string]string{
		"query changed":        m.Fingerprint(q+" WHERE deleted = 0", "updated_at", "id"),
		"columns changed":      withIcon.Fingerprint(q, "updated_at", "id"),
		"extra changed":        m.Fingerprint(q, "created_at", "id"),
		"extra split":          m.Fingerprint(q, "updated_a", "tid"),
		"location changed":     ist.Fingerprint(q, "updated_at", "id"),
		"query and extra fuse": m.Fingerprint(q+"updated_at", "id"),
	}
	for name, other := range changes {
		t.Run(name, func(t *testing.T) {
			if other == fp {
				t.Errorf("fingerprint did not change: %s", fp)
			}
		})
	}
}

func TestHash(t *testing.T) {
	g := cometchat.Group{GUID: "g1", Name: "Group", Type: "public", Tags: []string{"a", "b"},
		Metadata: json.RawMessage(`{"x":1}`), GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u1", Name: "Ann"}}
	h := Hash(g)
	if len(h) != 16 {
		t.Fatalf("Hash = %q, want 16 bytes", h)
	}
	same := g
	same.Tags = []string{"a", "b"}
	same.GroupOwnerDetails = &cometchat.OwnerDetails{UID: "u1", Name: "Ann"}
	if Hash(same) != h {
		t.Error("equal objects hash differently")
	}
	changed := map[string]func(*cometchat.Group){
		"name":        func(g *cometchat.Group) { g.Name = "Group 2" },
		"tag order":   func(g *cometchat.Group) { g.Tags = []string{"b", "a"} },
		"metadata":    func(g *cometchat.Group) { g.Metadata = json.RawMessage(`{"x":2}`) },
		"owner name":  func(g *cometchat.Group) { g.GroupOwnerDetails = &cometchat.OwnerDetails{UID: "u1", Name: "Bob"} },
		"icon set":    func(g *cometchat.Group) { g.Icon = "https://x/y.png" },
		"created at":  func(g *cometchat.Group) { g.CreatedAt = 1 },
		"owner unset": func(g *cometchat.Group) { g.GroupOwnerDetails = nil },
		// A boundary moved between fields or list items must change it too.
		"name/type boundary": func(g *cometchat.Group) { g.Name, g.Type = "Groupp", "ublic" },
		"tags joined":        func(g *cometchat.Group) { g.Tags = []string{"ab"} },
		"owner uid/name":     func(g *cometchat.Group) { g.GroupOwnerDetails = &cometchat.OwnerDetails{UID: "u1A", Name: "nn"} },
	}
	for name, change := range changed {
		t.Run(name, func(t *testing.T) {
			c := g
			change(&c)
			if Hash(c) == h {
				t.Errorf("hash did not change")
			}
		})
	}
}

func TestHashOfMappedRowsIsStable(t *testing.T) {
	m := mustNew(t, []string{"guid", "name", "type", "metadata"}, "", "", nil)
	a, err := m.Map([]any{[]byte("g1"), []byte("Group"), []byte("public"), []byte(`{ "x": 1 }`)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Map([]any{"G1", "Group", "public", `{"x":1}`})
	if err != nil {
		t.Fatal(err)
	}
	if Hash(a) != Hash(b) {
		t.Errorf("the same group read as []byte and as string hashes differently: %s vs %s", mustJSON(t, a), mustJSON(t, b))
	}
}

func TestPresent(t *testing.T) {
	tests := []struct {
		name string
		g    cometchat.Group
		want uint32
	}{
		{"required only", cometchat.Group{GUID: "g", Name: "n", Type: "public"}, 0},
		{"icon", cometchat.Group{Icon: "i"}, FieldIcon},
		{"metadata", cometchat.Group{Metadata: json.RawMessage(`{}`)}, FieldMetadata},
		{"tags", cometchat.Group{Tags: []string{"a"}}, FieldTags},
		{"password", cometchat.Group{Password: "p"}, FieldPassword},
		{"owner", cometchat.Group{Owner: "u"}, FieldOwner},
		{"createdAt", cometchat.Group{CreatedAt: 1}, FieldCreatedAt},
		{"groupOwnerDetails", cometchat.Group{GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u"}}, FieldGroupOwnerDetails},
		{"all", cometchat.Group{Icon: "i", Metadata: json.RawMessage(`{}`), Tags: []string{"a"}, Password: "p", Owner: "u",
			CreatedAt: 1, GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u"}},
			FieldIcon | FieldMetadata | FieldTags | FieldPassword | FieldOwner | FieldCreatedAt | FieldGroupOwnerDetails},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Present(tt.g); got != tt.want {
				t.Errorf("Present = %07b, want %07b", got, tt.want)
			}
		})
	}
}

// BenchmarkMap maps a typical MySQL row (text as []byte, parseTime off).
func BenchmarkMap(b *testing.B) {
	cols := []string{"id", "guid", "name", "type", "password", "icon", "created_at", "updated_at",
		"metadata", "tags", "owner_uid", "owner_name", "owner_avatar"}
	m := mustNew(b, cols, "updated_at", "id", time.UTC)
	values := []any{
		[]byte("12345"), []byte("team-12345"), []byte("Team 12345 — sales EMEA"), []byte("public"), nil,
		[]byte("https://cdn.example.com/groups/12345.png"), []byte("2023-01-11 07:16:59"), []byte("2024-05-01 10:00:00.123456"),
		[]byte(`{"plan": "pro", "region": "emea", "seats": 25}`), []byte("sales, emea, vip"),
		[]byte("user-42"), []byte("Ann Example"), []byte("https://cdn.example.com/users/42.png"),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(values); err != nil {
			b.Fatal(err)
		}
	}
}

// A groups query configured in the groups section is told about by that
// section's keys.
func TestNewGroupsNamesItsSection(t *testing.T) {
	_, err := NewGroups([]string{"guid", "name", "title", "id"}, "updated_at", "id", nil)
	want := `groups.query: 3 problems with the query's columns:
  column "title" is not an import field
  required column "type" is missing
  cursor column "updated_at" (groups.cursor.column) is missing from the query's columns
  known columns: guid, name, type, password, icon, owner, created_at, metadata, tags, owner_uid, owner_name, owner_avatar, owner_link, owner_role, owner_created_at, owner_last_active_at, owner_metadata, owner_tags, owner_deactivated_at; the cursor column "updated_at" and the tiebreaker "id" are also allowed`
	if err == nil || err.Error() != want {
		t.Errorf("NewGroups error:\n got %v\nwant %s", err, want)
	}
	m, err := NewGroups([]string{"guid", "name", "type"}, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := m.Map([]any{"G1", "Group", "public"}); err != nil || g.GUID != "g1" {
		t.Errorf("Map = %+v, %v; want group g1", g, err)
	}
}
