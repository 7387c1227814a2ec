package source

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/pgtest"
)

// backend is one database the tests that hold for every server database
// run on: the same test, its SQL written once with the backend's words.
type backend struct {
	name   string
	driver string
	// words fill a schema or statement: {id} an auto-increment primary
	// key, {ts} a date-time with microseconds, {str} a string.
	words func(string) string
	// seq is a FROM clause of the integers 1 to n as column seq; at is the
	// date-time x seconds (an SQL expression) after 2024-01-01.
	seq func(n int) string
	at  func(x string) string
	// newDB creates a database, runs the schema, and returns its root
	// connection and a SELECT-only reader's DSN.
	newDB func(t testing.TB, schema string) testDB
	// addr is the server's host:port; dsnVia points a reader DSN at addr.
	addr   func() string
	dsnVia func(dsn, addr string) string
	// shortTimeout makes a reader DSN fail a read that gets no answer
	// within about a second or two.
	shortTimeout func(dsn string) string
}

var backends = []backend{
	{
		name: "mariadb", driver: DriverMySQL,
		words: strings.NewReplacer("{id}", "BIGINT PRIMARY KEY AUTO_INCREMENT", "{ts}", "DATETIME(6)", "{str}", "VARCHAR(100)").Replace,
		seq:   func(n int) string { return fmt.Sprintf("seq_1_to_%d AS seq", n) },
		at:    func(x string) string { return "'2024-01-01' + INTERVAL (" + x + ") SECOND" },
		newDB: newDB,
		addr:  func() string { return fmt.Sprintf("127.0.0.1:%d", srv.Port()) },
		dsnVia: func(dsn, addr string) string {
			return strings.Replace(dsn, fmt.Sprintf("127.0.0.1:%d", srv.Port()), addr, 1)
		},
		shortTimeout: func(dsn string) string {
			return dsn + "?parseTime=true&readTimeout=1s"
		},
	},
	{
		name: "postgres", driver: DriverPostgres,
		words: strings.NewReplacer("{id}", "BIGSERIAL PRIMARY KEY", "{ts}", "timestamptz", "{str}", "text").Replace,
		seq:   func(n int) string { return fmt.Sprintf("generate_series(1, %d) AS seq", n) },
		at: func(x string) string {
			return "timestamptz '2024-01-01 00:00:00+00' + interval '1 second' * (" + x + ")"
		},
		newDB:        newPGDB,
		addr:         func() string { return pgsrv.Addr() },
		dsnVia:       func(dsn, addr string) string { return strings.Replace(dsn, pgsrv.Addr(), addr, 1) },
		shortTimeout: func(dsn string) string { return dsn + "&statement_timeout=500" },
	},
}

// newPGDB is newDB on the shared PostgreSQL.
func newPGDB(t testing.TB, schema string) testDB {
	t.Helper()
	rootDSN := pgsrv.CreateDatabase(t, t.Name())
	root := sqlOpen(t, "pgx", rootDSN)
	mustExec(t, root, schema)
	return testDB{root: root, reader: pgsrv.CreateReader(t, rootDSN)}
}

// forEachBackend runs test on every backend.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// seqGroups is the groups table of the backend tests: n rows, the i-th
// updated at 2024-01-01 plus at(i) seconds.
func seqGroups(t *testing.T, b backend, n int, at string) testDB {
	t.Helper()
	td := b.newDB(t, b.words(`CREATE TABLE chat_groups (id {id}, guid {str}, title {str}, updated_at {ts});
		CREATE INDEX idx_updated ON chat_groups (updated_at, id)`))
	mustExec(t, td.root, fmt.Sprintf(`INSERT INTO chat_groups (id, guid, title, updated_at)
		SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), %s FROM %s`, b.at(at), b.seq(n)))
	return td
}

func seqConfig(b backend, dsn string) Config {
	return Config{Driver: b.driver, DSN: dsn, Query: "SELECT id, guid, title, updated_at FROM chat_groups", Cursor: "updated_at", Tiebreaker: "id"}
}

