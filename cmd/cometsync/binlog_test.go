package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/syncer"
)

// binlogSrv is a MariaDB with its binary log on, for the binlog tests that
// do not stop their server; started by the first of them.
var (
	binlogOnce sync.Once
	binlogSrv  *mariadbtest.Server
	binlogErr  error
)

func sharedBinlogServer(t *testing.T) *mariadbtest.Server {
	t.Helper()
	binlogOnce.Do(func() {
		binlogSrv, binlogErr = mariadbtest.StartMain(mariadbtest.WithBinlog())
		if binlogErr == nil {
			cleanups = append(cleanups, binlogSrv.Stop)
		}
	})
	if binlogErr != nil {
		t.Fatal(binlogErr)
	}
	return binlogSrv
}

// serverIDs makes each binlog test's source.binlog.server_id unique.
var serverIDs atomic.Int64

// binlogStreams is the graph's three streams in binlog mode: each names
// its table, and no cursor column (the backfill pages by id).
func binlogStreams() string {
	return `users:
  query: |
    SELECT u.id, u.uid, u.display_name AS name, u.avatar_url AS avatar FROM app_users u
  cursor: {tiebreaker: id}
  table: app_users
groups:
  query: |
    SELECT g.id, g.guid, g.title AS name, g.kind AS type FROM chat_groups g
  cursor: {tiebreaker: id}
  table: chat_groups
members:
  query: |
    SELECT m.id, g.guid, m.user_uid AS uid, m.role AS scope, m.joined_at
    FROM memberships m JOIN chat_groups g ON g.id = m.group_id
  cursor: {tiebreaker: id}
  table: memberships
`
}

// newBinlogEnv is the graph on srv in binlog mode, read by a user with the
// replication grants the feed needs (and SELECT).
func newBinlogEnv(t *testing.T, srv *mariadbtest.Server) *env {
	t.Helper()
	e := newEnvOn(t, srv)
	for _, q := range strings.Split(graphSchema, ";") {
		e.exec(q)
	}
	dsn, err := mysql.ParseDSN(e.reader)
	if err != nil {
		t.Fatal(err)
	}
	e.exec(fmt.Sprintf("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '%s'@'%%'", dsn.User))
	e.configure(func(o *cfgOpts) {
		o.sourceExtra = fmt.Sprintf("  mode: binlog\n  binlog:\n    server_id: %d\n", 1000+serverIDs.Add(1))
		o.streams = binlogStreams()
	})
	return e
}

