package source

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// channelsSchema is the shape of a real chat product's channels table: a
// bigint cursor of epoch milliseconds, names unique only per team, a
// soft-delete column with its own index and no index on the cursor, and an
// enum type.
const channelsSchema = `CREATE TABLE channels (
	id VARCHAR(26) PRIMARY KEY,
	team_id VARCHAR(26) NOT NULL,
	name VARCHAR(64) NOT NULL,
	type ENUM('O', 'P') NOT NULL,
	update_at BIGINT NOT NULL,
	delete_at BIGINT NOT NULL DEFAULT 0,
	UNIQUE KEY (name, team_id),
	KEY idx_delete_at (delete_at)
)`

// insertChannels writes n channels updated an hour ago and earlier, with
// update_at in epoch milliseconds.
func insertChannels(t testing.TB, td testDB, n int) {
	t.Helper()
	mustExec(t, td.root, `INSERT INTO channels (id, team_id, name, type, update_at)
		SELECT CONCAT('c', seq), CONCAT('t', seq % 3), CONCAT('town-square-', seq DIV 3), ELT(1 + seq % 2, 'O', 'P'),
			TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000 - 3600000 - seq * 1000
		FROM seq_1_to_`+itoa(n))
}

func itoa(n int) string { return Value{Kind: KindInt, Int: int64(n)}.String() }

func channelsConfig(dsn, unit string) Config {
	return Config{Driver: DriverMySQL, DSN: dsn, Query: "SELECT id, name, type, update_at FROM channels WHERE delete_at = 0",
		Cursor: "update_at", Tiebreaker: "id", Lag: 5 * time.Second, IntegerUnit: unit}
}

// With no integer_unit, a bigint cursor of milliseconds is read in
// milliseconds: the pass reads every row, none is beyond its bound.
func TestUnitDetectedFromTheData(t *testing.T) {
	td := newDB(t, channelsSchema)
	insertChannels(t, td, 50)
	for _, unit := range []string{"", UnitMilliseconds} {
		s := openSource(t, channelsConfig(td.reader, unit))
		c, err := s.Unit(context.Background())
		if err != nil {
			t.Fatalf("integer_unit %q: %v", unit, err)
		}
		if c.Unit != UnitMilliseconds || c.Detected != UnitMilliseconds || c.Configured != unit {
			t.Errorf("integer_unit %q: Unit = %+v, want milliseconds detected", unit, c)
		}
		upper := upperBound(t, s)
		if got := len(readAll(t, s, nil, upper, 20)); got != 50 {
			t.Errorf("integer_unit %q: a pass reads %d rows, want 50", unit, got)
		}
		r, err := s.CursorRange(context.Background(), upper)
		if err != nil {
			t.Fatal(err)
		}
		if r.Beyond != 0 || r.AtOrBelow != 1 || r.MostlyBeyond() {
			t.Errorf("integer_unit %q: CursorRange = %+v, want nothing beyond the bound", unit, r)
		}
	}
}