// Thousands of rows sharing one timestamp are read across pages exactly
// once each, in (cursor, id) order, with the position through JSON between
// pages: no row lost or read twice at a page boundary.
func TestBackendsTiesAcrossPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		// Rows 1-3000 share one timestamp; 3001-3500 follow a second apart.
		td := seqGroups(t, b, 3500, "CASE WHEN seq <= 3000 THEN 0 ELSE seq - 3000 END")
		dsn := td.reader
		if b.driver == DriverMySQL {
			dsn += "?parseTime=true"
		}
		s := openSource(t, seqConfig(b, dsn))
		rows := readAll(t, s, nil, upperBound(t, s), 97)
		want := make([]string, 3500)
		for i := range want {
			want[i] = itoa(i + 1)
		}
		if d := diff(keys(rows), want); d != "" {
			t.Error(d)
		}
		if n, err := s.Count(context.Background(), &Position{Cursor: rows[1499].Cursor, Key: rows[1499].Key}, upperBound(t, s)); err != nil || n != 2000 {
			t.Errorf("Count after row 1500 = %d, %v; want 2000", n, err)
		}
	})
}

// The upper bound is the database clock minus the lag: a row written just
// now is left for a later pass, and one older than the lag is read.
func TestBackendsUpperBoundLag(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		td := b.newDB(t, b.words(`CREATE TABLE chat_groups (id {id}, guid {str}, title {str}, updated_at {ts})`))
		now := "NOW(6)"
		if b.driver == DriverPostgres {
			now = "clock_timestamp()"
		}
		mustExec(t, td.root, fmt.Sprintf(`INSERT INTO chat_groups (id, guid, title, updated_at) VALUES
			(1, 'old', 'Old', %[1]s - INTERVAL '120' SECOND), (2, 'late', 'Late', %[1]s - INTERVAL '5' SECOND)`, now))
		dsn := td.reader
		if b.driver == DriverMySQL {
			dsn += "?parseTime=true"
		}
		cfg := seqConfig(b, dsn)
		cfg.Lag = time.Minute
		s := openSource(t, cfg)
		if got := keys(readAll(t, s, nil, upperBound(t, s), 10)); strings.Join(got, ",") != "1" {
			t.Errorf("with a 1m lag, read %v; want only row 1 (row 2 is 5 s old)", got)
		}
		cfg.Lag = time.Second
		s = openSource(t, cfg)
		if got := keys(readAll(t, s, nil, upperBound(t, s), 10)); strings.Join(got, ",") != "1,2" {
			t.Errorf("with a 1s lag, read %v; want rows 1 and 2", got)
		}
	})
}

// Rows with a NULL cursor are counted for check, and never read.
func TestBackendsNullCursors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		td := seqGroups(t, b, 50, "seq")
		mustExec(t, td.root, "UPDATE chat_groups SET updated_at = NULL WHERE id > 40")
		s := openSource(t, seqConfig(b, td.reader))
		if n, err := s.NullCursors(context.Background()); err != nil || n != 10 {
			t.Errorf("NullCursors = %d, %v; want 10", n, err)
		}
		if got := readAll(t, s, nil, upperBound(t, s), 7); len(got) != 40 {
			t.Errorf("read %d rows; want the 40 with a cursor", len(got))
		}
	})
}

