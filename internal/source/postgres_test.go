package source

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Each PostgreSQL cursor type is read at full microsecond precision and
// passed back exactly as read: rows a microsecond apart, and ties, across
// pages of one row, with the position through JSON, each read once.
func TestPostgresCursorTypes(t *testing.T) {
	for _, tc := range []struct {
		typ, values string // values: the cursor of rows 1..6, in order
		kind        Kind
	}{
		{"timestamptz", `'2024-05-01 10:00:00.000001+00', '2024-05-01 10:00:00.000001+00', '2024-05-01 12:00:00.000002+02',
			'2024-05-01 10:00:00.000003+00', '2024-05-01 10:00:00.999999+00', '2024-05-02 00:00:00+00'`, KindTime},
		{"timestamp", `'2024-05-01 10:00:00.000001', '2024-05-01 10:00:00.000001', '2024-05-01 10:00:00.000002',
			'2024-05-01 10:00:00.000003', '2024-05-01 10:00:00.999999', '2024-05-02 00:00:00'`, KindTime},
		{"date", `'2024-05-01', '2024-05-01', '2024-05-02', '2024-05-03', '2024-05-04', '2024-05-05'`, KindTime},
		{"bigint", `1714557600000001, 1714557600000001, 1714557600000002, 1714557600000003, 1714557600999999, 1714608000000000`, KindInt},
		{"integer", `1714557601, 1714557601, 1714557602, 1714557603, 1714557604, 1714557605`, KindInt},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			td := newPGDB(t, fmt.Sprintf(`CREATE TABLE ev (id bigint PRIMARY KEY, at %s NOT NULL);
				INSERT INTO ev SELECT i, (ARRAY[%s]::%s[])[i] FROM generate_series(1, 6) AS i;
				CREATE INDEX ON ev (at, id)`, tc.typ, tc.values, tc.typ))
			// The session's zone must not matter: values come back as read.
			s := openSource(t, Config{Driver: DriverPostgres, DSN: td.reader + "&timezone=America/New_York",
				Query: "SELECT id, at FROM ev", Cursor: "at", Tiebreaker: "id"})
			kind, err := s.CursorKind(context.Background())
			if err != nil || kind != tc.kind {
				t.Fatalf("CursorKind = %v, %v; want %v", kind, err, tc.kind)
			}
			upper := upperBound(t, s)
			if upper.Kind != tc.kind {
				t.Errorf("UpperBound kind %v, want %v", upper.Kind, tc.kind)
			}
			rows := readAll(t, s, nil, upper, 1)
			if got := strings.Join(keys(rows), ","); got != "1,2,3,4,5,6" {
				t.Errorf("read %s; want 1,2,3,4,5,6 each once", got)
			}
			// The third row's cursor, sent back, finds exactly the rows after it.
			var stored string
			if err := td.root.QueryRow("SELECT at::text FROM ev WHERE id = 3").Scan(&stored); err != nil {
				t.Fatal(err)
			}
			n, err := s.Count(context.Background(), roundTrip(t, Position{Cursor: rows[2].Cursor}), upper)
			if err != nil || n != 3 {
				t.Errorf("Count after cursor %s (stored %s) = %d, %v; want 3", rows[2].Cursor, stored, n, err)
			}
		})
	}
}

// The upper bound is the statement's clock (clock_timestamp()), not the
// transaction's start: in a session whose transaction began a while ago,
// the bound still moves.
func TestPostgresUpperBoundIsTheStatementClock(t *testing.T) {
	td := newPGDB(t, `CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz)`)
	s := openSource(t, Config{Driver: DriverPostgres, DSN: td.reader, Query: "SELECT id, at FROM ev", Cursor: "at", Tiebreaker: "id"})
	var dbNow time.Time
	if err := td.root.QueryRow("SELECT clock_timestamp()").Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	upper := upperBound(t, s)
	if d := upper.Time.Sub(dbNow); d < 0 || d > time.Minute {
		t.Errorf("upper bound %s is %s from the database clock %s", upper, d, dbNow)
	}
	if !strings.Contains(s.d.(*postgresDialect).clockMicros(), "clock_timestamp()") {
		t.Error("the integer clock is not the statement's")
	}
	q, _ := s.d.upperBound("TIMESTAMPTZ", 0)
	if strings.Contains(q, "now()") {
		t.Errorf("upper bound query %q uses now(), the transaction's start", q)
	}
}

