package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoadExample(t *testing.T) {
	t.Setenv("SOURCE_DSN", "app:s3cret@tcp(db:3306)/chat?parseTime=true")
	t.Setenv("COMETCHAT_APP_ID", "12345abcde")
	t.Setenv("COMETCHAT_API_KEY", "sk-live-123")
	got, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatalf("Load example: %v", err)
	}
	// The three streams, in pass order, each under its own key.
	var names []string
	for _, st := range got.Streams() {
		names = append(names, st.Name+"@"+st.Key)
	}
	if s := strings.Join(names, " "); s != "users@users groups@groups members@members" {
		t.Fatalf("example streams = %s, want users, groups and members, each under its own key", s)
	}
	for _, q := range []struct {
		stream string
		query  string
		parts  []string
	}{
		{"users", got.Users.Query, []string{"SELECT\n  u.id,\n  u.uid,\n", "u.display_name AS name,", "u.avatar_url   AS avatar,",
			"u.last_seen_at AS last_active_at,", "FROM users u\n"}},
		// Today's groups query, unchanged.
		{"groups", got.Groups.Query, []string{"SELECT\n  g.id,\n  g.guid,\n", "g.title         AS name,", "g.meta          AS metadata,",
			"u.avatar_url    AS owner_avatar\n", "FROM chat_groups g\nLEFT JOIN users u ON u.uid = g.owner_uid\n"}},
		{"members", got.Members.Query, []string{"SELECT\n  m.id,\n  g.guid,\n", "m.user_uid AS uid,", "m.role     AS scope,",
			"m.joined_at,", "FROM memberships m\nJOIN chat_groups g ON g.id = m.group_id\n"}},
	} {
		for _, part := range q.parts {
			if !strings.Contains(q.query, part) {
				t.Errorf("example %s.query lacks %q:\n%s", q.stream, part, q.query)
			}
		}
	}
	// The example spells out every default; only what must be the user's
	// differs from Default().
	want := Default()
	want.Source.DSN = "app:s3cret@tcp(db:3306)/chat?parseTime=true"
	keyset := Cursor{Column: "updated_at", Tiebreaker: "id", Lag: Duration(5 * time.Second)}
	want.Users = &Stream{Query: got.Users.Query, Cursor: keyset}
	want.Groups = &Stream{Query: got.Groups.Query, Cursor: keyset}
	want.Members = &Stream{Query: got.Members.Query, Cursor: keyset, Via: "import"}
	want.CometChat.AppID = "12345abcde"
	want.CometChat.APIKey = "sk-live-123"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example config:\n got %+v\nwant %+v", got, want)
	}
	if u := got.APIBaseURL(); u != "https://12345abcde.api-us.cometchat.io/v3" {
		t.Errorf("APIBaseURL = %q", u)
	}
}

