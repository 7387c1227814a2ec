package source

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// The incremental page query must be an index range scan on
// (updated_at, id), read in index order, with the user's derived table
// (a LEFT JOIN) merged: otherwise every page of a large table is a full
// scan and a sort.
func TestPageQueryUsesIndex(t *testing.T) {
	db := newDB(t, groupsSchema)
	mustExec(t, db.root, `INSERT INTO users SELECT CONCAT('u', seq), CONCAT('User ', seq) FROM seq_1_to_200`)
	mustExec(t, db.root, `INSERT INTO chat_groups (guid, title, kind, owner_uid, created_at, updated_at)
		SELECT CONCAT('g', seq), CONCAT('Group ', seq), 'public', CONCAT('u', seq % 250), '2024-01-01',
			'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_2000`)
	mustExec(t, db.root, `ANALYZE TABLE chat_groups, users`)

	s := openSource(t, groupsConfig(db.reader+"?parseTime=true"))
	upper := upperBound(t, s)
	ctx := context.Background()
	page, err := s.ReadPage(ctx, nil, upper, 1000)
	if err != nil {
		t.Fatal(err)
	}
	after := page[len(page)-1]

	reader := sqlOpen(t, "mysql", db.reader+"?parseTime=true")
	rows, err := reader.QueryContext(ctx, "EXPLAIN "+s.PageSQL(true),
		after.Cursor.Arg(), after.Cursor.Arg(), after.Key.Arg(), upper.Arg(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	found := false
	for rows.Next() {
		var id, selectType, table, typ, possibleKeys, key, keyLen, ref, nrows, extra *string
		if err := rows.Scan(&id, &selectType, &table, &typ, &possibleKeys, &key, &keyLen, &ref, &nrows, &extra); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("table=%s type=%s key=%s key_len=%s rows=%s extra=%s", str(table), str(typ), str(key), str(keyLen), str(nrows), str(extra))
		plan = append(plan, line)
		if strings.HasPrefix(str(table), "<derived") {
			t.Errorf("the derived table is materialized, not merged: %s", line)
		}
		if str(table) != "g" {
			continue
		}
		found = true
		if typ := str(typ); typ != "range" && typ != "ref" {
			t.Errorf("chat_groups access type %q, want range (or ref): %s", typ, line)
		}
		if str(key) != "idx_updated" {
			t.Errorf("chat_groups key %q, want idx_updated: %s", str(key), line)
		}
		if strings.Contains(str(extra), "filesort") {
			t.Errorf("the page is sorted, not read in index order: %s", line)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("no plan row for chat_groups")
	}
	t.Logf("EXPLAIN %s\n%s", s.PageSQL(true), strings.Join(plan, "\n"))
}

func str(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// Thousands of rows sharing one timestamp (a bulk update) are all read,
// once each, in order, across page boundaries.
func TestReadPageTies(t *testing.T) {
	db := newDB(t, groupsSchema)
	mustExec(t, db.root, `INSERT INTO chat_groups (id, guid, title, updated_at)
		SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), '2024-05-01 10:00:00.123456' FROM seq_1_to_3000`)

	s := openSource(t, groupsConfig(db.reader))
	upper := upperBound(t, s)
	ctx := context.Background()
	if n, err := s.Count(ctx, nil, upper); err != nil || n != 3000 {
		t.Errorf("Count(start) = %d, %v; want 3000", n, err)
	}

	got := readAll(t, s, nil, upper, 100)
	want := make([]string, 3000)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	if d := diff(keys(got), want); d != "" {
		t.Fatal(d)
	}
	title := column(t, s, "title")
	for i, r := range got {
		// The row values are the rows' own: later pages did not overwrite
		// the driver buffers they came from.
		if w := fmt.Sprintf("Group %d", i+1); text(r.Values[title]) != w {
			t.Fatalf("row %d title = %q, want %q", i, text(r.Values[title]), w)
		}
		if r.Cursor.String() != "2024-05-01 10:00:00.123456" {
			t.Fatalf("row %d cursor = %q, want the stored 2024-05-01 10:00:00.123456", i, r.Cursor.String())
		}
	}

	mid := Position{Cursor: got[1499].Cursor, Key: got[1499].Key}
	if n, err := s.Count(ctx, &mid, upper); err != nil || n != 1500 {
		t.Errorf("Count(after row 1500) = %d, %v; want 1500", n, err)
	}
}

// Rows a microsecond apart are neither skipped nor read twice, whether the
// driver reads the cursor as text or as time.Time, for DATETIME(6) and
// TIMESTAMP(6) columns.
func TestReadPageMicroseconds(t *testing.T) {
	for _, colType := range []string{"DATETIME(6)", "TIMESTAMP(6)"} {
		for _, parseTime := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/parseTime=%t", colType, parseTime), func(t *testing.T) {
				db := newDB(t, `CREATE TABLE events (
					id BIGINT PRIMARY KEY, title VARCHAR(50), updated_at `+colType+` NOT NULL,
					KEY idx_updated (updated_at, id))`)

				// 40 instants 1 µs apart across a second boundary, the first
				// ten with two rows each; ids run against time, so only the
				// cursor orders them.
				type stamped struct {
					at string
					id int
				}
				var want []stamped
				var values []string
				base := time.Date(2024, 3, 10, 12, 0, 0, 999_980_000, time.UTC)
				for i := range 40 {
					at := base.Add(time.Duration(i) * time.Microsecond).Format("2006-01-02 15:04:05.000000")
					ids := []int{1000 - i}
					if i < 10 {
						ids = append(ids, 2000-i)
					}
					for _, id := range ids {
						want = append(want, stamped{at, id})
						values = append(values, fmt.Sprintf("(%d, 'event %d', '%s')", id, id, at))
					}
				}
				mustExec(t, db.root, "INSERT INTO events (id, title, updated_at) VALUES "+strings.Join(values, ", "))

				dsn := db.reader + "?parseTime=" + strconv.FormatBool(parseTime)
				s := openSource(t, Config{Driver: DriverMySQL, DSN: dsn,
					Query: "SELECT id, title, updated_at FROM events;", Cursor: "updated_at", Tiebreaker: "id"})
				wantKind := KindText
				if parseTime {
					wantKind = KindTime
				}
				if kind, err := s.CursorKind(context.Background()); err != nil || kind != wantKind {
					t.Fatalf("CursorKind = %v, %v; want %v", kind, err, wantKind)
				}
				upper := upperBound(t, s)
				if upper.Kind != wantKind {
					t.Errorf("UpperBound kind = %v, want %v", upper.Kind, wantKind)
				}

				// Page sizes that split ties and runs of microseconds alike.
				for _, limit := range []int{1, 3, 7, 100} {
					got := readAll(t, s, nil, upper, limit)
					var gotKeys, wantKeys []string
					for _, r := range got {
						gotKeys = append(gotKeys, r.Key.String()+"@"+cursorText(r.Cursor))
					}
					slices.SortFunc(want, func(a, b stamped) int {
						if c := strings.Compare(a.at, b.at); c != 0 {
							return c
						}
						return a.id - b.id
					})
					for _, w := range want {
						wantKeys = append(wantKeys, strconv.Itoa(w.id)+"@"+w.at)
					}
					if d := diff(gotKeys, wantKeys); d != "" {
						t.Fatalf("limit %d: %s", limit, d)
					}
				}
			})
		}
	}
}

// cursorText formats a DATETIME(6) cursor as MariaDB writes it.
func cursorText(v Value) string {
	if v.Kind == KindTime {
		return v.Time.Format("2006-01-02 15:04:05.000000")
	}
	return v.Text
}

// A configured start is exclusive and compares at full precision.
func TestReadPageFromStart(t *testing.T) {
	db := newDB(t, groupsSchema)
	mustExec(t, db.root, `INSERT INTO chat_groups (id, title, updated_at) VALUES
		(1, 'before', '2024-05-01 09:59:59.999999'),
		(2, 'at the start', '2024-05-01 10:00:00'),
		(3, 'just after', '2024-05-01 10:00:00.000001')`)
	for _, parseTime := range []string{"false", "true"} {
		s := openSource(t, groupsConfig(db.reader+"?parseTime="+parseTime))
		for _, in := range []string{"2024-05-01 10:00:00", "2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00"} {
			start, err := ParseStart(in, false)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, s, &Position{Cursor: start}, upperBound(t, s), 10)
			if d := diff(keys(got), []string{"3"}); d != "" {
				t.Errorf("parseTime=%s, start %q: %s", parseTime, in, d)
			}
		}
	}
}

