package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/cometsync/cometsync/internal/mariadbtest"
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
