package source

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/pgtest"
)

// srv is the one MariaDB the package's tests share, and pgsrv the one
// PostgreSQL; each test creates its own database on them.
var (
	srv   *mariadbtest.Server
	pgsrv *pgtest.Server
)

func TestMain(m *testing.M) {
	pg, err := pgtest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pgsrv = pg
	code := mariadbtest.RunMain(m, &srv)
	pg.Stop()
	os.Exit(code)
}

// groupsSchema is the shape of a typical source: groups, with their owner
// joined from users.
const groupsSchema = `
CREATE TABLE users (uid VARCHAR(100) PRIMARY KEY, name VARCHAR(200));
CREATE TABLE chat_groups (
	id BIGINT PRIMARY KEY AUTO_INCREMENT,
	guid VARCHAR(100),
	title VARCHAR(200),
	kind VARCHAR(20),
	owner_uid VARCHAR(100),
	created_at DATETIME(6),
	updated_at DATETIME(6) NOT NULL,
	KEY idx_updated (updated_at, id)
);`

// groupsQuery is the user's query over groupsSchema, with a LEFT JOIN.
const groupsQuery = `SELECT g.id, g.guid, g.title, g.kind, g.owner_uid, u.name AS owner_name, g.created_at, g.updated_at
FROM chat_groups g LEFT JOIN users u ON u.uid = g.owner_uid`

// testDB is a fresh database on srv: root for setting it up, reader (a
// SELECT-only user's DSN, no parameters) for the Source.
type testDB struct {
	root   *sql.DB
	reader string
}

func newDB(t testing.TB, schema string) testDB {
	t.Helper()
	rootDSN := srv.CreateDatabase(t, t.Name())
	root := sqlOpen(t, "mysql", rootDSN)
	mustExec(t, root, schema)
	return testDB{root: root, reader: srv.CreateReader(t, rootDSN)}
}

func sqlOpen(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// groupsConfig reads groupsQuery through dsn.
func groupsConfig(dsn string) Config {
	return Config{Driver: DriverMySQL, DSN: dsn, Query: groupsQuery, Cursor: "updated_at", Tiebreaker: "id"}
}

func openSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	s, err := Open(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func upperBound(t testing.TB, s *Source) Value {
	t.Helper()
	upper, err := s.UpperBound(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return upper
}

// readAll reads every page after start up to upper, as a pass does, and
// checks each page's size. The position goes through JSON between pages, as
// it does through the state store when a pass resumes.
func readAll(t testing.TB, s *Source, start *Position, upper Value, limit int) []Row {
	t.Helper()
	var all []Row
	after := start
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatal("readAll: still reading after 100,000 pages; the keyset does not advance")
		}
		page, err := s.ReadPage(context.Background(), after, upper, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > limit {
			t.Fatalf("ReadPage(limit %d) returned %d rows", limit, len(page))
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		last := page[len(page)-1]
		after = roundTrip(t, Position{Cursor: last.Cursor, Key: last.Key})
	}
}

func roundTrip(t testing.TB, p Position) *Position {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Position
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return &back
}

// keys returns the rows' keys in order, as strings.
func keys(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Key.String()
	}
	return out
}

// column returns the index of a column in Row.Values.
func column(t testing.TB, s *Source, name string) int {
	t.Helper()
	cols, err := s.Columns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cols {
		if c == name {
			return i
		}
	}
	t.Fatalf("no column %q in %v", name, cols)
	return -1
}

// text returns a column value read as []byte or string.
func text(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case nil:
		return "<NULL>"
	default:
		return fmt.Sprint(x)
	}
}

// diff describes how got differs from want, or returns "".
func diff(got, want []string) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d rows, want %d\n got: %s\nwant: %s", len(got), len(want), abbrev(got), abbrev(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("row %d: got %s, want %s\n got: %s\nwant: %s", i, got[i], want[i], abbrev(got), abbrev(want))
		}
	}
	return ""
}

func abbrev(s []string) string {
	if len(s) > 20 {
		return strings.Join(s[:10], " ") + " … " + strings.Join(s[len(s)-10:], " ")
	}
	return strings.Join(s, " ")
}

// dbMicros returns the database clock as unix microseconds.
func dbMicros(t testing.TB, db *sql.DB) int64 {
	t.Helper()
	var us int64
	if err := db.QueryRow("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))").Scan(&us); err != nil {
		t.Fatal(err)
	}
	return us
}