// Rows newer than the database clock minus the lag are left for a later
// pass, and the upper bound stays where it was taken for the whole pass.
func TestUpperBound(t *testing.T) {
	for _, parseTime := range []string{"false", "true"} {
		t.Run("parseTime="+parseTime, func(t *testing.T) {
			db := newDB(t, groupsSchema)
			mustExec(t, db.root, `INSERT INTO chat_groups (id, title, updated_at) VALUES
				(1, 'an hour ago', NOW(6) - INTERVAL 1 HOUR),
				(2, 'ten seconds ago', NOW(6) - INTERVAL 10 SECOND),
				(3, 'in an hour', NOW(6) + INTERVAL 1 HOUR)`)
			ctx := context.Background()

			cfg := groupsConfig(db.reader + "?parseTime=" + parseTime)
			cfg.Lag = time.Minute
			lagged := openSource(t, cfg)
			upper := upperBound(t, lagged)
			if got := readAll(t, lagged, nil, upper, 10); diff(keys(got), []string{"1"}) != "" {
				t.Errorf("lag 1m: read %v, want only the row from an hour ago", keys(got))
			}
			if n, err := lagged.Count(ctx, nil, upper); err != nil || n != 1 {
				t.Errorf("lag 1m: Count = %d, %v; want 1", n, err)
			}

			cfg.Lag = 0
			s := openSource(t, cfg)
			upper = upperBound(t, s)
			first, err := s.ReadPage(ctx, nil, upper, 1)
			if err != nil || diff(keys(first), []string{"1"}) != "" {
				t.Fatalf("first page = %v, %v; want row 1", keys(first), err)
			}
			// A row committed mid-pass, stamped after the pass's bound
			// (the clock moved on), waits for the next pass.
			mustExec(t, db.root, `INSERT INTO chat_groups (id, title, updated_at) VALUES (4, 'mid-pass', NOW(6))`)
			after := &Position{Cursor: first[0].Cursor, Key: first[0].Key}
			rest := readAll(t, s, after, upper, 10)
			if d := diff(keys(rest), []string{"2"}); d != "" {
				t.Errorf("rest of the pass: %s", d)
			}
			next := readAll(t, s, &Position{Cursor: rest[0].Cursor, Key: rest[0].Key}, upperBound(t, s), 10)
			if d := diff(keys(next), []string{"4"}); d != "" {
				t.Errorf("next pass: %s", d)
			}
		})
	}
}