// The column types a mapping reads come back in forms it accepts:
// numeric and uuid as text, jsonb and json as JSON text, text[] as
// PostgreSQL's array literal; a uuid or text tiebreaker orders and resumes.
func TestPostgresColumnTypesAndTiebreakers(t *testing.T) {
	td := newPGDB(t, `CREATE TABLE g (
			id uuid PRIMARY KEY, slug text NOT NULL UNIQUE, score numeric(10,2), meta jsonb, extra json, tags text[],
			updated_at timestamptz NOT NULL);
		INSERT INTO g SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, 'slug-' || lpad(i::text, 4, '0'),
			i * 1.5, jsonb_build_object('n', i), json_build_object('m', i), ARRAY['a', 'b c', 't' || i],
			timestamptz '2024-01-01 00:00:00+00' FROM generate_series(1, 1200) AS i`)
	for _, key := range []string{"id", "slug"} {
		t.Run(key, func(t *testing.T) {
			s := openSource(t, Config{Driver: DriverPostgres, DSN: td.reader,
				Query: "SELECT id, slug, score, meta, extra, tags, updated_at FROM g", Cursor: "updated_at", Tiebreaker: key})
			rows := readAll(t, s, nil, upperBound(t, s), 100)
			if len(rows) != 1200 {
				t.Fatalf("read %d rows, want 1200", len(rows))
			}
			seen := map[string]bool{}
			for _, r := range rows {
				if seen[r.Key.String()] {
					t.Fatalf("key %s read twice", r.Key)
				}
				seen[r.Key.String()] = true
			}
			got, err := s.ReadKeys(context.Background(), []Value{rows[0].Key, rows[999].Key})
			if err != nil || len(got) != 2 {
				t.Fatalf("ReadKeys = %d rows, %v", len(got), err)
			}
			first := rows[0].Values
			want := []string{"00000000-0000-0000-0000-000000000001", "slug-0001", "1.50", `{"n": 1}`, `{"m" : 1}`, `{a,"b c",t1}`}
			for i, w := range want {
				if g := text(first[i]); g != w {
					t.Errorf("column %d = %q (%T), want %q", i, g, first[i], w)
				}
			}
			var meta map[string]any
			if err := json.Unmarshal([]byte(text(first[3])), &meta); err != nil {
				t.Errorf("jsonb is not JSON text: %v", err)
			}
		})
	}
}

// check's plan on PostgreSQL: in index order only for an index scan on
// (cursor, tiebreaker) with no sort; otherwise the table and columns an
// index would serve are named, and a query PostgreSQL cannot pull up is
// reported as built in full for every page.
func TestPostgresPlan(t *testing.T) {
	const plain = "SELECT g.id, g.guid, g.updated_at FROM chat_groups g JOIN users u ON u.uid = g.owner"
	tests := []struct {
		name, index, query  string
		inOrder, mat        bool
		keysetIndex, column string
	}{
		{"index on (cursor, tiebreaker)", "CREATE INDEX idx_keyset ON chat_groups (updated_at, id)", plain, true, false, "idx_keyset", "updated_at"},
		{"no index", "", plain, false, false, "", "updated_at"},
		{"index on the cursor alone", "CREATE INDEX idx_updated ON chat_groups (updated_at)", plain, false, false, "", "updated_at"},
		{"cursor is an expression", "CREATE INDEX idx_keyset ON chat_groups (updated_at, id)",
			"SELECT g.id, g.guid, greatest(g.updated_at, g.created_at) AS updated_at FROM chat_groups g", false, false, "", ""},
		{"grouped query", "CREATE INDEX idx_keyset ON chat_groups (updated_at, id)",
			"SELECT g.id, max(g.guid) AS guid, max(g.updated_at) AS updated_at FROM chat_groups g GROUP BY g.id", false, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := newPGDB(t, `CREATE TABLE users (uid text PRIMARY KEY);
				CREATE TABLE chat_groups (id bigint PRIMARY KEY, guid text, owner text, created_at timestamptz, updated_at timestamptz NOT NULL);
				INSERT INTO users SELECT 'u' || i FROM generate_series(1, 100) AS i;
				INSERT INTO chat_groups SELECT i, 'g' || i, 'u' || (i % 100 + 1), timestamptz '2024-01-01 00:00:00+00',
					timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, 20000) AS i;
				`+tt.index+`;
				ANALYZE users; ANALYZE chat_groups`)
			s := openSource(t, Config{Driver: DriverPostgres, DSN: td.reader, Query: tt.query, Cursor: "updated_at", Tiebreaker: "id"})
			upper := upperBound(t, s)
			page, err := s.ReadPage(context.Background(), nil, upper, 1)
			if err != nil || len(page) != 1 {
				t.Fatalf("first row: %v %v", page, err)
			}
			plan, err := s.ExplainPage(context.Background(), Position{Cursor: page[0].Cursor, Key: page[0].Key}, upper, 100)
			if err != nil {
				t.Fatal(err)
			}
			if plan.InIndexOrder() != tt.inOrder || plan.Materialized != tt.mat || plan.KeysetIndex() != tt.keysetIndex ||
				plan.CursorColumn != tt.column {
				t.Errorf("InIndexOrder %t (want %t), Materialized %t (want %t), KeysetIndex %q (want %q), CursorColumn %q (want %q): %+v",
					plan.InIndexOrder(), tt.inOrder, plan.Materialized, tt.mat, plan.KeysetIndex(), tt.keysetIndex, plan.CursorColumn, tt.column, plan)
			}
			if !tt.inOrder && !plan.Sorts() && !plan.FullScan() {
				t.Errorf("a plan out of index order should sort or scan: %+v", plan)
			}
			if tt.column != "" && (plan.BaseTable != "chat_groups" || plan.TiebreakerColumn != "id") {
				t.Errorf("BaseTable %q, TiebreakerColumn %q; want chat_groups, id", plan.BaseTable, plan.TiebreakerColumn)
			}
			t.Logf("%+v", plan)
		})
	}
}