// A configured unit the data contradicts is refused, naming the key, both
// units and a value, before anything is read.
func TestUnitContradictedByTheData(t *testing.T) {
	td := newDB(t, channelsSchema)
	insertChannels(t, td, 5)
	s := openSource(t, channelsConfig(td.reader, UnitSeconds))
	var max int64
	if err := td.root.QueryRow("SELECT MAX(update_at) FROM channels").Scan(&max); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpperBound(context.Background())
	var ue *UnitError
	if !errors.As(err, &ue) {
		t.Fatalf("UpperBound with integer_unit seconds over milliseconds: %v, want a *UnitError", err)
	}
	for _, want := range []string{`source.cursor.integer_unit: "seconds"`, `"update_at" holds milliseconds`, itoa(int(max)),
		"set integer_unit: milliseconds"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// An empty table, or values whose magnitude is no epoch time, fall back to
// seconds (or the configured unit) without an error.
func TestUnitAmbiguous(t *testing.T) {
	td := newDB(t, channelsSchema)
	for _, tc := range []struct {
		name, insert, unit, want string
	}{
		{"empty", "", "", UnitSeconds},
		{"small numbers", "INSERT INTO channels (id, team_id, name, type, update_at) VALUES ('a', 't', 'a', 'O', 1), ('b', 't', 'b', 'O', 7)", "", UnitSeconds},
		{"small numbers, milliseconds set", "", UnitMilliseconds, UnitMilliseconds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.insert != "" {
				mustExec(t, td.root, tc.insert)
			}
			c, err := openSource(t, channelsConfig(td.reader, tc.unit)).Unit(context.Background())
			if err != nil || c.Unit != tc.want || c.Detected != "" {
				t.Errorf("Unit = %+v, %v; want %s, nothing detected", c, err, tc.want)
			}
		})
	}
}

// Rows dated after the bound (a DATETIME cursor written in a zone ahead of
// the database's) are counted, and most of the table beyond is told apart
// from a few rows.
func TestCursorRange(t *testing.T) {
	td := newDB(t, groupsSchema)
	mustExec(t, td.root, `INSERT INTO chat_groups (guid, updated_at) SELECT CONCAT('g', seq), NOW(6) - INTERVAL seq MINUTE FROM seq_1_to_100`)
	s := openSource(t, groupsConfig(td.reader))
	upper := upperBound(t, s)
	ctx := context.Background()
	r, err := s.CursorRange(ctx, upper)
	if err != nil {
		t.Fatal(err)
	}
	if r.Beyond != 0 || r.MostlyBeyond() || r.Min.IsZero() || r.Max.IsZero() {
		t.Errorf("healthy table: %+v", r)
	}
	// 10 rows in the future: counted, not most of the table; the count
	// below the bound stops at 11.
	mustExec(t, td.root, `INSERT INTO chat_groups (guid, updated_at) SELECT CONCAT('f', seq), NOW(6) + INTERVAL 5 HOUR FROM seq_1_to_10`)
	if r, err = s.CursorRange(ctx, upper); err != nil {
		t.Fatal(err)
	}
	if r.Beyond != 10 || r.AtOrBelow != 11 || r.MostlyBeyond() {
		t.Errorf("10 of 110 rows beyond: %+v, want Beyond 10, AtOrBelow 11, not most", r)
	}
	if !strings.HasPrefix(r.Max.String(), time.Now().UTC().Add(5*time.Hour).Format("2006-01-02")) &&
		!strings.HasPrefix(r.Max.String(), time.Now().Add(5*time.Hour).Format("2006-01-02")) {
		t.Errorf("Max = %s, want the future-dated rows' time", r.Max)
	}
	mustExec(t, td.root, `UPDATE chat_groups SET updated_at = updated_at + INTERVAL 5 HOUR`)
	if r, err = s.CursorRange(ctx, upper); err != nil {
		t.Fatal(err)
	}
	if r.Beyond != 110 || r.AtOrBelow != 0 || !r.MostlyBeyond() {
		t.Errorf("every row beyond: %+v, want Beyond 110 and most", r)
	}
}

func TestDetectUnitAndReadable(t *testing.T) {
	for _, tc := range []struct {
		n        int64
		unit     string
		ok       bool
		readable string
	}{
		{1733131200, UnitSeconds, true, "1733131200 (2024-12-02 09:20:00 UTC)"},
		{1733131200000, UnitMilliseconds, true, "1733131200000 (2024-12-02 09:20:00 UTC)"},
		{1733131200123456, UnitMicroseconds, true, "1733131200123456 (2024-12-02 09:20:00.123456 UTC)"},
		{42, "", false, "42"},
		{50_000_000_000, "", false, "50000000000"},
	} {
		unit, ok := DetectUnit(tc.n)
		if unit != tc.unit || ok != tc.ok {
			t.Errorf("DetectUnit(%d) = %q, %v; want %q, %v", tc.n, unit, ok, tc.unit, tc.ok)
		}
		if tc.ok {
			if got := (Value{Kind: KindInt, Int: tc.n}).Readable(unit); got != tc.readable {
				t.Errorf("Readable(%d, %s) = %q, want %q", tc.n, unit, got, tc.readable)
			}
		}
	}
	if got := (Value{Kind: KindInt, Int: 1733131200000}).Readable(""); got != "1733131200000 (2024-12-02 09:20:00 UTC)" {
		t.Errorf("Readable with the unit told from the magnitude = %q", got)
	}
	if got := (Value{Kind: KindInt, Int: 42}).Readable(""); got != "42" {
		t.Errorf("Readable(42, no unit) = %q, want the integer alone", got)
	}
	if got := (Value{Kind: KindText, Text: "2024-05-01 10:00:00"}).Readable(UnitSeconds); got != "2024-05-01 10:00:00" {
		t.Errorf("a date-time cursor is shown as %q", got)
	}
}

// Names unique only per team, used as guid, are found as duplicates in the
// whole query, case and spaces aside, with the keys of their rows.
func TestDuplicates(t *testing.T) {
	td := newDB(t, channelsSchema)
	insertChannels(t, td, 9) // names town-square-0..3, most in 3 teams
	mustExec(t, td.root, "INSERT INTO channels (id, team_id, name, type, update_at) VALUES ('x1', 'ta', 'Solo', 'O', 1733131200000), ('x2', 'tb', ' solo', 'O', 1733131200000)")
	s := openSource(t, Config{Driver: DriverMySQL, DSN: td.reader, Query: "SELECT id, name AS guid, update_at FROM channels",
		Cursor: "update_at", Tiebreaker: "id"})
	if d, err := s.Duplicates(context.Background(), "guid", 2); err != nil || len(d.Examples) != 2 || d.Values != 4 {
		t.Fatalf("Duplicates with 2 examples = %+v, %v; want 2 examples of 4", d, err)
	}
	d, err := s.Duplicates(context.Background(), "guid", 10)
	if err != nil {
		t.Fatal(err)
	}
	// seq 1..9: town-square-0 (1, 2), -1 (3, 4, 5), -2 (6, 7, 8); -3 (9) alone.
	if d.Values != 4 || d.Rows != 10 || len(d.Examples) != 4 {
		t.Fatalf("Duplicates = %+v, want 4 values over 10 rows", d)
	}
	seen := map[string]string{}
	for _, ex := range d.Examples {
		seen[ex.Value] = ex.First.String() + " " + ex.Last.String()
	}
	if got := seen["solo"]; got != "x1 x2" {
		t.Errorf("solo's rows: %s, want x1 x2", got)
	}
	// A unique composite key has none.
	s = openSource(t, Config{Driver: DriverMySQL, DSN: td.reader, Query: "SELECT id, CONCAT(team_id, '-', name) AS guid, update_at FROM channels",
		Cursor: "update_at", Tiebreaker: "id"})
	if d, err := s.Duplicates(context.Background(), "guid", 2); err != nil || d.Values != 0 || len(d.Examples) != 0 {
		t.Errorf("CONCAT(team_id, '-', name): %+v, %v; want no duplicates", d, err)
	}
}