// TestExampleHasEveryKey checks that config.example.yaml writes out every
// key a config can have (the earlier form's source.query and
// source.cursor aside, and via where it is for members only), and no key
// twice: a new setting is documented where people look.
func TestExampleHasEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	have := map[string]int{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind == yaml.DocumentNode {
			for _, c := range n.Content {
				walk(c, prefix)
			}
			return
		}
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			have[k]++
			walk(n.Content[i+1], k+".")
		}
	}
	walk(&root, "")
	want := map[string]bool{}
	var keys func(t reflect.Type, prefix string)
	keys = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			k := prefix + yamlKey(f)
			switch k {
			case "source.query", "source.cursor", "users.via", "groups.via":
				continue
			}
			want[k] = true
			if ft := f.Type; ft != durationType && (ft.Kind() == reflect.Struct || ft.Kind() == reflect.Pointer) {
				keys(ft, k+".")
			}
		}
	}
	keys(reflect.TypeFor[Config](), "")
	for k := range want {
		if have[k] != 1 {
			t.Errorf("config.example.yaml has %s %d times, want once", k, have[k])
		}
	}
	for k := range have {
		if !want[k] {
			t.Errorf("config.example.yaml has %s, which is not a key of the streams form", k)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

// valid is the smallest valid file; the cases below edit it. Line numbers
// in expected errors count from here.
const valid = `source:
  driver: mysql
  dsn: app:s3cret@tcp(db:3306)/chat
  query: SELECT guid, name, type, updated_at, id FROM chat_groups
  cursor:
    column: updated_at
    tiebreaker: id
cometchat:
  app_id: app1
  api_key: sk-live-123
`

// edit replaces old by new in valid, or appends new when old is "".
func edit(old, new string) string {
	if old == "" {
		return valid + new
	}
	if !strings.Contains(valid, old) {
		panic("edit: " + old + " not in valid")
	}
	return strings.Replace(valid, old, new, 1)
}

func noEnv(string) string { return "" }

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(*Config) bool
	}{
		{"defaults fill the rest", valid, func(c *Config) bool {
			want := Default()
			want.Source.DSN = "app:s3cret@tcp(db:3306)/chat"
			want.Source.Query = "SELECT guid, name, type, updated_at, id FROM chat_groups"
			want.Source.Cursor = Cursor{Column: "updated_at", Tiebreaker: "id", Lag: Duration(5 * time.Second)}
			want.CometChat.AppID = "app1"
			want.CometChat.APIKey = "sk-live-123"
			legacyGroups(want)
			return reflect.DeepEqual(c, want)
		}},
		{"integer_unit microseconds", edit("    tiebreaker: id\n", "    tiebreaker: id\n    integer_unit: microseconds\n"), func(c *Config) bool {
			return c.Source.Cursor.IntegerUnit == "microseconds"
		}},
		{"integer_unit not set stays unset, to be detected", valid, func(c *Config) bool {
			return c.Source.Cursor.IntegerUnit == ""
		}},
		{"query after comments", edit("  query: SELECT", "  query: |\n    -- groups\n    /* all */ # more\n    select"), func(c *Config) bool {
			return strings.HasPrefix(c.Source.Query, "-- groups\n")
		}},
		{"WITH query", edit("  query: SELECT guid", "  query: WITH x AS (SELECT 1) SELECT guid"), func(c *Config) bool { return true }},
		{"sqlite DSN is not parsed as mysql", edit("  driver: mysql\n  dsn: app:s3cret@tcp(db:3306)/chat", "  driver: sqlite\n  dsn: file:/data/chat.db"),
			func(c *Config) bool { return c.Source.Driver == "sqlite" && c.Source.DSN == "file:/data/chat.db" }},
		{"base_url makes app_id optional", edit("  app_id: app1\n", "  base_url: http://127.0.0.1:8080/v3/\n"), func(c *Config) bool {
			return c.APIBaseURL() == "http://127.0.0.1:8080/v3"
		}},
		{"durations and integers", edit("", "  timeout: 1m30s\n  batch_size: 10\nshutdown_timeout: 250ms\n"), func(c *Config) bool {
			return c.CometChat.Timeout.Duration() == 90*time.Second && c.CometChat.BatchSize == 10 && c.ShutdownTimeout == Duration(250*time.Millisecond)
		}},
		{"empty value keeps the default", edit("", "  timeout:\n  retry:\n"), func(c *Config) bool {
			return c.CometChat.Timeout == Duration(30*time.Second) && c.CometChat.Retry.MaxAttempts == 10 && c.CometChat.Retry.InitialBackoff == Duration(time.Second)
		}},
		{"integer and RFC 3339 starts", edit("    tiebreaker: id\n", "    tiebreaker: id\n    start: 1700000000\n"), func(c *Config) bool {
			return c.Source.Cursor.Start == "1700000000"
		}},
		{"cron schedule, empty listen", edit("", "schedule: \"*/5 * * * *\"\nhttp:\n  listen: \"\"\n"), func(c *Config) bool {
			return c.Schedule == "*/5 * * * *" && c.HTTP.Listen == ""
		}},
		{"anchors and merge keys", edit("", "  retry: &r\n    max_attempts: 3\nstate:\n  <<: {path: ./x.db, park_after: 2}\n  park_after: 3\n"), func(c *Config) bool {
			return c.CometChat.Retry.MaxAttempts == 3 && c.State.Path == "./x.db" && c.State.ParkAfter == 3
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse([]byte(tt.yaml), noEnv)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
		// value is the expected ValidationError.Value when set.
		value *string
	}{
		{"unknown top-level key", edit("", "sources: {}\n"),
			"config: line 11: sources: unknown key (known at the top level: source, cometchat, state, schedule, shutdown_timeout, http, log, metrics, deletes, reconcile_schedule, users, groups, members)", nil},
		{"unknown nested key", edit("    tiebreaker: id\n", "    tiebreaker: id\n    lagg: 5s\n"),
			"config: line 8: source.cursor.lagg: unknown key (known under source.cursor: column, tiebreaker, lag, start, integer_unit)", nil},
		{"unknown deeply nested key", edit("", "  retry:\n    max_attempt: 3\n"),
			"config: line 12: cometchat.retry.max_attempt: unknown key (known under cometchat.retry: max_attempts, initial_backoff, max_backoff, max_elapsed)", nil},
		{"bad duration", edit("", "  timeout: 30 seconds\n"),
			`config: line 11: cometchat.timeout: "30 seconds" is not a duration (use Go syntax such as 500ms, 30s, 5m or 1h30m)`, nil},
		{"duration without unit", edit("    tiebreaker: id\n", "    tiebreaker: id\n    lag: 5\n"),
			`config: line 8: source.cursor.lag: "5" is not a duration (use Go syntax such as 500ms, 30s, 5m or 1h30m)`, nil},
		{"integer as text", edit("", "  batch_size: fifty\n"),
			`config: line 11: cometchat.batch_size: "fifty" is not an integer`, nil},
		{"list where a value belongs", edit("  dsn: app:s3cret@tcp(db:3306)/chat", "  dsn: [a, b]"),
			"config: line 3: source.dsn: must be a single value, got a list", nil},
		{"section as a value", edit("", "state: here\n"),
			`config: line 11: state: must be a mapping with the keys path, park_after, got "here"`, nil},
		{"not a mapping at all", "hello\n",
			`config: line 1: (top level): must be a mapping with the keys source, cometchat, state, schedule, shutdown_timeout, http, log, metrics, deletes, reconcile_schedule, users, groups, members, got "hello"`, nil},

		{"bad driver", edit("  driver: mysql", "  driver: oracle"),
			`config: source.driver: "oracle" is not one of mysql, postgres, sqlite`, nil},
		{"bad postgres dsn", edit("  driver: mysql\n  dsn: app:s3cret@tcp(db:3306)/chat", "  driver: postgres\n  dsn: postgres://app:s3cret@db:99999/chat"),
			"config: source.dsn: *** is not a PostgreSQL DSN like postgres://user:password@db:5432/chat?sslmode=require " +
				"or host=db user=app password=... dbname=chat (invalid port)", ptr("***")},
		{"missing dsn", edit("  dsn: app:s3cret@tcp(db:3306)/chat", "  dsn: ${SOURCE_DSN}"),
			"config: source.dsn: is missing: set the environment variable SOURCE_DSN and write dsn: ${SOURCE_DSN}, " +
				"e.g. SOURCE_DSN='user:password@tcp(db:3306)/chat?parseTime=true' for mysql, " +
				"SOURCE_DSN='postgres://user:password@db:5432/chat' for postgres or SOURCE_DSN='file:/data/chat.db' for sqlite", ptr("")},
		{"unparsable mysql dsn", edit("  dsn: app:s3cret@tcp(db:3306)/chat", "  dsn: app:s3cret@tcp(db:3306)chat"),
			"config: source.dsn: *** is not a MySQL DSN like user:password@tcp(db:3306)/chat?parseTime=true (invalid DSN: missing the slash separating the database name)", ptr("***")},
		{"missing query", edit("  query: SELECT guid, name, type, updated_at, id FROM chat_groups", "  query: \"  -- nothing\""),
			"config: source.query: is missing: write the SELECT whose column names are the import fields (guid, name, type, ...)", nil},
		{"query not a SELECT", edit("  query: SELECT guid, name, type, updated_at, id FROM chat_groups", "  query: DELETE FROM chat_groups"),
			`config: source.query: "DELETE FROM chat_groups" must be a SELECT statement (or WITH ... SELECT)`, nil},
		{"query starting with a SELECT-like word", edit("  query: SELECT guid", "  query: SELECTED guid"),
			`config: source.query: "SELECTED guid, name, type, updated_at, id FROM chat_groups" must be a SELECT statement (or WITH ... SELECT)`, nil},
		{"missing cursor column", edit("    column: updated_at\n", ""),
			"config: source.cursor.column: is missing: name the query's DATETIME/TIMESTAMP or integer column that grows on every change, e.g. updated_at", nil},
		{"missing tiebreaker", edit("    tiebreaker: id\n", ""),
			"config: source.cursor.tiebreaker: is missing: name a unique column of the query, e.g. the primary key id", nil},
		{"tiebreaker same as cursor", edit("    tiebreaker: id", "    tiebreaker: updated_at"),
			`config: source.cursor.tiebreaker: "updated_at" is the same as source.cursor.column; use a unique column such as the primary key`, nil},
		{"negative lag", edit("    tiebreaker: id\n", "    tiebreaker: id\n    lag: -1s\n"),
			"config: source.cursor.lag: -1s must not be negative", nil},
		{"bad start", edit("    tiebreaker: id\n", "    tiebreaker: id\n    start: yesterday\n"),
			`config: source.cursor.start: "yesterday" is not an RFC 3339 time (e.g. 2024-01-01T00:00:00Z) or an integer`, nil},
		{"bad integer_unit", edit("    tiebreaker: id\n", "    tiebreaker: id\n    integer_unit: hours\n"),
			`config: source.cursor.integer_unit: "hours" is not one of seconds, milliseconds, microseconds`, nil},
		{"page_size 0", edit("cometchat:\n", "  page_size: 0\ncometchat:\n"),
			"config: source.page_size: 0 is out of range (1..100000 rows a query)", nil},

		{"missing app_id", edit("  app_id: app1", "  app_id: ${COMETCHAT_APP_ID}"),
			"config: cometchat.app_id: is missing: set the environment variable COMETCHAT_APP_ID to your app's ID and write app_id: ${COMETCHAT_APP_ID} (or set cometchat.base_url)", nil},
		{"app_id not a host name part", edit("  app_id: app1", "  app_id: my app"),
			`config: cometchat.app_id: "my app" must be letters, digits and hyphens: it is part of the API's host name`, nil},
		{"bad region", edit("", "  region: mars\n"),
			`config: cometchat.region: "mars" is not one of us, eu, in`, nil},
		{"missing api_key", edit("  api_key: sk-live-123", "  api_key: ${COMETCHAT_API_KEY}"),
			"config: cometchat.api_key: is missing: set the environment variable COMETCHAT_API_KEY to a REST API key with fullAccess scope and write api_key: ${COMETCHAT_API_KEY}", ptr("")},
		{"api_key with a space", edit("  api_key: sk-live-123", "  api_key: 'sk-live-123 '"),
			"config: cometchat.api_key: *** has spaces or line breaks around or in it; check the environment variable COMETCHAT_API_KEY", ptr("***")},
		{"base_url not http", edit("", "  base_url: ftp://user:pw@example.com/v3\n"),
			`config: cometchat.base_url: "ftp://user:***@example.com/v3" must be an absolute http(s) URL such as https://APP_ID.api-us.cometchat.io/v3`, nil},
		{"base_url relative", edit("", "  base_url: /v3\n"),
			`config: cometchat.base_url: "/v3" must be an absolute http(s) URL such as https://APP_ID.api-us.cometchat.io/v3`, nil},
		{"batch_size 51", edit("", "  batch_size: 51\n"),
			"config: cometchat.batch_size: 51 is out of range (1..50, CometChat's limit per import request)", ptr("51")},
		{"batch_size 0", edit("", "  batch_size: 0\n"),
			"config: cometchat.batch_size: 0 is out of range (1..50, CometChat's limit per import request)", nil},
		{"concurrency 65", edit("", "  concurrency: 65\n"),
			"config: cometchat.concurrency: 65 is out of range (1..64 batches in flight)", nil},
		{"timeout 0", edit("", "  timeout: 0s\n"),
			"config: cometchat.timeout: 0s must be more than 0", nil},
		{"max_attempts 0", edit("", "  retry:\n    max_attempts: 0\n"),
			"config: cometchat.retry.max_attempts: 0 must be at least 1 (1: no retries)", nil},
		{"initial backoff negative", edit("", "  retry:\n    initial_backoff: -1s\n"),
			"config: cometchat.retry.initial_backoff: -1s must be more than 0", nil},
		{"initial backoff over max", edit("", "  retry:\n    initial_backoff: 1m\n"),
			"config: cometchat.retry.initial_backoff: 1m0s is more than cometchat.retry.max_backoff (30s)", nil},
		{"import rate 0", edit("", "  rate_limits:\n    import_per_minute: 0\n"),
			"config: cometchat.rate_limits.import_per_minute: 0 must be at least 1 (CometChat allows 60)", nil},
		{"other rate 0", edit("", "  rate_limits:\n    other_per_minute: 0\n"),
			"config: cometchat.rate_limits.other_per_minute: 0 must be at least 1 (CometChat allows 10000 on paid plans, 500 on the free plan)", nil},

		{"missing state path", edit("", "state:\n  path: \"\"\n"),
			"config: state.path: is missing: name the local SQLite file that keeps the checkpoint, e.g. ./cometsync-state.db", nil},
		{"park_after 0", edit("", "state:\n  park_after: 0\n"),
			"config: state.park_after: 0 must be at least 1 attempt", nil},
		{"bad schedule", edit("", "schedule: every 5m\n"),
			`config: schedule: "every 5m" is not a schedule (expected exactly 5 fields, found 2: [every 5m]); use five cron fields such as "*/5 * * * *" or a descriptor such as "@every 5m" or "@hourly"`, nil},
		{"six-field schedule", edit("", "schedule: \"0 */5 * * * *\"\n"),
			`config: schedule: "0 */5 * * * *" is not a schedule (expected exactly 5 fields, found 6: [0 */5 * * * *]); use five cron fields such as "*/5 * * * *" or a descriptor such as "@every 5m" or "@hourly"`, nil},
		{"empty schedule", edit("", "schedule: \"\"\n"),
			`config: schedule: is missing: use five cron fields such as "*/5 * * * *" or a descriptor such as "@every 5m" or "@hourly"`, nil},
		{"shutdown_timeout 0", edit("", "shutdown_timeout: 0s\n"),
			"config: shutdown_timeout: 0s must be more than 0", nil},
		{"bad listen", edit("", "http:\n  listen: \"9464\"\n"),
			`config: http.listen: "9464" is not a host:port address such as ":9464" or "127.0.0.1:9464" (empty turns the HTTP server off)`, nil},
		{"bad log level", edit("", "log:\n  level: verbose\n"),
			`config: log.level: "verbose" is not one of debug, info, warn, error`, nil},
		{"bad log format", edit("", "log:\n  format: text\n"),
			`config: log.format: "text" is not one of auto, json, console`, nil},
		{"bad pushgateway", edit("", "metrics:\n  pushgateway: pushgateway:9091\n"),
			`config: metrics.pushgateway: "pushgateway:9091" must be an absolute http(s) URL such as http://pushgateway:9091`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse([]byte(tt.yaml), noEnv)
			if err == nil {
				t.Fatalf("parse accepted it: %+v", c)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			if tt.value != nil && ve.Value != *tt.value {
				t.Errorf("Value = %q, want %q", ve.Value, *tt.value)
			}
			for _, s := range []string{"s3cret", "sk-live-123"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows the secret %q", s)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestParseYAMLSyntaxError(t *testing.T) {
	_, err := parse([]byte("source: [\n"), noEnv)
	if err == nil || !strings.HasPrefix(err.Error(), "config: yaml: line ") {
		t.Fatalf("got %v, want a YAML syntax error with its line", err)
	}
}

func TestParseEmptyFileNeedsTheRequiredKeys(t *testing.T) {
	_, err := parse(nil, noEnv)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Key != "source.dsn" {
		t.Fatalf("got %v, want the first missing key, source.dsn", err)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "DSN": "app:p$w@tcp(db)/chat"}
	tests := []struct{ in, want string }{
		{"x: ${A}", "x: alpha"},
		{"${A}${A}", "alphaalpha"},
		{"x: ${UNSET}", "x: "},
		{"price: $$5", "price: $5"},
		{"literal: $${A}", "literal: ${A}"},
		{"bare: $A", "bare: $A"},
		{"json path: '$.plan'", "json path: '$.plan'"},
		{"unterminated: ${A", "unterminated: ${A"},
		{"empty name: ${}", "empty name: ${}"},
		{"spaces: ${A B}", "spaces: ${A B}"},
		{"trailing $", "trailing $"},
		{"dsn: ${DSN}", "dsn: app:p$w@tcp(db)/chat"},
		{"# comment ${A}", "# comment alpha"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := expand(tt.in, func(k string) string { return env[k] }); got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseExpandsEnvironment(t *testing.T) {
	t.Setenv("SOURCE_DSN", "app:s3cret@tcp(db:3306)/chat")
	t.Setenv("COMETCHAT_API_KEY", "sk-live-123")
	t.Setenv("BATCH", "20")
	t.Setenv("TIMEOUT", "")
	data := edit("  dsn: app:s3cret@tcp(db:3306)/chat", "  dsn: ${SOURCE_DSN}")
	data = strings.Replace(data, "  api_key: sk-live-123", "  api_key: ${COMETCHAT_API_KEY}", 1)
	data += "  batch_size: ${BATCH}\n  timeout: ${TIMEOUT}\n" +
		"  rate_limits:\n    import_per_minute: 30 # costs $$$$\n"
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.DSN != "app:s3cret@tcp(db:3306)/chat" || c.CometChat.APIKey != "sk-live-123" || c.CometChat.BatchSize != 20 {
		t.Errorf("variables not expanded: %+v", c)
	}
	if c.CometChat.Timeout != Duration(30*time.Second) {
		t.Errorf("an empty variable should keep the default timeout, got %s", c.CometChat.Timeout)
	}
}

func TestRedacted(t *testing.T) {
	data := edit("", "  base_url: https://proxy:pxpass@proxy.internal/v3\nmetrics:\n  pushgateway: http://bob:pgpass@pushgateway:9091\n")
	c, err := parse([]byte(data), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	out := c.Redacted()
	for _, s := range []string{"s3cret", "sk-live-123", "pxpass", "pgpass"} {
		if strings.Contains(out, s) {
			t.Errorf("Redacted shows %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"dsn: app:***@tcp(db:3306)/chat\n", "api_key: '***'\n", "https://proxy:***@proxy.internal/v3",
		"http://bob:***@pushgateway:9091", "timeout: 30s\n", "tiebreaker: id\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("Redacted lacks %q:\n%s", s, out)
		}
	}
	// What it prints is a config file itself: it parses back to the same
	// configuration, secrets aside.
	back, err := parse([]byte(out), noEnv)
	if err != nil {
		t.Fatalf("Redacted output does not parse: %v\n%s", err, out)
	}
	back.Source.DSN, back.CometChat.APIKey = c.Source.DSN, c.CometChat.APIKey
	back.CometChat.BaseURL, back.Metrics.Pushgateway = c.CometChat.BaseURL, c.Metrics.Pushgateway
	if !reflect.DeepEqual(back, c) {
		t.Errorf("Redacted round trip:\n got %+v\nwant %+v", back, c)
	}
	if c.CometChat.APIKey != "sk-live-123" {
		t.Error("Redacted changed the config itself")
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct{ driver, dsn, want string }{
		{"mysql", "app:s3cret@tcp(db:3306)/chat", "app:***@tcp(db:3306)/chat"},
		{"mysql", "app:p@ss:w0rd@tcp(db:3306)/chat?parseTime=true", "app:***@tcp(db:3306)/chat?parseTime=true"},
		{"mysql", "app@tcp(db:3306)/chat", "app@tcp(db:3306)/chat"},
		{"mysql", "app:s3cret@tcp(db:3306/chat", "app:***@tcp(db:3306/chat"},
		{"mysql", "", ""},
		{"sqlite", "file:/data/chat.db?_pragma=busy_timeout(5000)", "file:/data/chat.db?_pragma=busy_timeout(5000)"},
		{"", "user:s3cret@host/db", "user:***@host/db"},
		{"postgres", "no password here", "no password here"},
		{"postgres", "postgres://app:s3cr%40t@db:5432/chat?sslmode=require", "postgres://app:***@db:5432/chat?sslmode=require"},
		{"postgres", "postgres://app@db/chat?password=s3cret&sslmode=disable", "postgres://app@db/chat?password=***&sslmode=disable"},
		{"postgres", "host=db user=app password=s3cret dbname=chat", "host=db user=app password=*** dbname=chat"},
		{"postgres", `host=db password='s3 cr\'et' dbname=chat`, "host=db password=*** dbname=chat"},
		{"postgres", "password = s3cret host=db", "password=*** host=db"},
	}
	for _, tt := range tests {
		t.Run(tt.driver+" "+tt.dsn, func(t *testing.T) {
			if got := RedactDSN(tt.driver, tt.dsn); got != tt.want {
				t.Errorf("RedactDSN = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAPIBaseURL(t *testing.T) {
	c := Default()
	c.CometChat.AppID, c.CometChat.Region = "abc123", "eu"
	if got := c.APIBaseURL(); got != "https://abc123.api-eu.cometchat.io/v3" {
		t.Errorf("derived APIBaseURL = %q", got)
	}
	c.CometChat.BaseURL = "http://127.0.0.1:9000/v3/"
	if got := c.APIBaseURL(); got != "http://127.0.0.1:9000/v3" {
		t.Errorf("APIBaseURL with base_url = %q", got)
	}
	c.CometChat.BaseURL = "https://proxy:pxpass@proxy.internal/v3/"
	if got := c.RedactedAPIBaseURL(); got != "https://proxy:***@proxy.internal/v3" {
		t.Errorf("RedactedAPIBaseURL = %q", got)
	}
}

// Every problem of a file is reported at once, each naming its key and
// value, so that fixing a config takes one round, not one per problem.
func TestParseReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
		keys []string
	}{
		{"values", edit("", "  region: usa\n  batch_size: 51\n  concurrency: 0\nlog:\n  level: verbose\n"),
			"config: 4 problems:\n" +
				`  cometchat.region: "usa" is not one of us, eu, in` + "\n" +
				"  cometchat.batch_size: 51 is out of range (1..50, CometChat's limit per import request)\n" +
				"  cometchat.concurrency: 0 is out of range (1..64 batches in flight)\n" +
				`  log.level: "verbose" is not one of debug, info, warn, error`,
			[]string{"cometchat.region", "cometchat.batch_size", "cometchat.concurrency", "log.level"}},
		{"keys and shapes", edit("    tiebreaker: id\n", "    tiebreaker: id\n    lagg: 5s\n    lag: 5\n") + "  timeout: soon\n  batch_size: fifty\n",
			"config: 4 problems:\n" +
				"  line 8: source.cursor.lagg: unknown key (known under source.cursor: column, tiebreaker, lag, start, integer_unit)\n" +
				`  line 9: source.cursor.lag: "5" is not a duration (use Go syntax such as 500ms, 30s, 5m or 1h30m)` + "\n" +
				`  line 13: cometchat.timeout: "soon" is not a duration (use Go syntax such as 500ms, 30s, 5m or 1h30m)` + "\n" +
				`  line 14: cometchat.batch_size: "fifty" is not an integer`,
			[]string{"source.cursor.lagg", "source.cursor.lag", "cometchat.timeout", "cometchat.batch_size"}},
		// A value that depends on a bad one is not reported as well: the
		// DSN of an unknown driver, a backoff order with a bad backoff.
		{"no follow-on problems", edit("  driver: mysql\n  dsn: app:s3cret@tcp(db:3306)/chat", "  driver: oracle\n  dsn: host=db") +
			"  retry:\n    initial_backoff: 0s\n    max_backoff: -1s\n",
			"config: 3 problems:\n" +
				`  source.driver: "oracle" is not one of mysql, postgres, sqlite` + "\n" +
				"  cometchat.retry.initial_backoff: 0s must be more than 0\n" +
				"  cometchat.retry.max_backoff: -1s must be more than 0",
			[]string{"source.driver", "cometchat.retry.initial_backoff", "cometchat.retry.max_backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(tt.yaml), noEnv)
			if err == nil {
				t.Fatal("parse accepted it")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var all ValidationErrors
			if !errors.As(err, &all) {
				t.Fatalf("error %T is not ValidationErrors", err)
			}
			var keys []string
			for _, ve := range all {
				keys = append(keys, ve.Key)
			}
			if !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("keys %v, want %v", keys, tt.keys)
			}
			var first *ValidationError
			if !errors.As(err, &first) || first.Key != tt.keys[0] {
				t.Errorf("errors.As finds %v, want the first problem, %s", first, tt.keys[0])
			}
		})
	}
}

// legacyGroups makes want what a config of the earlier form (source.query
// and source.cursor) parses to: the groups stream only.
func legacyGroups(want *Config) {
	want.Users, want.Members = nil, nil
	want.Groups = &Stream{Query: want.Source.Query, Cursor: want.Source.Cursor}
	want.legacyGroups = true
}

const threeStreams = `source:
  driver: mysql
  dsn: app:s3cret@tcp(db:3306)/chat
users:
  query: SELECT id, updated_at, uid, display_name AS name FROM users
  cursor: {column: updated_at, tiebreaker: id}
groups:
  query: SELECT id, updated_at, guid, title AS name, kind AS type FROM chat_groups
  cursor: {column: updated_at, tiebreaker: id, lag: 2s}
members:
  query: SELECT m.id, m.updated_at, g.guid, m.user_uid AS uid FROM memberships m JOIN chat_groups g ON g.id = m.group_id
  cursor: {column: updated_at, tiebreaker: id}
  via: rest
cometchat:
  app_id: app1
  api_key: sk-live-123
`

func TestParseStreams(t *testing.T) {
	c, err := parse([]byte(threeStreams), noEnv)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var names []string
	for _, st := range c.Streams() {
		names = append(names, st.Name+"@"+st.Key)
	}
	if got := strings.Join(names, " "); got != "users@users groups@groups members@members" {
		t.Errorf("streams = %s, want users, groups, members in that order, each under its own key", got)
	}
	if c.Users.Cursor.Lag.Duration() != 5*time.Second || c.Groups.Cursor.Lag.Duration() != 2*time.Second {
		t.Errorf("lags: users %s (want the default 5s), groups %s (want 2s)", c.Users.Cursor.Lag, c.Groups.Cursor.Lag)
	}
	if c.Members.Via != "rest" {
		t.Errorf("members.via = %q, want rest", c.Members.Via)
	}
	// One stream alone is a config; via defaults to import.
	only := strings.Replace(threeStreams, "  via: rest\n", "", 1)
	only = only[:strings.Index(only, "users:")] + only[strings.Index(only, "members:"):]
	c, err = parse([]byte(only), noEnv)
	if err != nil {
		t.Fatalf("parse members only: %v", err)
	}
	if st := c.Streams(); len(st) != 1 || st[0].Name != "members" || st[0].Via != "import" {
		t.Errorf("members only: %+v, want one members stream via import", st)
	}
	// The earlier form is the groups stream, its keys named as written.
	c, err = parse([]byte(valid), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Streams(); len(st) != 1 || st[0].Name != "groups" || st[0].Key != "source" || st[0].Cursor.Column != "updated_at" {
		t.Errorf("source.query form: %+v, want the groups stream under source", st)
	}
}

func TestParseStreamErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"both forms of the groups stream", threeStreams + "  \n", ""},
		{"no stream", "source:\n  dsn: a:b@tcp(h:1)/d\ncometchat:\n  app_id: a\n  api_key: k\n",
			"config: users: groups and members are all missing: configure at least one stream"},
		{"bad via", strings.Replace(threeStreams, "via: rest", "via: carrier-pigeon", 1),
			`config: members.via: "carrier-pigeon" is not one of import, rest`},
		{"via on users", strings.Replace(threeStreams, "  cursor: {column: updated_at, tiebreaker: id}\ngroups:", "  cursor: {column: updated_at, tiebreaker: id}\n  via: rest\ngroups:", 1),
			`config: users.via: "rest" is for members only`},
		{"a stream's keys named", strings.Replace(threeStreams, "  cursor: {column: updated_at, tiebreaker: id}\n  via: rest", "  cursor: {tiebreaker: id}\n  via: rest", 1),
			"config: members.cursor.column: is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				both := strings.Replace(threeStreams, "source:\n  driver: mysql\n", "source:\n  driver: mysql\n  query: SELECT 1\n  cursor: {column: a, tiebreaker: b}\n", 1)
				_, err := parse([]byte(both), noEnv)
				if err == nil || !strings.Contains(err.Error(), "groups") || !strings.Contains(err.Error(), "source.query") {
					t.Errorf("both forms: %v, want an error naming groups and source.query", err)
				}
				return
			}
			_, err := parse([]byte(tc.yaml), noEnv)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to start with %s", err, tc.want)
			}
		})
	}
}