// An integer cursor in milliseconds: the unit is detected from the data,
// the range against the upper bound is read, and duplicate guids are found
// (trimmed and lowercased) by KeysUpTo and Duplicates.
func TestBackendsIntegerCursorRangeAndDuplicates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		td := b.newDB(t, b.words(`CREATE TABLE channels (id BIGINT PRIMARY KEY, guid {str}, update_at BIGINT NOT NULL)`))
		mustExec(t, td.root, "INSERT INTO channels SELECT seq, CONCAT('c', seq), 1700000000000 + seq FROM "+b.seq(300))
		mustExec(t, td.root, "UPDATE channels SET guid = ' C1 ' WHERE id IN (7, 9)")
		mustExec(t, td.root, "UPDATE channels SET update_at = 4102444800000 + id WHERE id > 290") // 2100: beyond the bound
		cfg := Config{Driver: b.driver, DSN: td.reader, Query: "SELECT id, guid, update_at FROM channels", Cursor: "update_at", Tiebreaker: "id"}
		s := openSource(t, cfg)
		ctx := context.Background()
		u, err := s.Unit(ctx)
		if err != nil || u.Unit != UnitMilliseconds || u.Detected != UnitMilliseconds {
			t.Fatalf("Unit = %+v, %v; want milliseconds, detected", u, err)
		}
		upper := upperBound(t, s)
		r, err := s.CursorRange(ctx, upper)
		if err != nil {
			t.Fatal(err)
		}
		if r.Beyond != 10 || r.AtOrBelow != 11 || r.Min.Int != 1700000000001 || r.Max.Int != 4102444800300 || r.MostlyBeyond() {
			t.Errorf("CursorRange = %+v; want 10 beyond, 11 counted below, min 1700000000001, max 4102444800300", r)
		}
		held := map[string]int{}
		err = s.KeysUpTo(ctx, []string{"guid"}, upper, func(parts []string) error {
			held[parts[0]]++
			return nil
		})
		if err != nil || len(held) != 288 || held["c1"] != 3 || held["c291"] != 0 {
			t.Errorf("KeysUpTo: %d keys, c1 %d times, c291 %d times, %v; want the 288 keys of the 290 rows up to the bound, c1 three times",
				len(held), held["c1"], held["c291"], err)
		}
		d, err := s.Duplicates(ctx, "guid", 5)
		if err != nil || d.Values != 1 || d.Rows != 3 || len(d.Examples) != 1 || d.Examples[0].Value != "c1" ||
			d.Examples[0].First.Int != 1 || d.Examples[0].Last.Int != 9 {
			t.Errorf("Duplicates = %+v, %v; want c1 held by rows 1, 7 and 9", d, err)
		}
	})
}

// A database that stops answering fails the read within the configured
// timeout instead of hanging the pass; a database that goes away fails it
// at once. Both recover once it is back.
func TestBackendsUnansweredReadFails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		td := seqGroups(t, b, 20, "seq")
		proxy := mariadbtest.NewProxy(t, b.addr())
		s := openSource(t, seqConfig(b, b.shortTimeout(b.dsnVia(td.reader, proxy.Addr()))))
		upper := upperBound(t, s)
		read := func() error {
			done := make(chan error, 1)
			go func() {
				_, err := s.ReadPage(context.Background(), nil, upper, 10)
				done <- err
			}()
			select {
			case err := <-done:
				return err
			case <-time.After(30 * time.Second):
				t.Fatal("a read hung")
				return nil
			}
		}
		proxy.Stall()
		if err := read(); err == nil || !strings.Contains(err.Error(), "did not answer within") {
			t.Errorf("a read from a stalled database: %v; want an error that says it did not answer", err)
		}
		proxy.Unstall()
		if err := read(); err != nil {
			t.Errorf("a read once it answers again: %v", err)
		}
		proxy.Break()
		if err := read(); err == nil {
			t.Error("a read from a database that went away succeeded")
		}
		proxy.Restore(t)
		if err := read(); err != nil {
			t.Errorf("a read once it is back: %v", err)
		}
	})
}

// A PostgreSQL server killed in the middle of a pass fails the next read
// at once, with an error that says the connection broke.
func TestPostgresKilledServerFailsTheRead(t *testing.T) {
	own := pgtest.Start(t)
	rootDSN := own.CreateDatabase(t, t.Name())
	root := sqlOpen(t, "pgx", rootDSN)
	mustExec(t, root, `CREATE TABLE chat_groups (id bigint PRIMARY KEY, guid text, title text, updated_at timestamptz);
		INSERT INTO chat_groups SELECT seq, 'g' || seq, 'G', '2024-01-01' FROM generate_series(1, 100) AS seq`)
	b := backends[1]
	s := openSource(t, seqConfig(b, own.CreateReader(t, rootDSN)))
	upper := upperBound(t, s)
	if _, err := s.ReadPage(context.Background(), nil, upper, 10); err != nil {
		t.Fatal(err)
	}
	_ = root.Close()
	own.Kill()
	start := time.Now()
	_, err := s.ReadPage(context.Background(), nil, upper, 10)
	if err == nil || !strings.Contains(err.Error(), "read page") {
		t.Fatalf("a read after the server was killed: %v; want a read page error", err)
	}
	if waited := time.Since(start); waited > 20*time.Second {
		t.Errorf("the read failed only after %s", waited)
	}
	t.Logf("after the kill: %v", err)
}
