package main

import (
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mariadbtest"
)

// pgGroupsSchema is mariadbtest.GroupsSchema in PostgreSQL's types:
// mariadbtest.GroupsQuery runs on it unchanged.
const pgGroupsSchema = `
CREATE TABLE users (uid text PRIMARY KEY, display_name text, avatar_url text);
CREATE TABLE chat_groups (
	id bigserial PRIMARY KEY,
	guid text NOT NULL,
	title text,
	kind text,
	join_password text,
	icon_url text,
	created_at timestamptz,
	created_ms bigint,
	meta jsonb,
	tags text[],
	owner_uid text,
	updated_at timestamptz NOT NULL
);
CREATE INDEX idx_cursor ON chat_groups (updated_at, id);`

// sourceDB is a database the end-to-end tests of the groups stream run on:
// the same test, its SQL written once (INTERVAL '1' HOUR and CONCAT mean
// the same on both).
type sourceDB struct {
	name string
	// newEnv is newEnv with its source on this database.
	newEnv func(t *testing.T) *env
	// now is the database clock, with microseconds; micros the interval of
	// %d microseconds; tags the SQL literal of the tags a, b in the
	// schema's tags column.
	now, micros, tags string
	// addr is the server's host:port, for a proxy in front of it.
	addr func() string
}

var sourceDBs = []sourceDB{
	{name: "mariadb", newEnv: newEnv, now: "NOW(6)", micros: "INTERVAL %d MICROSECOND", tags: "'a,b'", addr: func() string { return fmt.Sprintf("127.0.0.1:%d", srv.Port()) }},
	{name: "postgres", newEnv: newPGEnv, now: "clock_timestamp()", micros: "INTERVAL '%d microseconds'", tags: "'{a,b}'", addr: func() string { return pgsrv.Addr() }},
}

func forEachSource(t *testing.T, test func(t *testing.T, d sourceDB, e *env)) {
	for _, d := range sourceDBs {
		t.Run(d.name, func(t *testing.T) { test(t, d, d.newEnv(t)) })
	}
}

// newPGEnv is newEnv with its source a fresh PostgreSQL database read by a
// SELECT-only role: the config says driver: postgres, whatever configure
// writes (see pgConfigure).
func newPGEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	rootDSN := pgsrv.CreateDatabase(t, t.Name())
	root, err := sql.Open("pgx", rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	if _, err := root.Exec(pgGroupsSchema); err != nil {
		t.Fatal(err)
	}
	e.root, e.reader = root, pgsrv.CreateReader(t, rootDSN)
	pgConfigure(e, func(*cfgOpts) {})
	return e
}

// configure changes the config file, keeping the env's driver.
func (d sourceDB) configure(e *env, f func(*cfgOpts)) {
	if d.name == "postgres" {
		pgConfigure(e, f)
		return
	}
	e.configure(f)
}

func pgConfigure(e *env, f func(*cfgOpts)) {
	e.configure(f)
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	yaml := strings.Replace(string(b), "  driver: mysql\n", "  driver: postgres\n", 1)
	if err := os.WriteFile(e.cfg, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// add inserts n public groups named prefix-<i>, stamped ago before now.
func (d sourceDB) add(e *env, prefix string, n int, ago string) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "('%s-%d', 'Group %d', 'public', %s - INTERVAL %s + %s)", prefix, i, i, d.now, ago, fmt.Sprintf(d.micros, i))
	}
	e.exec(b.String())
}