// seedBinlogGraph inserts 20 users, 20 groups and a membership of user i in
// group i.
func seedBinlogGraph(e *env) {
	e.t.Helper()
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) SELECT CONCAT('u', seq), CONCAT('User ', seq), NOW(6) FROM seq_1_to_20`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), 'public', NOW(6) FROM seq_1_to_20`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at) SELECT seq, CONCAT('u', seq), 'participant', NOW(6) FROM seq_1_to_20`)
}

func TestBinlogOnceBackfillsThenStreamsInsertsUpdatesAndDeletes(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	seedBinlogGraph(e)
	r := e.once(0)
	if len(e.emu.Users()) != 20 || len(e.emu.Groups()) != 20 || len(e.emu.AllMembers()) != 20 {
		t.Fatalf("the backfill: %d users, %d groups, %d members in CometChat, want 20 of each\n%s%s",
			len(e.emu.Users()), len(e.emu.Groups()), len(e.emu.AllMembers()), r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "binlog: caught up to gtid") {
		t.Errorf("once does not say where it caught up to:\n%s", r.stdout)
	}

	// Changes that move no updated_at at all: the binlog sees them.
	e.emu.ResetStats()
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) VALUES ('u21', 'User 21', '2000-01-01')`)
	e.exec(`UPDATE chat_groups SET title = 'Renamed 3' WHERE guid = 'g3'`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at) VALUES (3, 'u21', 'admin', '2000-01-01')`)
	e.exec(`UPDATE memberships SET role = 'moderator' WHERE user_uid = 'u4'`)
	e.exec(`DELETE FROM memberships WHERE user_uid = 'u5'`)
	e.exec(`DELETE FROM chat_groups WHERE guid = 'g6'`)
	e.exec(`DELETE FROM app_users WHERE uid = 'u7'`)
	r = e.once(0)
	if _, ok := e.emu.User("u21"); !ok {
		t.Error("the inserted user u21 did not arrive")
	}
	if g, ok := e.emu.Group("g3"); !ok || g.Name != "Renamed 3" {
		t.Errorf("g3 = %+v (%v), want it renamed", g, ok)
	}
	members := e.emu.AllMembers()
	if m, ok := members["g3_member_u21"]; !ok || m.Scope != "admin" {
		t.Errorf("the new membership g3_member_u21 = %+v (%v), want an admin", m, ok)
	}
	if m := members["g4_member_u4"]; m.Scope != "moderator" {
		t.Errorf("g4_member_u4 has scope %q, want moderator", m.Scope)
	}
	if _, ok := members["g5_member_u5"]; ok {
		t.Error("the deleted membership g5_member_u5 is still in CometChat")
	}
	if _, ok := e.emu.Group("g6"); ok {
		t.Error("the deleted group g6 is still in CometChat")
	}
	if u, ok := e.emu.User("u7"); !ok || u.DeactivatedAt == 0 {
		t.Errorf("the deleted user u7 = %+v (%v), want it deactivated", u, ok)
	}
	st := e.emu.Stats()
	if st.Updates != 1 || st.Kicks != 1 || st.Deletes != 1 || st.Deactivations != 1 {
		t.Errorf("group updates %d, kicks %d, group deletes %d, deactivations %d; want 1 of each\n%v", st.Updates, st.Kicks, st.Deletes, st.Deactivations, st.Requests)
	}
	if n := st.UserImportRequests + st.MemberImportRequests; n != 2 {
		t.Errorf("%d import requests for the two new rows, want 2: %v", n, st.Requests)
	}
	// Caught up: the next once sends nothing.
	e.emu.ResetStats()
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("a once with no changes made %d write requests: %v", n, e.emu.Stats().Requests)
	}
	if errs := e.rowErrors(); len(errs) != 0 {
		t.Errorf("row errors: %+v", errs)
	}
}

func TestBinlogAChangeDuringTheBackfillArrives(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	seedBinlogGraph(e)
	e.configure(func(o *cfgOpts) { o.pageSize = 5; o.batchSize = 5 })
	// The first group import is the backfill under way: rows 1..5 were
	// read; change one of them, one not read yet, and delete one read.
	var once sync.Once
	e.http.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/data_import/groups") {
			once.Do(func() {
				e.exec(`UPDATE chat_groups SET title = 'Changed during the backfill' WHERE id = 1`)
				e.exec(`UPDATE chat_groups SET title = 'Changed before it was read' WHERE id = 18`)
				e.exec(`DELETE FROM chat_groups WHERE id = 2`)
			})
		}
		e.emu.ServeHTTP(w, r)
	})
	e.once(0)
	if g, _ := e.emu.Group("g1"); g.Name != "Changed during the backfill" {
		t.Errorf("g1 is %q: the change made during the backfill to a row it had read was lost", g.Name)
	}
	if g, _ := e.emu.Group("g18"); g.Name != "Changed before it was read" {
		t.Errorf("g18 is %q", g.Name)
	}
	if _, ok := e.emu.Group("g2"); ok {
		t.Error("g2, deleted during the backfill, is still in CometChat")
	}
	if n := len(e.emu.Groups()); n != 19 {
		t.Errorf("%d groups in CometChat, want 19", n)
	}
}

// binlogConverged reports how CometChat differs from the source ("" when
// it is the same): the users (deleted ones deactivated), the groups and
// the memberships with their scopes.
func binlogConverged(e *env) string {
	e.t.Helper()
	var diffs []string
	query := func(q string, fn func(k, v string)) {
		rows, err := e.root.Query(q)
		if err != nil {
			e.t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				e.t.Fatal(err)
			}
			fn(k, v)
		}
	}
	users := map[string]string{}
	query(`SELECT uid, display_name FROM app_users`, func(k, v string) { users[k] = v })
	for uid, u := range e.emu.Users() {
		name, ok := users[uid]
		switch {
		case !ok && u.DeactivatedAt == 0:
			diffs = append(diffs, "user "+uid+" is active in CometChat but deleted in the source")
		case ok && (u.DeactivatedAt != 0 || u.Name != name):
			diffs = append(diffs, fmt.Sprintf("user %s is %q (deactivated %v), want %q", uid, u.Name, u.DeactivatedAt != 0, name))
		}
		delete(users, uid)
	}
	for uid := range users {
		diffs = append(diffs, "user "+uid+" is missing")
	}
	groups := map[string]string{}
	query(`SELECT guid, title FROM chat_groups`, func(k, v string) { groups[k] = v })
	for guid, g := range e.emu.Groups() {
		if name, ok := groups[guid]; !ok || name != g.Name {
			diffs = append(diffs, fmt.Sprintf("group %s is %q in CometChat, want %q (present: %v)", guid, g.Name, name, ok))
		}
		delete(groups, guid)
	}
	for guid := range groups {
		diffs = append(diffs, "group "+guid+" is missing")
	}
	members := map[string]string{}
	query(`SELECT CONCAT(g.guid, '_member_', m.user_uid), m.role FROM memberships m JOIN chat_groups g ON g.id = m.group_id`,
		func(k, v string) { members[k] = v })
	for id, m := range e.emu.AllMembers() {
		if scope, ok := members[id]; !ok || scope != m.Scope {
			diffs = append(diffs, fmt.Sprintf("member %s has scope %q in CometChat, want %q (present: %v)", id, m.Scope, scope, ok))
		}
		delete(members, id)
	}
	for id := range members {
		diffs = append(diffs, "member "+id+" is missing")
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d differences, e.g. %s", len(diffs), strings.Join(diffs[:min(len(diffs), 5)], "; "))
}

func TestBinlogCheckAndStatus(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	seedBinlogGraph(e)
	r := e.run("check", "--config", e.cfg)
	if r.code != 0 {
		t.Fatalf("check on a ready server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"binlog_format", "REPLICATION SLAVE", "no position recorded yet"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check does not mention %q:\n%s", want, r.stdout)
		}
	}
	e.once(0)
	r = e.run("check", "--config", e.cfg)
	if !strings.Contains(r.stdout, "the server still has the recorded position gtid") {
		t.Errorf("check after a once does not confirm the recorded position:\n%s", r.stdout)
	}
	st := e.status()
	if st.Binlog == nil || !st.Binlog.Backfilled || !strings.HasPrefix(st.Binlog.Readable, "gtid ") {
		t.Errorf("status --json binlog = %+v, want a backfilled GTID position", st.Binlog)
	}
	e.exec(`UPDATE chat_groups SET title = 'Lagging' WHERE id = 1`)
	e.once(0)
	if st := e.status(); st.Binlog == nil || st.Binlog.LagSeconds == nil || *st.Binlog.LagSeconds < 0 || *st.Binlog.LagSeconds > 60 {
		t.Errorf("status --json binlog after a change = %+v, want a lag", st.Binlog)
	}
	r = e.run("status", "--config", e.cfg)
	if !strings.Contains(r.stdout, "binlog:") || !strings.Contains(r.stdout, "lag:") {
		t.Errorf("status does not show the binlog position and lag:\n%s", r.stdout)
	}

	// A reader without the replication grants: check names them.
	dsn, _ := mysql.ParseDSN(e.reader)
	e.exec(fmt.Sprintf("REVOKE REPLICATION SLAVE, BINLOG MONITOR ON *.* FROM '%s'@'%%'", dsn.User))
	r = e.run("check", "--config", e.cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "GRANT REPLICATION SLAVE") {
		t.Errorf("check with a reader lacking REPLICATION SLAVE: exit %d, want 1 and the GRANT to run:\n%s", r.code, r.stdout)
	}
}

func TestBinlogConfigErrorsNameEveryKey(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	e.configure(func(o *cfgOpts) {
		o.sourceExtra = "  mode: binlog\n  binlog:\n    flavor: percona\n"
		o.streams = strings.Replace(binlogStreams(), "  table: memberships\n", "", 1)
	})
	r := e.once(2)
	for _, want := range []string{"source.binlog.server_id", "source.binlog.flavor", `"percona"`, "members.table"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the config error does not name %s:\n%s", want, r.stderr)
		}
	}
}

func TestBinlogPurgedPositionRescans(t *testing.T) {
	srv := mariadbtest.Start(t, mariadbtest.WithBinlog())
	e := newBinlogEnv(t, srv)
	seedBinlogGraph(e)
	e.once(0)
	// cometsync stopped; changes are made; the binlogs holding them are
	// purged before it comes back.
	e.exec(`UPDATE chat_groups SET title = 'Changed while stopped' WHERE id = 4`)
	e.exec(`DELETE FROM memberships WHERE user_uid = 'u9'`)
	before := e.status().Binlog.Readable
	purgeAll(t, e)
	r := e.once(0)
	out := r.stdout + r.stderr
	if !strings.Contains(out, "no longer has the binary log") || !strings.Contains(out, "rescan") {
		t.Errorf("a purged position is not reported as such:\n%s", out)
	}
	if msg := binlogConverged(e); msg != "" {
		t.Errorf("after the rescan: %s", msg)
	}
	if after := e.status().Binlog.Readable; after == before {
		t.Errorf("the position stayed at %s", after)
	}
	e.emu.ResetStats()
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("the once after the rescan made %d write requests", n)
	}
}

// purgeAll rotates the binary log and purges every file before the
// current one (MariaDB keeps one it still needs for a while: retried).
func purgeAll(t *testing.T, e *env) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		e.exec(`FLUSH BINARY LOGS`)
		var file string
		var pos any
		var rest [2]any
		if err := e.root.QueryRow(`SHOW MASTER STATUS`).Scan(&file, &pos, &rest[0], &rest[1]); err != nil {
			t.Fatal(err)
		}
		e.exec(fmt.Sprintf("PURGE BINARY LOGS TO '%s'", file))
		var first string
		var size any
		if err := e.root.QueryRow(`SHOW BINARY LOGS`).Scan(&first, &size); err != nil {
			t.Fatal(err)
		}
		if first != file {
			return "the server still keeps " + first
		}
		return ""
	})
}

// writeChanges makes n transactions of changes on the graph: renames of
// groups and users, scope changes, new memberships, removed memberships
// and, now and then, a group deleted with its memberships. A transaction
// that fails (the server was killed) is retried once it is back.
func writeChanges(t *testing.T, e *env, n int, pause time.Duration, stop <-chan struct{}) {
	t.Helper()
	for i := 1; i <= n; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var stmts []string
		switch i % 6 {
		case 0:
			stmts = []string{fmt.Sprintf(`UPDATE chat_groups SET title = 'Group %d v%d' WHERE id = %d`, i%20+1, i, i%20+1)}
		case 1:
			stmts = []string{fmt.Sprintf(`UPDATE app_users SET display_name = 'User %d v%d' WHERE id = %d`, i%20+1, i, i%20+1)}
		case 2:
			stmts = []string{fmt.Sprintf(`UPDATE memberships SET role = ELT(1 + %d %% 3, 'admin', 'moderator', 'participant') WHERE id %% 7 = %d`, i, i%7)}
		case 3:
			stmts = []string{fmt.Sprintf(`INSERT INTO memberships (group_id, user_uid, role, updated_at) VALUES (%d, 'u%d', 'participant', NOW(6))`, i%20+1, (i*7)%20+1)}
		case 4:
			stmts = []string{fmt.Sprintf(`DELETE FROM memberships WHERE id = (SELECT id FROM (SELECT MIN(id) AS id FROM memberships WHERE id %% 5 = %d) x)`, i%5)}
		case 5:
			if i%30 == 11 {
				// The group made six transactions ago goes, with its members.
				g := 100 + i - 6
				stmts = []string{fmt.Sprintf(`DELETE FROM memberships WHERE group_id = %d`, g), fmt.Sprintf(`DELETE FROM chat_groups WHERE id = %d`, g)}
			}
			if i%30 == 5 {
				g := 100 + i
				stmts = []string{
					fmt.Sprintf(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) VALUES (%d, 'g%d', 'New %d', 'public', NOW(6))`, g, g, g),
					fmt.Sprintf(`INSERT INTO memberships (group_id, user_uid, role, updated_at) VALUES (%d, 'u1', 'admin', NOW(6)), (%d, 'u2', 'participant', NOW(6))`, g, g),
				}
			}
		}
		for {
			tx, err := e.root.Begin()
			if err == nil {
				for _, q := range stmts {
					if _, err = tx.Exec(q); err != nil {
						break
					}
				}
				if err == nil {
					err = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
			}
			if err == nil {
				break
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond): // the server is down: wait
			}
		}
		time.Sleep(pause)
	}
}

