package source

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newSQLite creates a SQLite database file with schema and returns its DSN
// and a connection for setting it up.
func newSQLite(t *testing.T, schema string) (string, *sql.DB) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "source.db")
	db := sqlOpen(t, DriverSQLite, dsn)
	mustExec(t, db, schema)
	return dsn, db
}

// SQLite date-times are text, compared as text; a column declared DATETIME
// (which modernc.org/sqlite reads as time.Time) must compare just the same.
func TestSQLiteTextCursor(t *testing.T) {
	for _, declared := range []string{"TEXT", "DATETIME"} {
		t.Run(declared, func(t *testing.T) {
			dsn, db := newSQLite(t, `
				CREATE TABLE users (uid TEXT PRIMARY KEY, name TEXT);
				CREATE TABLE chat_groups (id INTEGER PRIMARY KEY, title TEXT, owner_uid TEXT, updated_at `+declared+` NOT NULL);
				CREATE INDEX idx_updated ON chat_groups (updated_at, id);
				INSERT INTO users VALUES ('u1', 'One');`)
			// 150 rows over 30 milliseconds: five per millisecond, ids
			// against time.
			var want []string
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			for i := range 150 {
				at := time.Date(2024, 5, 1, 10, 0, 59, 985_000_000, time.UTC).Add(time.Duration(i/5) * time.Millisecond).Format("2006-01-02 15:04:05.000")
				id := 1000 - i
				if _, err := tx.Exec(`INSERT INTO chat_groups VALUES (?, ?, 'u1', ?)`, id, fmt.Sprintf("Group %d", id), at); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			for ms := range 30 {
				for i := 4; i >= 0; i-- {
					want = append(want, strconv.Itoa(1000-ms*5-i))
				}
			}
			// Newer than the clock minus the lag, and in the future.
			mustExec(t, db, `INSERT INTO chat_groups VALUES
				(1, 'recent', 'u1', strftime('%Y-%m-%d %H:%M:%f', 'now', '-10 seconds')),
				(2, 'future', 'u1', strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 hour'))`)
			mustExec(t, db, `ANALYZE`)

			s := openSource(t, Config{Driver: DriverSQLite, DSN: dsn,
				Query:  "SELECT g.id, g.title, u.name AS owner_name, g.updated_at FROM chat_groups g LEFT JOIN users u ON u.uid = g.owner_uid;",
				Cursor: "updated_at", Tiebreaker: "id", Lag: time.Minute})
			ctx := context.Background()
			if kind, err := s.CursorKind(ctx); err != nil || kind != KindText {
				t.Fatalf("CursorKind = %v, %v; want text", kind, err)
			}
			upper := upperBound(t, s)
			if upper.Kind != KindText || len(upper.Text) != len("2006-01-02 15:04:05.000") {
				t.Errorf("UpperBound = %v %q, want 'YYYY-MM-DD HH:MM:SS.SSS' text", upper.Kind, upper.Text)
			}
			for _, limit := range []int{2, 7, 1000} {
				got := readAll(t, s, nil, upper, limit)
				if d := diff(keys(got), want); d != "" {
					t.Fatalf("limit %d: %s", limit, d)
				}
				if got[0].Cursor.Text != "2024-05-01 10:00:59.985" {
					t.Fatalf("first cursor = %#v, want the stored text", got[0].Cursor)
				}
				if len(got[0].Values) != 4 {
					t.Fatalf("row has %d values, want the query's 4", len(got[0].Values))
				}
			}
			if n, err := s.Count(ctx, nil, upper); err != nil || n != 150 {
				t.Errorf("Count = %d, %v; want 150", n, err)
			}
			start, err := ParseStart("2024-05-01T10:01:00Z", false)
			if err != nil {
				t.Fatal(err)
			}
			// Exclusive: the five rows stamped 10:01:00.000 are not after it.
			if got := readAll(t, s, &Position{Cursor: start}, upper, 50); diff(keys(got), want[80:]) != "" {
				t.Errorf("from %s: %s", start, diff(keys(got), want[80:]))
			}
			if got, err := s.ReadKeys(ctx, []Value{{Kind: KindInt, Int: 2}, {Kind: KindInt, Int: 999}, {Kind: KindInt, Int: 5}}); err != nil || diff(keys(got), []string{"999", "2"}) != "" {
				t.Errorf("ReadKeys = %v, %v; want 999 then 2", keys(got), err)
			}

			plan := explainSQLite(t, db, s)
			if !strings.Contains(plan, "USING INDEX idx_updated") || strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("the page query does not read idx_updated in order:\n%s", plan)
			}
		})
	}
}

func explainSQLite(t *testing.T, db *sql.DB, s *Source) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+s.PageSQL(true), "2024-05-01 10:01:00.000", "2024-05-01 10:01:00.000", 1, "2025-01-01", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// An integer cursor in SQLite, including unix milliseconds in a column
// declared DATETIME.
func TestSQLiteIntegerCursor(t *testing.T) {
	for _, declared := range []string{"INTEGER", "DATETIME"} {
		t.Run(declared, func(t *testing.T) {
			dsn, db := newSQLite(t, `CREATE TABLE events (id INTEGER PRIMARY KEY, updated_ms `+declared+` NOT NULL)`)
			nowMs := time.Now().UnixMilli()
			mustExec(t, db, `INSERT INTO events VALUES (1, ?), (2, ?), (3, ?), (4, ?)`,
				nowMs-120_000, nowMs-120_000, nowMs-10_000, nowMs+3_600_000)
			s := openSource(t, Config{Driver: DriverSQLite, DSN: dsn, Query: "SELECT * FROM events",
				Cursor: "updated_ms", Tiebreaker: "id", Lag: time.Minute, IntegerUnit: UnitMilliseconds})
			if kind, err := s.CursorKind(context.Background()); err != nil || kind != KindInt {
				t.Fatalf("CursorKind = %v, %v; want int", kind, err)
			}
			upper := upperBound(t, s)
			if d := upper.Int - (time.Now().UnixMilli() - 60_000); upper.Kind != KindInt || d > 0 || d < -5_000 {
				t.Errorf("UpperBound = %v %s, want about %d (now minus a minute, in ms)", upper.Kind, upper, time.Now().UnixMilli()-60_000)
			}
			if got := readAll(t, s, nil, upper, 1); diff(keys(got), []string{"1", "2"}) != "" {
				t.Errorf("read %v, want 1 and 2 (the rows older than the lag)", keys(got))
			}
		})
	}
}