// A first pass delivers every row, the mapped columns included; a second
// sends only what changed since.
func TestSourcesBackfillAndIncremental(t *testing.T) {
	forEachSource(t, func(t *testing.T, d sourceDB, e *env) {
		d.add(e, "g", 250, "'1' HOUR")
		e.exec(fmt.Sprintf(`INSERT INTO chat_groups (guid, title, kind, meta, tags, created_at, updated_at)
			VALUES ('mapped', 'Mapped', 'private', '{"tier": 2}', %s, '2024-01-02 03:04:05', %s - INTERVAL '1' HOUR)`, d.tags, d.now))
		e.once(0)
		if n := len(e.emu.Groups()); n != 251 {
			t.Fatalf("the first pass delivered %d groups, want 251", n)
		}
		g, _ := e.emu.Group("mapped")
		if fmt.Sprint(g.Tags) != "[a b]" || strings.ReplaceAll(string(g.Metadata), " ", "") != `{"tier":2}` || g.Type != "private" {
			t.Errorf("mapped columns arrived as %+v; want tags [a b], metadata {tier: 2}, type private", g)
		}
		e.emu.ResetStats()
		e.exec(fmt.Sprintf("UPDATE chat_groups SET title = CONCAT('Renamed ', guid), updated_at = %s - INTERVAL '1' MINUTE WHERE guid IN ('g-3', 'g-77', 'g-200')", d.now))
		e.once(0)
		for _, guid := range []string{"g-3", "g-77", "g-200"} {
			if g, _ := e.emu.Group(guid); g.Name != "Renamed "+guid {
				t.Errorf("%s is named %q after the second pass", guid, g.Name)
			}
		}
		if st := e.emu.Stats(); st.Updates != 3 || st.ImportRequests != 0 {
			t.Errorf("the second pass sent %d updates and %d imports, want the 3 changed as updates", st.Updates, st.ImportRequests)
		}
	})
}

// Rows sharing one timestamp across many pages are all delivered, and one
// added later with the same timestamp too.
func TestSourcesRowsSharingOneTimestamp(t *testing.T) {
	forEachSource(t, func(t *testing.T, d sourceDB, e *env) {
		var b strings.Builder
		b.WriteString("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ")
		for i := 0; i < 2000; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "('same-%d', 'Same', 'public', '2024-05-01 12:00:00.123456')", i)
		}
		e.exec(b.String())
		d.configure(e, func(o *cfgOpts) { o.pageSize = 70 })
		e.once(0)
		if n := len(e.emu.Groups()); n != 2000 {
			t.Fatalf("delivered %d of 2000 rows sharing one timestamp", n)
		}
		e.emu.ResetStats()
		e.exec("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('same-late', 'Late', 'public', '2024-05-01 12:00:00.123456')")
		e.once(0)
		if _, ok := e.emu.Group("same-late"); !ok || e.emu.Stats().ImportedRows != 1 {
			t.Errorf("a row added later with the same timestamp: delivered %t, %d imported; want it alone", ok, e.emu.Stats().ImportedRows)
		}
	})
}