func TestBinlogRunSurvivesSIGKILLAndAServerRestartAndLosesNothing(t *testing.T) {
	srv := mariadbtest.Start(t, mariadbtest.WithBinlog())
	e := newBinlogEnv(t, srv)
	// The changes delete most of the 20 seeded memberships. One by one
	// each batch's deletes are under deletes.always_allow, but a backlog
	// replayed after a kill or the server's restart comes as one batch,
	// which the brake rightly holds (a stuck, loud feed: not what this
	// test is about). The brake in binlog mode has tests of its own.
	e.configure(func(o *cfgOpts) {
		o.extra = "http:\n  listen: \"127.0.0.1:0\"\ndeletes:\n  always_allow: 1000\n"
	})
	seedBinlogGraph(e)
	e.root.SetMaxOpenConns(1)
	c := e.start("run", "--config", e.cfg)
	children := []*child{c}
	defer func() {
		if t.Failed() {
			select {
			case <-c.done:
			default:
				_ = c.cmd.Process.Kill()
				<-c.done
			}
			for i, c := range children {
				t.Logf("cometsync run #%d, stderr:\n%s", i+1, c.errout.String())
			}
		}
	}()
	eventually(t, 30*time.Second, func() string { return binlogConverged(e) })

	stop := make(chan struct{})
	written := make(chan struct{})
	go func() {
		defer close(written)
		writeChanges(t, e, 240, 10*time.Millisecond, stop)
	}()
	defer func() {
		select {
		case <-written:
		default:
			close(stop)
			<-written
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	for round := range 4 {
		time.Sleep(time.Duration(200+rng.IntN(500)) * time.Millisecond)
		if round == 2 {
			// The database dies and comes back; cometsync reconnects.
			srv.Kill(t)
			time.Sleep(300 * time.Millisecond)
			srv.Restart(t)
			continue
		}
		_ = c.cmd.Process.Kill()
		<-c.done
		kills++
		c = e.start("run", "--config", e.cfg)
		children = append(children, c)
	}
	<-written
	eventually(t, 60*time.Second, func() string { return binlogConverged(e) })
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	r := e.wait(c, 20*time.Second)
	if r.code != 0 {
		t.Errorf("run exited %d on SIGTERM\n%s", r.code, r.stderr)
	}
	// The bound on re-sends: what the state had not recorded when a
	// process was killed, at most MaxUnrecorded batches each time.
	st := e.emu.Stats()
	updates := st.Updates + st.UserUpdates + st.ScopeChanges
	// 40 group renames, 40 user renames and up to 40×20 scope changes were
	// made; a kill can add at most MaxUnrecorded(4) batches of 50.
	if limit := 40 + 40 + 40*20 + kills*syncer.MaxUnrecorded(4)*50; updates > limit {
		t.Errorf("%d updates sent for at most %d changes and %d kills", updates, limit, kills)
	}
	if st.Deletes == 0 {
		t.Error("no group was deleted: the test did not exercise deletes")
	}
	t.Logf("%d kills; %d updates, %d imports of members, %d kicks, %d group deletes", kills, updates, st.ImportedMembers, st.Kicks, st.Deletes)
}

func TestBinlogAlterTableMidStream(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	seedBinlogGraph(e)
	e.once(0)
	// A column added before the key, then a change: the key is read right.
	e.exec(`ALTER TABLE chat_groups ADD COLUMN region VARCHAR(10) NULL FIRST`)
	e.exec(`UPDATE chat_groups SET title = 'After the ALTER', region = 'eu' WHERE id = 7`)
	e.exec(`ALTER TABLE memberships DROP COLUMN joined_at`)
	e.configure(func(o *cfgOpts) { o.streams = strings.Replace(binlogStreams(), ", m.joined_at", "", 1) })
	e.exec(`UPDATE memberships SET role = 'admin' WHERE id = 8`)
	e.once(0)
	if msg := binlogConverged(e); msg != "" {
		t.Error(msg)
	}
	if g, _ := e.emu.Group("g7"); g.Name != "After the ALTER" {
		t.Errorf("g7 is %q after the ALTER TABLE", g.Name)
	}
}

func TestBinlogATransactionOf100kRows(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	seedBinlogGraph(e)
	e.once(0)
	// One transaction adds 100,000 memberships of 20 users to 5,000 groups.
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) SELECT 100 + seq, CONCAT('big', seq), CONCAT('Big ', seq), 'public', NOW(6) FROM seq_1_to_5000`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at)
		SELECT 100 + g.seq, CONCAT('u', u.seq), 'participant', NOW(6) FROM seq_1_to_5000 g CROSS JOIN seq_1_to_20 u`)
	r := e.once(0)
	if n := len(e.emu.AllMembers()); n != 100_020 {
		t.Fatalf("%d memberships in CometChat, want 100,020\n%s", n, r.stdout)
	}
	if msg := binlogConverged(e); msg != "" {
		t.Error(msg)
	}
}

// In binlog mode the brake holds a batch's deletes as a pass's: none is
// made, the feed's position stays before them (the next once holds them
// again, loudly), and once --allow-mass-delete makes them.
func TestBinlogBrakeHoldsAMassDeleteUntilAllowed(t *testing.T) {
	e := newBinlogEnv(t, sharedBinlogServer(t))
	seedBinlogGraph(e)
	e.once(0)
	e.exec(`DELETE FROM memberships WHERE id <= 15`)
	for range 2 {
		r := e.once(1)
		if !strings.Contains(r.stdout+r.stderr, "held back 15 deletes") {
			t.Errorf("once does not say the 15 deletes were held back:\n%s%s", r.stdout, r.stderr)
		}
		if n := len(e.emu.AllMembers()); n != 20 {
			t.Fatalf("CometChat has %d members after held deletes, want the 20 still there", n)
		}
	}
	e.once(0, "--allow-mass-delete")
	if msg := binlogConverged(e); msg != "" {
		t.Error(msg)
	}
	if n := len(e.emu.AllMembers()); n != 5 {
		t.Errorf("CometChat has %d members after the allowed deletes, want 5", n)
	}
}