// ReadKeys re-reads rows by tiebreaker, in chunks, whatever their cursor;
// unknown keys are absent.
func TestReadKeys(t *testing.T) {
	db := newDB(t, groupsSchema)
	mustExec(t, db.root, `INSERT INTO users VALUES ('u7', 'Seven')`)
	mustExec(t, db.root, `INSERT INTO chat_groups (id, guid, title, owner_uid, updated_at)
		SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), CONCAT('u', seq), NOW(6) + INTERVAL seq SECOND FROM seq_1_to_1200`)
	s := openSource(t, groupsConfig(db.reader))
	ctx := context.Background()

	got, err := s.ReadKeys(ctx, []Value{{Kind: KindInt, Int: 7}, {Kind: KindInt, Int: 99999}, {Kind: KindInt, Int: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(keys(got), []string{"3", "7"}); d != "" {
		t.Fatal(d)
	}
	owner := column(t, s, "owner_name")
	if text(got[1].Values[owner]) != "Seven" || got[0].Values[owner] != nil {
		t.Errorf("owner_name = %q, %q; want NULL, Seven (the joined user)", text(got[0].Values[owner]), text(got[1].Values[owner]))
	}

	// More keys than one IN list holds; the rows are in the future, past
	// any upper bound, and still re-read.
	var many []Value
	var want []string
	for id := 1; id <= 1300; id += 1 {
		many = append(many, Value{Kind: KindInt, Int: int64(id)})
		if id <= 1200 {
			want = append(want, strconv.Itoa(id))
		}
	}
	got, err = s.ReadKeys(ctx, many)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(keys(got), want); d != "" {
		t.Fatal(d)
	}
	if got, err := s.ReadKeys(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("ReadKeys(nil) = %d rows, %v; want none", len(got), err)
	}
}

// An integer cursor holding unix time is bounded by the database clock in
// its unit.
func TestIntegerCursor(t *testing.T) {
	db := newDB(t, `CREATE TABLE events (
		id BIGINT PRIMARY KEY, updated_ms BIGINT NOT NULL, updated_s INT UNSIGNED NOT NULL DEFAULT 0,
		KEY (updated_ms, id), KEY (updated_s, id))`)
	// Ages: 2 minutes, 10 seconds, and an hour in the future.
	mustExec(t, db.root, `INSERT INTO events (id, updated_ms)
		SELECT seq, TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000 + ELT(seq, -120000, -10000, 3600000)
		FROM seq_1_to_3`)
	mustExec(t, db.root, `UPDATE events SET updated_s = updated_ms DIV 1000`)

	for _, tc := range []struct {
		unit, column string
		perSecond    int64
	}{
		{UnitMilliseconds, "updated_ms", 1000},
		{UnitSeconds, "updated_s", 1},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			s := openSource(t, Config{Driver: DriverMySQL, DSN: db.reader,
				Query: "SELECT * FROM events", Cursor: tc.column, Tiebreaker: "id", Lag: time.Minute, IntegerUnit: tc.unit})
			if kind, err := s.CursorKind(context.Background()); err != nil || kind != KindInt {
				t.Fatalf("CursorKind = %v, %v; want int", kind, err)
			}
			before := dbMicros(t, db.root)
			upper := upperBound(t, s)
			after := dbMicros(t, db.root)
			lo, hi := (before/1000-60000)*tc.perSecond/1000-1, (after/1000-60000)*tc.perSecond/1000
			if upper.Kind != KindInt || upper.Int < lo || upper.Int > hi {
				t.Errorf("UpperBound = %v %s, want an int in [%d, %d] (the clock minus a minute, in %s)", upper.Kind, upper, lo, hi, tc.unit)
			}
			if got := readAll(t, s, nil, upper, 1); diff(keys(got), []string{"1"}) != "" {
				t.Errorf("read %v, want only the row from 2 minutes ago", keys(got))
			}
		})
	}
}

func TestColumns(t *testing.T) {
	db := newDB(t, groupsSchema)
	s := openSource(t, groupsConfig(db.reader))
	cols, err := s.Columns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "guid", "title", "kind", "owner_uid", "owner_name", "created_at", "updated_at"}
	if !slices.Equal(cols, want) {
		t.Errorf("Columns = %v, want %v", cols, want)
	}

	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		wantErr string
	}{
		{"cursor", func(c *Config) { c.Cursor = "modified" },
			`source.cursor.column: "modified" is not a column of source.query (columns: id, guid, title, kind, owner_uid, owner_name, created_at, updated_at)`},
		{"tiebreaker", func(c *Config) { c.Tiebreaker = "uid" },
			`source.cursor.tiebreaker: "uid" is not a column of source.query (columns: id, guid, title, kind, owner_uid, owner_name, created_at, updated_at)`},
		{"text cursor", func(c *Config) { c.Cursor = "title" },
			`source.cursor.column: "title" has type VARCHAR; want an integer, DATETIME, TIMESTAMP or DATE column`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := groupsConfig(db.reader)
			tc.cfg(&cfg)
			s := openSource(t, cfg)
			_, err := s.CursorKind(context.Background())
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("err = %v\nwant %s", err, tc.wantErr)
			}
		})
	}
}

