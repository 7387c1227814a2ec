package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap/zaptest"

	"github.com/cometsync/cometsync/internal/mariadbtest"
)

const schema = `
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100));
CREATE TABLE chat_groups (guid VARCHAR(100) PRIMARY KEY, title VARCHAR(100));
CREATE TABLE other (id BIGINT PRIMARY KEY);`

// setup starts a server with a binlog and a database with the tables, and
// returns a Config that streams users (by id) and chat_groups (by guid).
func setup(t *testing.T, opts ...mariadbtest.Option) (*mariadbtest.Server, *sql.DB, Config) {
	t.Helper()
	srv := mariadbtest.Start(t, append([]mariadbtest.Option{mariadbtest.WithBinlog()}, opts...)...)
	dsn := srv.CreateDatabase(t, t.Name())
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	exec(t, db, schema)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DSN: dsn, ServerID: 100, Log: zaptest.NewLogger(t), Tables: []Table{
		{Schema: mc.DBName, Name: "users", KeyColumn: "id"},
		{Schema: mc.DBName, Name: "chat_groups", KeyColumn: "guid"},
	}}
	return srv, db, cfg
}

func exec(t *testing.T, db *sql.DB, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func current(t *testing.T, cfg Config) Position {
	t.Helper()
	p, err := Current(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// collect streams from `from` until `until` and returns the batches.
func collect(t *testing.T, cfg Config, from, until Position) []Batch {
	t.Helper()
	var got []Batch
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard only
	defer cancel()
	err := Stream(ctx, cfg, from, &until, func(_ context.Context, b Batch) error {
		got = append(got, b)
		return nil
	})
	if err != nil {
		t.Fatalf("Stream(%s, until %s) = %v, want nil once caught up", from, until, err)
	}
	return got
}

// union is the keys and event counts of batches, per table.
func union(batches []Batch) (map[string][]any, map[string]map[string]int) {
	keys := map[string][]any{}
	events := map[string]map[string]int{}
	for _, b := range batches {
		for table, ks := range b.Keys {
			for _, k := range ks {
				if !slices.ContainsFunc(keys[table], func(x any) bool { return fmt.Sprint(x) == fmt.Sprint(k) }) {
					keys[table] = append(keys[table], k)
				}
			}
		}
		for table, m := range b.Events {
			if events[table] == nil {
				events[table] = map[string]int{}
			}
			for a, n := range m {
				events[table][a] += n
			}
		}
	}
	for _, ks := range keys {
		slices.SortFunc(ks, func(a, b any) int {
			if x, ok := a.(int64); ok {
				return int(x - b.(int64))
			}
			return compare(fmt.Sprint(a), fmt.Sprint(b))
		})
	}
	return keys, events
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestStreamKeysAndActions(t *testing.T) {
	for _, mode := range []string{"gtid", "file"} {
		t.Run(mode, func(t *testing.T) {
			_, db, cfg := setup(t)
			exec(t, db, "INSERT INTO users VALUES (99, 'before the start')")
			from := current(t, cfg)
			if from.GTID == "" || from.File == "" {
				t.Fatalf("Current = %+v, want a GTID and a file on MariaDB", from)
			}
			if mode == "file" {
				from.GTID = ""
			}
			exec(t, db,
				"INSERT INTO users VALUES (1, 'a'), (2, 'b')",
				"UPDATE users SET name = 'A' WHERE id = 1",
				"DELETE FROM users WHERE id = 2",
				"INSERT INTO chat_groups VALUES ('g1', 'G')",
				"INSERT INTO other VALUES (7)",
				"UPDATE users SET id = 10 WHERE id = 1", // the key changes
				"BEGIN; INSERT INTO users VALUES (3, 'c'); INSERT INTO chat_groups VALUES ('g2', 'H'); COMMIT",
			)
			until := current(t, cfg)
			batches := collect(t, cfg, from, until)
			keys, events := union(batches)

			want := map[string][]any{"users": {int64(1), int64(2), int64(3), int64(10)}, "chat_groups": {"g1", "g2"}}
			if fmt.Sprint(keys) != fmt.Sprint(want) {
				t.Errorf("keys = %v, want %v (the unlisted table other and the row before the start absent)", keys, want)
			}
			wantEvents := map[string]map[string]int{
				"users":       {Insert: 3, Update: 2, Delete: 1},
				"chat_groups": {Insert: 2},
			}
			if fmt.Sprint(events) != fmt.Sprint(wantEvents) {
				t.Errorf("events = %v, want %v", events, wantEvents)
			}
			last := batches[len(batches)-1]
			if !last.Commit {
				t.Errorf("the last batch has Commit=false, want true")
			}
			if ok, err := reached(last.Position, until); err != nil || !ok {
				t.Errorf("the last batch's position %s has not reached until %s (err %v)", last.Position, until, err)
			}
			if mode == "gtid" && last.Position.GTID != until.GTID {
				t.Errorf("the last batch's GTID = %q, want the server's %q", last.Position.GTID, until.GTID)
			}
			if last.EventTime.IsZero() {
				t.Error("the last batch has no EventTime")
			}
		})
	}
}

func TestUntilAlreadyThere(t *testing.T) {
	_, _, cfg := setup(t)
	cur := current(t, cfg)
	if got := collect(t, cfg, cur, cur); len(got) != 0 {
		t.Errorf("Stream from the until position handed over %d batches, want none", len(got))
	}
}

// feed is a Stream running in the background.
type feed struct {
	all     []Batch // every batch read so far
	batches chan Batch
	done    chan error
	cancel  context.CancelFunc
}

func startFeed(t *testing.T, cfg Config, from Position) *feed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{batches: make(chan Batch), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- Stream(ctx, cfg, from, nil, func(ctx context.Context, b Batch) error {
			select {
			case f.batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// waitFor reads batches until every key in want has come for table (in
// this call or before), and returns the batches this call read.
func (f *feed) waitFor(t *testing.T, table string, want ...any) []Batch {
	t.Helper()
	guard := time.After(2 * time.Minute) // a hang guard only
	var got []Batch
	for {
		keys, _ := union(f.all)
		missing := 0
		for _, w := range want {
			if !slices.ContainsFunc(keys[table], func(k any) bool { return fmt.Sprint(k) == fmt.Sprint(w) }) {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		select {
		case b := <-f.batches:
			got = append(got, b)
			f.all = append(f.all, b)
		case err := <-f.done:
			t.Fatalf("Stream ended with %v; got keys %v, want %v in %s", err, keys, want, table)
		case <-guard:
			t.Fatalf("no keys %v in %s yet; got %v", want, table, keys)
		}
	}
}

func (f *feed) stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	if err := <-f.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Stream = %v after cancel, want context.Canceled", err)
	}
}

// A resume from the position of a batch neither repeats nor skips a
// transaction: the position is the one after its commit.
func TestResumeFromBatchPosition(t *testing.T) {
	for _, mode := range []string{"gtid", "file"} {
		t.Run(mode, func(t *testing.T) { testResume(t, mode) })
	}
}

func testResume(t *testing.T, mode string) {
	_, db, cfg := setup(t)
	from := current(t, cfg)
	if mode == "file" {
		from.GTID = ""
	}
	f := startFeed(t, cfg, from)
	exec(t, db, "INSERT INTO users VALUES (1, 'a')")
	got := f.waitFor(t, "users", int64(1))
	f.stop(t)
	last := got[len(got)-1]
	if !last.Commit {
		t.Fatalf("batch with key 1 has Commit=false")
	}

	exec(t, db, "INSERT INTO users VALUES (2, 'b')", "INSERT INTO users VALUES (3, 'c')")
	keys, _ := union(collect(t, cfg, last.Position, current(t, cfg)))
	if want := "[2 3]"; fmt.Sprint(keys["users"]) != want {
		t.Errorf("keys after resuming from %s = %v, want %s: key 1 again means the position was before its commit", last.Position, keys["users"], want)
	}
}

func TestPurged(t *testing.T) {
	_, db, cfg := setup(t)
	old := current(t, cfg)
	exec(t, db, "INSERT INTO users VALUES (1, 'a')", "FLUSH BINARY LOGS", "INSERT INTO users VALUES (2, 'b')", "FLUSH BINARY LOGS")
	now := current(t, cfg)
	purge(t, db, now.File)

	ctx := context.Background()
	if ok, err := Exists(ctx, cfg, old); err != nil || ok {
		t.Errorf("Exists(%s) after the purge = %v, %v; want false", old, ok, err)
	}
	if ok, err := Exists(ctx, cfg, now); err != nil || !ok {
		t.Errorf("Exists(%s), the current position = %v, %v; want true", now, ok, err)
	}
	err := Stream(ctx, cfg, old, &now, func(context.Context, Batch) error { return nil })
	if !errors.Is(err, ErrPurged) {
		t.Errorf("Stream from a purged position = %v, want ErrPurged", err)
	}
	fileOld := old
	fileOld.GTID = ""
	if ok, err := Exists(ctx, cfg, fileOld); err != nil || ok {
		t.Errorf("Exists(%s) after the purge = %v, %v; want false", fileOld, ok, err)
	}
	err = Stream(ctx, cfg, fileOld, &now, func(context.Context, Batch) error { return nil })
	if !errors.Is(err, ErrPurged) {
		t.Errorf("Stream from a purged file %s = %v, want ErrPurged", old.File, err)
	}
}

// purge purges the binlogs before file. MariaDB keeps a binlog until
// InnoDB's checkpoint has passed its commits (for crash recovery), so the
// first tries may purge nothing.
func purge(t *testing.T, db *sql.DB, file string) {
	t.Helper()
	for range 200 {
		exec(t, db, "PURGE BINARY LOGS TO '"+file+"'")
		var first string
		var size int64
		if err := db.QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
			t.Fatal(err)
		}
		if first == file {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the binlogs before %s are still there after PURGE BINARY LOGS", file)
}

func TestServerRestart(t *testing.T) {
	srv, db, cfg := setup(t)
	f := startFeed(t, cfg, current(t, cfg))
	exec(t, db, "INSERT INTO users VALUES (1, 'a'), (2, 'b')")
	f.waitFor(t, "users", int64(1), int64(2))

	// Committed just before the crash, perhaps not read yet.
	exec(t, db, "INSERT INTO users VALUES (4, 'd')", "INSERT INTO chat_groups VALUES ('g4', 'G')")
	srv.Kill(t)
	srv.Restart(t)
	exec(t, db, "INSERT INTO users VALUES (3, 'c')", "DELETE FROM users WHERE id = 1")
	got := f.waitFor(t, "users", int64(3), int64(4), int64(1))
	got = append(got, f.waitFor(t, "chat_groups", "g4")...)
	_, events := union(got)
	if events["users"][Delete] != 1 {
		t.Errorf("events after the restart = %v, want the delete", events)
	}
}

func TestAlterTable(t *testing.T) {
	t.Run("live, a column before the key", func(t *testing.T) {
		_, db, cfg := setup(t)
		f := startFeed(t, cfg, current(t, cfg))
		exec(t, db, "INSERT INTO users VALUES (1, 'a')")
		f.waitFor(t, "users", int64(1))
		exec(t, db, "ALTER TABLE users ADD COLUMN extra BIGINT FIRST", "INSERT INTO users VALUES (555, 2, 'b')")
		got := f.waitFor(t, "users", int64(2))
		if keys, _ := union(got); fmt.Sprint(keys["users"]) != "[2]" {
			t.Errorf("keys after ALTER TABLE = %v, want [2] (555 is the new column's value)", keys["users"])
		}
	})
	// Catching up, the events are older than the table's current columns.
	for _, tc := range []struct {
		name  string
		opts  []mariadbtest.Option
		alter string
		row2  string
	}{
		{"a column added at the end", nil, "ADD COLUMN extra BIGINT", "(2, 'b', 777)"},
		{"a column added first, with binlog_row_metadata=FULL", []mariadbtest.Option{mariadbtest.WithArgs("--binlog-row-metadata=FULL")},
			"ADD COLUMN extra BIGINT FIRST", "(888, 2, 'b')"},
	} {
		t.Run("catching up over "+tc.name, func(t *testing.T) {
			_, db, cfg := setup(t, tc.opts...)
			from := current(t, cfg)
			exec(t, db, "INSERT INTO users VALUES (1, 'a')", "ALTER TABLE users "+tc.alter, "INSERT INTO users VALUES "+tc.row2)
			keys, _ := union(collect(t, cfg, from, current(t, cfg)))
			if fmt.Sprint(keys["users"]) != "[1 2]" {
				t.Errorf("keys = %v, want [1 2]", keys["users"])
			}
		})
	}
}

func TestBigTransactionInSlices(t *testing.T) {
	_, db, cfg := setup(t)
	from := current(t, cfg)
	const rows = 100000
	exec(t, db, fmt.Sprintf("INSERT INTO users SELECT seq, CONCAT('user ', seq) FROM seq_1_to_%d", rows))
	until := current(t, cfg)

	var sliceCount, commits, total, largest int
	var peak uint64
	var ms runtime.MemStats
	seen := map[int64]bool{}
	err := Stream(context.Background(), cfg, from, &until, func(_ context.Context, b Batch) error {
		if b.Commit {
			commits++
		} else {
			sliceCount++
			if b.Position != from {
				t.Errorf("a slice's position %s, want the last commit before it %s", b.Position, from)
			}
		}
		n := len(b.Keys["users"])
		total += n
		largest = max(largest, n)
		for _, k := range b.Keys["users"] {
			seen[k.(int64)] = true
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d slices, %d commit batches, largest %d keys, peak heap in use %d MiB", sliceCount, commits, largest, peak>>20)
	if sliceCount < rows/SliceKeys-1 || commits != 1 {
		t.Errorf("%d slices (Commit=false) and %d commit batches, want about %d slices then 1 commit", sliceCount, commits, rows/SliceKeys)
	}
	if largest > SliceKeys {
		t.Errorf("a batch of %d keys, want at most %d", largest, SliceKeys)
	}
	if len(seen) != rows {
		t.Errorf("%d distinct keys, want %d", len(seen), rows)
	}
}

func TestCheck(t *testing.T) {
	srv, _, cfg := setup(t, mariadbtest.WithArgs("--binlog-format=MIXED"))
	reader := cfg
	reader.DSN = srv.CreateReader(t, cfg.DSN)
	byWhat := map[string]Finding{}
	for _, f := range Check(context.Background(), reader) {
		byWhat[f.What] = f
	}
	if f := byWhat["binlog_format"]; f.OK || !contains(f.Detail, "MIXED is MariaDB's default") || !contains(f.Fix, "binlog_format = 'ROW'") {
		t.Errorf("binlog_format finding = %+v, want not OK, saying MIXED is MariaDB's default, with the SET GLOBAL", f)
	}
	if f := byWhat["privilege REPLICATION SLAVE"]; f.OK || !contains(f.Fix, "GRANT REPLICATION SLAVE ON *.* TO 'reader_") {
		t.Errorf("REPLICATION SLAVE finding for a SELECT-only user = %+v, want missing with the GRANT", f)
	}
	if f := byWhat["privilege BINLOG MONITOR (REPLICATION CLIENT)"]; f.OK {
		t.Errorf("BINLOG MONITOR finding for a SELECT-only user = %+v, want missing", f)
	}
	for _, tb := range cfg.Tables {
		if f := byWhat["SELECT on "+tb.Schema+"."+tb.Name]; !f.OK {
			t.Errorf("SELECT finding for %s = %+v, want OK", tb.Name, f)
		}
	}
	if f := byWhat["binary log (log_bin)"]; !f.OK || !byWhat["binlog_row_image"].OK {
		t.Errorf("log_bin / binlog_row_image findings = %+v / %+v, want OK", f, byWhat["binlog_row_image"])
	}

	// Streaming without REPLICATION SLAVE fails at once, not in a reconnect loop.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	defer cancel()
	err := Stream(ctx, reader, current(t, cfg), nil, func(context.Context, Batch) error { return nil })
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "REPLICATION SLAVE") {
		t.Errorf("Stream as a SELECT-only user = %v, want the server's access denied naming REPLICATION SLAVE", err)
	}

	_, _, good := setup(t)
	for _, f := range Check(context.Background(), good) {
		if !f.OK {
			t.Errorf("root on a ROW server: %+v, want every finding OK", f)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestUnsignedKeys(t *testing.T) {
	_, db, cfg := setup(t)
	exec(t, db, "CREATE TABLE counters (id INT UNSIGNED PRIMARY KEY, big BIGINT UNSIGNED)")
	cfg.Tables = append(cfg.Tables, Table{Schema: cfg.Tables[0].Schema, Name: "counters", KeyColumn: "id"},
		Table{Schema: cfg.Tables[0].Schema, Name: "counters_big", KeyColumn: "big"})
	exec(t, db, "CREATE TABLE counters_big (big BIGINT UNSIGNED PRIMARY KEY)")
	from := current(t, cfg)
	exec(t, db, "INSERT INTO counters VALUES (4000000000, 1)", "INSERT INTO counters_big VALUES (18446744073709551615)")
	keys, _ := union(collect(t, cfg, from, current(t, cfg)))
	if got := keys["counters"]; len(got) != 1 || got[0] != any(int64(4000000000)) {
		t.Errorf("INT UNSIGNED key = %#v, want int64(4000000000), not the signed reading", got)
	}
	if got := keys["counters_big"]; len(got) != 1 || got[0] != any(uint64(18446744073709551615)) {
		t.Errorf("BIGINT UNSIGNED key = %#v, want uint64(18446744073709551615)", got)
	}
}

func TestNoBinlog(t *testing.T) {
	srv := mariadbtest.Start(t) // the default server: no binary log
	cfg := Config{DSN: srv.RootDSN(""), ServerID: 100}
	if _, err := Current(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "binary log is off") {
		t.Errorf("Current on a server without a binlog = %v, want it to say the binary log is off", err)
	}
	for _, f := range Check(context.Background(), cfg) {
		if f.What == "binary log (log_bin)" && (f.OK || !strings.Contains(f.Fix, "log_bin")) {
			t.Errorf("log_bin finding = %+v, want not OK with the my.cnf line", f)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DSN: "root@tcp(127.0.0.1:3306)/"}, "binlog: server_id is required (a number unique among the server's replicas)"},
		{Config{DSN: "root@tcp(127.0.0.1:3306)/", ServerID: 1, Flavor: "oracle"}, `binlog: flavor "oracle": want "mysql", "mariadb" or empty to detect`},
		{Config{DSN: "root@unix(/tmp/s.sock)/", ServerID: 1}, `binlog: dsn: network "unix": the binlog is read over tcp only`},
	} {
		_, err := Current(context.Background(), tc.cfg)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Current(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