// A transaction that stamps its row first but commits after a newer row
// is caught by the lag: the pass in between does not move the checkpoint
// past it.
func TestSourcesLateCommitCaughtByLag(t *testing.T) {
	forEachSource(t, func(t *testing.T, d sourceDB, e *env) {
		d.configure(e, func(o *cfgOpts) { o.lag = "2s" })
		tx, err := e.root.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(fmt.Sprintf("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('late', 'Late', 'public', %s)", d.now)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		e.exec(fmt.Sprintf("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('early', 'Early', 'public', %s)", d.now))
		time.Sleep(200 * time.Millisecond)
		e.once(0) // 'late' is not committed yet
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		e.once(0)
		for _, guid := range []string{"early", "late"} {
			if _, ok := e.emu.Group(guid); !ok {
				t.Errorf("%s was not delivered", guid)
			}
		}
	})
}

// Invalid rows are recorded with the field at fault, the rest delivered,
// and a fixed row goes out on the next pass.
func TestSourcesRowErrors(t *testing.T) {
	forEachSource(t, func(t *testing.T, d sourceDB, e *env) {
		d.add(e, "ok", 20, "'1' HOUR")
		e.exec(fmt.Sprintf(`INSERT INTO chat_groups (guid, title, kind, meta, updated_at) VALUES
			('Bad Guid!', 'ok', 'public', NULL, %[1]s - INTERVAL '30' MINUTE),
			('long-name', REPEAT('n', 101), 'public', NULL, %[1]s - INTERVAL '30' MINUTE),
			('bad-meta', 'Meta', 'public', '[1, 2]', %[1]s - INTERVAL '30' MINUTE)`, d.now))
		e.once(0)
		if n := len(e.emu.Groups()); n != 20 {
			t.Errorf("delivered %d groups, want the 20 valid ones", n)
		}
		var fields []string
		for _, re := range e.rowErrors() {
			fields = append(fields, strings.SplitN(re.Message, ":", 2)[0])
		}
		slices.Sort(fields)
		if fmt.Sprint(fields) != "[guid metadata name]" {
			t.Errorf("row errors name %v, want guid, metadata and name", fields)
		}
		e.exec("UPDATE chat_groups SET guid = 'good-guid' WHERE guid = 'Bad Guid!'")
		e.once(0)
		if _, ok := e.emu.Group("good-guid"); !ok {
			t.Error("a fixed row was not delivered by the next pass")
		}
	})
}

// A database that goes away mid-pass fails the pass (exit 1, the message
// says what to do), keeps what was acknowledged, and the next pass
// delivers the rest without sending anything twice.
func TestSourcesDyingMidPass(t *testing.T) {
	forEachSource(t, func(t *testing.T, d sourceDB, e *env) {
		proxy := mariadbtest.NewProxy(t, d.addr())
		e.reader = strings.Replace(e.reader, d.addr(), proxy.Addr(), 1)
		d.configure(e, func(o *cfgOpts) { o.pageSize = 50 })
		d.add(e, "g", 800, "'1' HOUR")
		e.emu.SetFaults(cometchattest.Faults{Latency: 100 * time.Millisecond})
		c := e.start("once", "--config", e.cfg)
		e.waitImported(200)
		proxy.Break()
		r := e.wait(c, 30*time.Second)
		if r.code != 1 || !strings.Contains(r.stderr, "reading the source failed") || !strings.Contains(r.stderr, "run again once the database is reachable") {
			t.Fatalf("source died: exit %d:\n%s", r.code, r.stderr)
		}
		if st := e.status(); isNull(st.Checkpoint) {
			t.Errorf("nothing acknowledged was recorded (%d imported)", e.emu.Stats().ImportedRows)
		}
		proxy.Restore(t)
		e.emu.SetFaults(cometchattest.Faults{})
		e.emu.ResetStats()
		e.once(0)
		if resent := e.emu.Stats().Requests["PUT group 200"]; resent > 0 {
			t.Errorf("%d acknowledged groups were sent again", resent)
		}
		if n := len(e.emu.Groups()); n != 800 {
			t.Errorf("%d of 800 groups delivered after the database came back", n)
		}
	})
}

// check on PostgreSQL reads the page query's plan: with the index on
// (cursor, tiebreaker) it is used in order; without it check warns that
// every page scans the table, and gives the CREATE INDEX to add.
func TestPostgresCheckKeysetIndex(t *testing.T) {
	e := newPGEnv(t)
	d := sourceDBs[1]
	d.add(e, "g", 5000, "'1' HOUR")
	e.exec("ANALYZE chat_groups")
	r := e.checkRun(0)
	if !strings.Contains(r.stdout, "uses the index idx_cursor of g") || strings.Contains(r.stdout, "warn  ") {
		t.Errorf("check with the index:\n%s", r.stdout)
	}
	e.exec("DROP INDEX idx_cursor")
	e.exec("ANALYZE chat_groups")
	r = e.checkRun(0)
	for _, want := range []string{"warn  source: the keyset read is not in index order of (updated_at, id): no index is used, every page scans chat_groups",
		"(EXPLAIN: type Seq Scan", "CREATE INDEX chat_groups_updated_at_id ON chat_groups (updated_at, id);"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check without the index lacks %q:\n%s", want, r.stdout)
		}
	}
}