// A query that ends in a comment and a semicolon still wraps.
func TestQueryTrailingCommentAndSemicolon(t *testing.T) {
	db := newDB(t, groupsSchema)
	mustExec(t, db.root, `INSERT INTO chat_groups (id, updated_at) VALUES (1, '2024-01-01')`)
	cfg := groupsConfig(db.reader)
	cfg.Query = groupsQuery + " -- every group\n;\n"
	s := openSource(t, cfg)
	if got := readAll(t, s, nil, upperBound(t, s), 10); diff(keys(got), []string{"1"}) != "" {
		t.Errorf("read %v, want row 1", keys(got))
	}
}

// Rows with a NULL cursor are never read (documented), and a tiebreaker
// that is not unique is an error rather than silently skipped rows.
func TestReadPageNullsAndDuplicates(t *testing.T) {
	db := newDB(t, `CREATE TABLE t (id INT PRIMARY KEY, grp INT, updated_at DATETIME(6) NULL);
		INSERT INTO t VALUES (1, 1, '2024-01-01'), (2, 1, NULL), (3, 1, '2024-01-01')`)
	ctx := context.Background()

	s := openSource(t, Config{Driver: DriverMySQL, DSN: db.reader, Query: "SELECT * FROM t", Cursor: "updated_at", Tiebreaker: "id"})
	if got := readAll(t, s, nil, upperBound(t, s), 10); diff(keys(got), []string{"1", "3"}) != "" {
		t.Errorf("read %v, want 1 and 3 (2 has a NULL cursor)", keys(got))
	}
	got, err := s.ReadKeys(ctx, []Value{{Kind: KindInt, Int: 2}})
	if err != nil || len(got) != 1 || !got[0].Cursor.IsZero() {
		t.Errorf("ReadKeys(2) = %v, %v; want the row with no cursor", got, err)
	}

	dup := openSource(t, Config{Driver: DriverMySQL, DSN: db.reader, Query: "SELECT * FROM t", Cursor: "updated_at", Tiebreaker: "grp"})
	_, err = dup.ReadPage(ctx, nil, upperBound(t, dup), 10)
	want := `read page: tiebreaker column "grp": two rows have cursor "2024-01-01 00:00:00.000000" and key "1"; the tiebreaker must be unique, or rows are skipped`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// A page holds at most limit rows however many qualify.
func TestReadPageLimit(t *testing.T) {
	db := newDB(t, groupsSchema)
	mustExec(t, db.root, `INSERT INTO chat_groups (id, updated_at) SELECT seq, '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_2000`)
	s := openSource(t, groupsConfig(db.reader))
	ctx := context.Background()
	for _, limit := range []int{1, 10, 1999} {
		page, err := s.ReadPage(ctx, nil, upperBound(t, s), limit)
		if err != nil || len(page) != limit {
			t.Errorf("ReadPage(limit %d) = %d rows, %v", limit, len(page), err)
		}
	}
	if _, err := s.ReadPage(ctx, nil, upperBound(t, s), 0); err == nil {
		t.Error("ReadPage(limit 0) succeeded, want an error")
	}
	if _, err := s.ReadPage(ctx, nil, Value{}, 10); err == nil {
		t.Error("ReadPage without an upper bound succeeded, want an error")
	}
}

func TestOpenErrors(t *testing.T) {
	db := newDB(t, groupsSchema)
	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		wantErr string
	}{
		{"driver", func(c *Config) { c.Driver = "oracle" }, `source.driver: "oracle" is not supported (want one of "mysql", "postgres", "sqlite")`},
		{"unit", func(c *Config) { c.IntegerUnit = "hours" }, `source.cursor.integer_unit: "hours" is not a unit (want "seconds", "milliseconds" or "microseconds")`},
		{"lag", func(c *Config) { c.Lag = -time.Second }, `source.cursor.lag: -1s is negative`},
		{"password", func(c *Config) { c.DSN = strings.Replace(c.DSN, ":", ":wrong", 1) }, `connect to the source database (mysql): Error 1045 (28000): Access denied`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := groupsConfig(db.reader)
			tc.cfg(&cfg)
			_, err := Open(context.Background(), cfg, zaptest.NewLogger(t))
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("err = %v\nwant %s…", err, tc.wantErr)
			}
		})
	}
}
