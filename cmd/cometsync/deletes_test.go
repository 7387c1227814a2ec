package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/source"
)

// deletesSchema adds soft-delete columns to the graph's tables.
const deletesSchema = `
ALTER TABLE app_users ADD COLUMN deleted_at DATETIME(6) NULL;
ALTER TABLE chat_groups ADD COLUMN archived TINYINT NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN removed BOOLEAN NOT NULL DEFAULT FALSE`

// newDeletesEnv is the graph with each stream's query selecting its
// deleted column, in three of the forms users write.
func newDeletesEnv(t *testing.T, extra string) *env {
	e := newGraphEnv(t, "import")
	for _, q := range strings.Split(deletesSchema, ";") {
		e.exec(q)
	}
	streams := strings.NewReplacer(
		"u.avatar_url AS avatar FROM app_users u", "u.avatar_url AS avatar, u.deleted_at IS NOT NULL AS deleted FROM app_users u",
		"g.kind AS type FROM chat_groups g", "g.kind AS type, g.archived AS deleted FROM chat_groups g",
		"m.joined_at\n", "m.joined_at, m.removed AS deleted\n",
	).Replace(graphStreams("import"))
	e.configure(func(o *cfgOpts) { o.streams = streams + extra })
	return e
}

// seedGraph inserts 30 users, 30 groups and a membership of each user in
// the group of the same number, and syncs them.
func seedGraph(e *env) {
	e.t.Helper()
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) SELECT CONCAT('u', seq), CONCAT('User ', seq), NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_30`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), 'public', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_30`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at) SELECT seq, CONCAT('u', seq), 'participant', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_30`)
	e.once(0)
	if len(e.emu.Users()) != 30 || len(e.emu.Groups()) != 30 || len(e.emu.AllMembers()) != 30 {
		e.t.Fatalf("seed: %d users, %d groups, %d members in CometChat, want 30 of each", len(e.emu.Users()), len(e.emu.Groups()), len(e.emu.AllMembers()))
	}
}

func TestSoftDeletesOfEachEntityAndTheirReturn(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.emu.ResetStats()
	// A member removed, a group archived, a user deleted (with a name now
	// invalid: a deleted row needs no other valid field).
	e.exec(`UPDATE memberships SET removed = TRUE, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE user_uid = 'u1'`)
	e.exec(`UPDATE chat_groups SET archived = 1, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE guid = 'g2'`)
	e.exec(`UPDATE app_users SET deleted_at = NOW(), display_name = REPEAT('x', 150), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE uid = 'u3'`)
	r := e.once(0)
	for _, want := range []string{"users: pass complete", "1 deleted"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, ok := e.emu.Member("g1", "u1"); ok {
		t.Error("u1's removed membership of g1 is still in CometChat")
	}
	if _, ok := e.emu.Group("g2"); ok {
		t.Error("the archived group g2 is still in CometChat")
	}
	if u, ok := e.emu.User("u3"); !ok || u.DeactivatedAt == 0 {
		t.Errorf("u3 in CometChat = %+v (%v), want it deactivated (not erased: users.delete is not permanent)", u, ok)
	}
	st := e.emu.Stats()
	if st.Kicks != 1 || st.Deletes != 1 || st.Deactivations != 1 || st.PermanentDeletes != 0 {
		t.Errorf("kicks %d, group deletes %d, deactivations %d, permanent %d; want 1, 1, 1, 0", st.Kicks, st.Deletes, st.Deactivations, st.PermanentDeletes)
	}
	status := e.status()
	if status.Streams["groups"].Delivered != 29 || status.Streams["members"].Delivered != 28 {
		// g2's membership (u2) went with the group, without a call.
		t.Errorf("delivered after the deletes: groups %d (want 29), members %d (want 28)", status.Streams["groups"].Delivered, status.Streams["members"].Delivered)
	}

	// Nothing more to delete: nothing is sent.
	e.emu.ResetStats()
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("a pass after the deletes made %d write requests: %v", n, e.emu.Stats().Requests)
	}

	// They come back.
	e.exec(`UPDATE memberships SET removed = FALSE, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE user_uid = 'u1'`)
	e.exec(`UPDATE chat_groups SET archived = 0, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE guid = 'g2'`)
	e.exec(`UPDATE app_users SET deleted_at = NULL, display_name = 'User 3 is back', updated_at = NOW(6) - INTERVAL 1 SECOND WHERE uid = 'u3'`)
	e.exec(`UPDATE memberships SET updated_at = NOW(6) - INTERVAL 1 SECOND WHERE user_uid = 'u2'`)
	e.once(0)
	if u, ok := e.emu.User("u3"); !ok || u.DeactivatedAt != 0 || u.Name != "User 3 is back" {
		t.Errorf("u3 after its return = %+v (%v), want it reactivated and renamed", u, ok)
	}
	if e.emu.Stats().Reactivations != 1 {
		t.Errorf("%d reactivations, want 1", e.emu.Stats().Reactivations)
	}
	if _, ok := e.emu.Group("g2"); !ok {
		t.Error("g2 did not come back")
	}
	for _, id := range []string{"g1_member_u1", "g2_member_u2"} {
		if _, ok := e.emu.AllMembers()[id]; !ok {
			t.Errorf("membership %s did not come back", id)
		}
	}
	if errs := e.rowErrors(); len(errs) != 0 {
		t.Errorf("row errors: %+v", errs)
	}
}

func TestADeletedRowNeverDeliveredSendsNothing(t *testing.T) {
	e := newDeletesEnv(t, "")
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, archived, updated_at) VALUES (1, 'gone', 'Gone', 'public', 1, NOW(6) - INTERVAL 1 HOUR)`)
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("a deleted row never delivered made %d write requests: %v", n, e.emu.Stats().Requests)
	}
}

func TestTheBrakeHoldsAMassDeleteUntilAllowed(t *testing.T) {
	e := newDeletesEnv(t, "deletes:\n  max_per_pass: 5\n  max_percent: 10\n  always_allow: 2\n")
	seedGraph(e)
	e.emu.ResetStats()
	// A wrong query, in effect: 8 of 30 groups archived at once.
	e.exec(`UPDATE chat_groups SET archived = 1, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id <= 8`)
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) VALUES ('newcomer', 'New', NOW(6) - INTERVAL 1 SECOND)`)
	r := e.once(1)
	out := r.stdout + r.stderr
	for _, want := range []string{"HELD: 8 deletes held back", "held back 8 deletes", "deletes.max_per_pass 5", "--allow-mass-delete", "g1, g2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the held pass does not say %q:\n%s", want, out)
		}
	}
	if e.emu.Stats().Deletes != 0 || len(e.emu.Groups()) != 30 {
		t.Errorf("the brake let %d deletes through; CometChat has %d groups", e.emu.Stats().Deletes, len(e.emu.Groups()))
	}
	// Everything else was synced.
	if _, ok := e.emu.User("newcomer"); !ok {
		t.Error("the new user was not synced by the held pass")
	}
	if st := e.status(); st.Streams["groups"].DeletesHeld != 8 || st.DeletesHeld != 8 {
		t.Errorf("status: groups deletes_held %d, total %d; want 8", st.Streams["groups"].DeletesHeld, st.DeletesHeld)
	}
	// Held again by the next pass: the checkpoint stayed before them.
	e.once(1)
	// Let through when allowed.
	r = e.once(0, "--allow-mass-delete")
	if e.emu.Stats().Deletes != 8 || len(e.emu.Groups()) != 22 {
		t.Errorf("with --allow-mass-delete: %d deletes, %d groups left; want 8 and 22\n%s", e.emu.Stats().Deletes, len(e.emu.Groups()), r.stdout)
	}
	if st := e.status(); st.Streams["groups"].Deleted != 8 || st.Streams["groups"].DeletesHeld != 0 {
		t.Errorf("status after the allowed pass: groups deleted %d, held %d; want 8 and 0", st.Streams["groups"].Deleted, st.Streams["groups"].DeletesHeld)
	}
	e.once(0)
}

func TestDryRunListsTheDeletesAndSendsNothing(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.emu.ResetStats()
	e.exec(`UPDATE chat_groups SET archived = 1, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE guid IN ('g4', 'g5')`)
	r := e.once(0, "--dry-run")
	deletes := dryRunDeletes(r.stdout)
	if !deletes["g4"] || !deletes["g5"] || len(deletes) != 2 {
		t.Errorf("the dry run listed deletes %v, want g4 and g5\n%s", deletes, r.stdout)
	}
	if n := e.requests(); n != 0 {
		t.Errorf("the dry run made %d write requests", n)
	}
	// Nothing was recorded: the real pass makes them.
	e.once(0)
	if _, ok := e.emu.Group("g4"); ok {
		t.Error("g4 survived the pass after the dry run")
	}
}

func TestPermanentUserDeletesErase(t *testing.T) {
	e := newDeletesEnv(t, "")
	e.configure(func(o *cfgOpts) {
		o.streams = strings.Replace(o.streams, "users:\n", "users:\n  delete: permanent\n", 1)
	})
	seedGraph(e)
	e.exec(`UPDATE app_users SET deleted_at = NOW(), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE uid = 'u7'`)
	e.once(0)
	if _, ok := e.emu.User("u7"); ok || e.emu.Stats().PermanentDeletes != 1 {
		t.Errorf("u7 still in CometChat (or not erased): %d permanent deletes", e.emu.Stats().PermanentDeletes)
	}
	r := e.run("check", "--config", e.cfg)
	if !strings.Contains(r.stdout, "users.delete: permanent") {
		t.Errorf("check does not warn about users.delete: permanent:\n%s", r.stdout)
	}
}

func TestReconcileDeletesWhatVanished(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.emu.ResetStats()
	// Rows deleted outright: a membership, a group (with its membership),
	// a user.
	e.exec(`DELETE FROM memberships WHERE user_uid = 'u5'`)
	e.exec(`DELETE FROM memberships WHERE group_id = 6`)
	e.exec(`DELETE FROM chat_groups WHERE id = 6`)
	e.exec(`DELETE FROM app_users WHERE uid = 'u7'`)
	// A normal pass does not see them.
	e.once(0)
	if len(e.emu.AllMembers()) != 30 {
		t.Fatalf("a normal pass deleted memberships: %d left", len(e.emu.AllMembers()))
	}
	// Something another tool created in CometChat is never touched.
	e.emu.PutUser(cometchat.User{UID: "made-elsewhere", Name: "Not ours"})
	r := e.once(0, "--reconcile")
	if !strings.Contains(r.stdout, "members: ") || !strings.Contains(r.stdout, "2 deleted") {
		t.Errorf("the reconcile's summary:\n%s", r.stdout)
	}
	if _, ok := e.emu.Member("g5", "u5"); ok {
		t.Error("u5's vanished membership is still in CometChat")
	}
	if _, ok := e.emu.Group("g6"); ok {
		t.Error("the vanished group g6 is still in CometChat")
	}
	if u, _ := e.emu.User("u7"); u.DeactivatedAt == 0 {
		t.Error("the vanished user u7 was not deactivated")
	}
	if _, ok := e.emu.User("made-elsewhere"); !ok {
		t.Error("the reconcile deleted a user cometsync never delivered")
	}
	st := e.emu.Stats()
	if st.Kicks != 2 || st.Deletes != 1 || st.Deactivations != 1 {
		t.Errorf("kicks %d, group deletes %d, deactivations %d; want 2, 1, 1", st.Kicks, st.Deletes, st.Deactivations)
	}
	// A second reconcile finds nothing more.
	e.emu.ResetStats()
	e.once(0, "--reconcile")
	if n := e.requests(); n != 0 {
		t.Errorf("a second reconcile made %d write requests: %v", n, e.emu.Stats().Requests)
	}
}

func TestReconcileOfAnEmptySourceDeletesNothing(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.exec(`DELETE FROM memberships`)
	e.emu.ResetStats()
	r := e.once(1, "--reconcile", "--stream", "members")
	if !strings.Contains(r.stderr, "the query returned no rows at all, so the reconcile deleted nothing") {
		t.Errorf("the empty-source reconcile does not say why:\n%s", r.stderr)
	}
	if n := e.requests(); n != 0 || len(e.emu.AllMembers()) != 30 {
		t.Errorf("an empty source made %d write requests; %d memberships left", n, len(e.emu.AllMembers()))
	}
}

func TestReconcileHeldByTheBrake(t *testing.T) {
	e := newDeletesEnv(t, "deletes:\n  max_per_pass: 1000\n  max_percent: 10\n  always_allow: 2\n")
	seedGraph(e)
	e.exec(`DELETE FROM memberships WHERE group_id <= 20`)
	r := e.once(1, "--reconcile", "--stream", "members")
	if !strings.Contains(r.stdout+r.stderr, "held back 20 deletes") || len(e.emu.AllMembers()) != 30 {
		t.Errorf("20 of 30 memberships vanished: %d left, output:\n%s%s", len(e.emu.AllMembers()), r.stdout, r.stderr)
	}
	e.once(0, "--reconcile", "--stream", "members", "--allow-mass-delete")
	if n := len(e.emu.AllMembers()); n != 10 {
		t.Errorf("%d memberships left after the allowed reconcile, want 10", n)
	}
}

func TestSIGKILLDuringAReconcileThenItCompletes(t *testing.T) {
	e := newDeletesEnv(t, "")
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) SELECT CONCAT('u', seq), CONCAT('User ', seq), NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_10`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), 'public', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_100`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at) SELECT g.seq, CONCAT('u', u.seq), 'participant', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_100 g CROSS JOIN seq_1_to_10 u`)
	e.once(0)
	e.exec(`DELETE FROM memberships WHERE user_uid IN ('u1', 'u2', 'u3')`) // 300 of 1,000
	e.emu.SetFaults(cometchattest.Faults{Latency: 20 * time.Millisecond})
	c := e.start("once", "--config", e.cfg, "--reconcile", "--allow-mass-delete")
	eventually(t, 30*time.Second, func() string {
		if n := e.emu.Stats().Kicks; n < 40 {
			return fmt.Sprintf("%d kicks, waiting for 40", n)
		}
		return ""
	})
	_ = c.cmd.Process.Kill()
	e.wait(c, 5*time.Second)
	if n := len(e.emu.AllMembers()); n <= 700 {
		t.Fatalf("the reconcile finished before it was killed (%d memberships left)", n)
	}
	e.emu.SetFaults(cometchattest.Faults{})
	e.once(0, "--reconcile", "--allow-mass-delete")
	if n := len(e.emu.AllMembers()); n != 700 {
		t.Errorf("%d memberships after the rerun, want 700", n)
	}
	for id := range e.emu.AllMembers() {
		if strings.HasSuffix(id, "_member_u1") || strings.HasSuffix(id, "_member_u2") || strings.HasSuffix(id, "_member_u3") {
			t.Errorf("vanished membership %s is still in CometChat", id)
		}
	}
	if errs := e.rowErrors(); len(errs) != 0 {
		t.Errorf("row errors: %+v", errs[:min(3, len(errs))])
	}
}

func TestRunReconcilesOnItsSchedule(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.exec(`DELETE FROM memberships WHERE user_uid = 'u9'`)
	addr := freeAddr(t)
	e.configure(func(o *cfgOpts) {
		o.extra = fmt.Sprintf("schedule: \"@every 1s\"\nreconcile_schedule: \"@every 1s\"\nhttp:\n  listen: %q\n", addr)
	})
	stop := e.daemon()
	defer stop()
	eventually(t, 20*time.Second, func() string {
		if _, ok := e.emu.Member("g9", "u9"); ok {
			return "the vanished membership is still there"
		}
		return ""
	})
	_, m := get(t, "http://"+addr+"/metrics")
	if !strings.Contains(m, `cometsync_deletes_total{outcome="deleted",stream="members"} 1`) {
		t.Errorf("/metrics does not count the delete:\n%s", grepLines(m, "cometsync_deletes"))
	}
}

func TestAKeyChangeDeletesTheOldKeyInTheSamePass(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.emu.ResetStats()
	// A group renames its guid, a user its uid, a membership moves to
	// another user: each row lives on under a new key.
	e.exec(`UPDATE chat_groups SET guid = 'g5-renamed', updated_at = NOW(6) - INTERVAL 1 SECOND WHERE guid = 'g5'`)
	e.exec(`UPDATE app_users SET uid = 'u6-renamed', updated_at = NOW(6) - INTERVAL 1 SECOND WHERE uid = 'u6'`)
	e.exec(`UPDATE memberships SET user_uid = 'u8', updated_at = NOW(6) - INTERVAL 1 SECOND WHERE user_uid = 'u7'`)
	r := e.once(0)
	if _, ok := e.emu.Group("g5"); ok {
		t.Error("the group's old guid g5 is still in CometChat")
	}
	if _, ok := e.emu.Group("g5-renamed"); !ok {
		t.Error("the group's new guid g5-renamed did not arrive")
	}
	if u, ok := e.emu.User("u6"); !ok || u.DeactivatedAt == 0 {
		t.Errorf("the user's old uid u6 = %+v (%v), want it deactivated", u, ok)
	}
	if u, ok := e.emu.User("u6-renamed"); !ok || u.DeactivatedAt != 0 {
		t.Errorf("the user's new uid u6-renamed = %+v (%v), want it active", u, ok)
	}
	members := e.emu.AllMembers()
	if _, ok := members["g7_member_u7"]; ok {
		t.Error("the old membership g7_member_u7 is still in CometChat")
	}
	if _, ok := members["g7_member_u8"]; !ok {
		t.Error("the new membership g7_member_u8 did not arrive")
	}
	st := e.emu.Stats()
	if st.Deletes != 1 || st.Deactivations != 1 || st.Kicks != 1 {
		t.Errorf("group deletes %d, deactivations %d, kicks %d; want 1 of each\n%s", st.Deletes, st.Deactivations, st.Kicks, r.stdout)
	}
	status := e.status()
	for stream, want := range map[string]int{"groups": 1, "users": 1, "members": 1} {
		if got := status.Streams[stream].Deleted; got != want {
			t.Errorf("status: %s deleted %d, want %d", stream, got, want)
		}
	}
	// g5's membership went with the group in CometChat and in the state.
	if n := status.Streams["groups"].Delivered; n != 30 {
		t.Errorf("groups delivered %d, want 30 (29 old, one renamed)", n)
	}
	// Done: the next pass sends nothing, and deletes nothing twice.
	e.emu.ResetStats()
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("the pass after the key changes made %d write requests: %v", n, e.emu.Stats().Requests)
	}
}

func TestKeyChangesAreUnderTheBrake(t *testing.T) {
	e := newDeletesEnv(t, "deletes:\n  max_per_pass: 5\n  max_percent: 100\n")
	seedGraph(e)
	e.emu.ResetStats()
	// A migration that prefixes every guid: 30 old keys to delete.
	e.exec(`UPDATE chat_groups SET guid = CONCAT('team1-', guid), updated_at = NOW(6) - INTERVAL 1 SECOND`)
	r := e.once(1)
	if !strings.Contains(r.stdout+r.stderr, "held back 30 deletes") {
		t.Errorf("the pass does not say it held back the 30 old keys:\n%s%s", r.stdout, r.stderr)
	}
	if st := e.emu.Stats(); st.Deletes != 0 {
		t.Errorf("the brake let %d deletes of old keys through", st.Deletes)
	}
	if _, ok := e.emu.Group("team1-g1"); !ok {
		t.Error("the held pass did not deliver the new keys")
	}
	e.once(0, "--allow-mass-delete")
	if n := len(e.emu.Groups()); n != 30 || e.emu.Stats().Deletes != 30 {
		t.Errorf("after --allow-mass-delete: %d groups, %d deletes; want 30 and 30", n, e.emu.Stats().Deletes)
	}
	if _, ok := e.emu.Group("g1"); ok {
		t.Error("old key g1 survived the allowed pass")
	}
}

// deleteCounter sits in front of the emulator and counts every DELETE
// request by path and answer, for the bound on how often a delete is sent.
// A path in stubborn is answered 503 (CometChat did nothing) that many
// more times: a delete that fails a whole pass.
type deleteCounter struct {
	next     http.Handler
	mu       sync.Mutex
	pass     map[string]int // non-429 requests per path, this pass
	ok       map[string]int // 2xx answers per path, all passes
	stubborn map[string]int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = -1
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func (d *deleteCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodDelete {
		d.next.ServeHTTP(w, r)
		return
	}
	path := r.URL.EscapedPath()
	d.mu.Lock()
	forced := d.stubborn[path] > 0
	if forced {
		d.stubborn[path]--
	}
	d.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	if forced {
		sw.Header().Set("Content-Type", "application/json")
		sw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = sw.Write([]byte(`{"error":{"code":"ERR_EXCEPTION","message":"unavailable (test)"}}`))
	} else {
		d.next.ServeHTTP(sw, r)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if sw.status != http.StatusTooManyRequests {
		d.pass[path]++
	}
	if sw.status >= 200 && sw.status < 300 {
		d.ok[path]++
	}
}

// newPass returns the last pass's counts and starts new ones.
func (d *deleteCounter) newPass() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	last := d.pass
	d.pass = map[string]int{}
	return last
}

// TestDeletesUnderEveryFault: the soft deletes of users, groups and
// members, then a reconcile of vanished rows, under the fault mix of
// TestDeliveryUnderEveryFault, with one delete of each stream failing a
// whole pass; passes are repeated until one completes. CometChat must end
// equal to the source, no delete may be sent more often than the bound in
// docs/DESIGN.md ("Deletes under faults"), and no checkpoint may pass a
// delete not yet made.
func TestDeletesUnderEveryFault(t *testing.T) {
	e := newDeletesEnv(t, "deletes:\n  max_per_pass: 100\n  max_percent: 50\n  always_allow: 10\n")
	dc := &deleteCounter{next: e.emu, pass: map[string]int{}, ok: map[string]int{}, stubborn: map[string]int{}}
	e.http = httptest.NewServer(dc)
	t.Cleanup(e.http.Close)
	e.configure(func(o *cfgOpts) { o.batchSize = 10 })
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) SELECT CONCAT('u', seq), CONCAT('User ', seq), NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_60`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), 'public', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_60`)
	// Each user in the group of its number and in the next one.
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at) SELECT seq, CONCAT('u', seq), 'participant', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_60`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at) SELECT seq % 60 + 1, CONCAT('u', seq), 'moderator', NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_60`)
	e.once(0)
	if n := len(e.emu.AllMembers()); n != 120 {
		t.Fatalf("seed: %d memberships in CometChat, want 120", n)
	}

	const attempts = 6
	cfg, _ := os.ReadFile(e.cfg)
	cfg = bytes.Replace(cfg, []byte("max_attempts: 2"), []byte(fmt.Sprintf("max_attempts: %d", attempts)), 1)
	cfg = bytes.Replace(cfg, []byte("timeout: 5s"), []byte("timeout: 300ms"), 1)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	e.emu.SetFaults(cometchattest.Faults{Latency: 2 * time.Millisecond, ErrorRate: 0.08, ResetRate: 0.04, HangRate: 0.02,
		PartialImportRate: 0.08, ImportPerSecond: 20, OtherPerSecond: 400, RetryAfter: true, Seed: 42})
	dc.newPass()

	// A delete's stream, from its path.
	streamOf := func(path string) string {
		switch {
		case strings.HasPrefix(path, "/users/"):
			return "users"
		case strings.Contains(path, "/members/"):
			return "members"
		}
		return "groups"
	}
	stillThere := func(path string) bool {
		switch streamOf(path) {
		case "users":
			u, ok := e.emu.User(strings.TrimPrefix(path, "/users/"))
			return ok && u.DeactivatedAt == 0
		case "groups":
			_, ok := e.emu.Group(strings.TrimPrefix(path, "/groups/"))
			return ok
		}
		guid, uid, _ := strings.Cut(strings.TrimPrefix(path, "/groups/"), "/members/")
		_, ok := e.emu.Member(guid, uid)
		return ok
	}
	// A soft delete: the row that asks for it and its request.
	type softDelete struct {
		table string
		id    int64
		path  string
	}
	// checkHeld: every soft delete not yet made is after its stream's
	// checkpoint (the next pass reads it again) or in the error store.
	checkHeld := func(st statusReport, dels []softDelete) {
		t.Helper()
		errored := map[string]bool{}
		for _, re := range e.rowErrors() {
			errored[re.Stream+"/"+re.RowKey] = true
		}
		for _, d := range dels {
			stream := streamOf(d.path)
			cp := st.Streams[stream].Checkpoint
			if !stillThere(d.path) || errored[fmt.Sprintf("%s/%d", stream, d.id)] || isNull(cp) {
				continue
			}
			var pos source.Position
			if err := json.Unmarshal(cp, &pos); err != nil {
				t.Fatalf("checkpoint %s: %v", cp, err)
			}
			var after bool
			if err := e.root.QueryRow(`SELECT (updated_at, id) > (?, ?) FROM `+d.table+` WHERE id = ?`, pos.Cursor.Text, pos.Key.Int, d.id).Scan(&after); err != nil {
				t.Fatal(err)
			}
			if !after {
				t.Errorf("%s: the checkpoint %s moved over row %d, whose delete (DELETE %s) was not made", stream, cp, d.id, d.path)
			}
		}
	}
	// passUntilDone repeats passes until one completes, checking after each
	// the bound on how often a delete was sent.
	sent := map[string][]int{}            // path -> the passes that sent it
	failedIn := map[int]map[string]bool{} // pass -> the streams that failed
	passN, failedPasses := 0, 0
	passUntilDone := func(dels []softDelete, flags ...string) {
		t.Helper()
		for i := 0; i < 10; i++ {
			r := e.run(append([]string{"once", "--config", e.cfg}, flags...)...)
			passN++
			for path, n := range dc.newPass() {
				if n > attempts {
					t.Errorf("pass %d sent DELETE %s %d times (429s not counted); the bound is retry.max_attempts = %d", passN, path, n, attempts)
				}
				sent[path] = append(sent[path], passN)
			}
			st := e.status()
			var last struct {
				Streams map[string]struct {
					Error string `json:"error"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(st.LastPass, &last); err != nil {
				t.Fatal(err)
			}
			failedIn[passN] = map[string]bool{}
			for name, sr := range last.Streams {
				failedIn[passN][name] = sr.Error != ""
			}
			checkHeld(st, dels)
			if r.code == 0 {
				return
			}
			if r.code != 1 {
				t.Fatalf("pass under faults: exit %d\n%s", r.code, r.stderr)
			}
			failedPasses++
		}
		t.Fatal("10 passes under faults and none completed")
	}

	// Soft deletes: 8 users (one with a name now invalid), 8 groups (with
	// their memberships), 8 memberships of live groups and one of a group
	// deleted too; renames besides. One delete of each stream fails a
	// whole pass.
	e.exec(`UPDATE app_users SET deleted_at = NOW(), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id BETWEEN 1 AND 8`)
	e.exec(`UPDATE app_users SET display_name = REPEAT('x', 150) WHERE id = 1`)
	e.exec(`UPDATE chat_groups SET archived = 1, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id BETWEEN 11 AND 18`)
	e.exec(`UPDATE memberships SET removed = TRUE, updated_at = NOW(6) - INTERVAL 1 SECOND
		WHERE role = 'moderator' AND user_uid IN ('u21', 'u22', 'u23', 'u24', 'u25', 'u26', 'u27', 'u28') OR group_id = 15`)
	e.exec(`UPDATE app_users SET display_name = CONCAT(display_name, ' v2'), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id BETWEEN 31 AND 35`)
	e.exec(`UPDATE chat_groups SET title = CONCAT(title, ' v2'), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id BETWEEN 31 AND 35`)
	var dels []softDelete
	for id := int64(1); id <= 8; id++ {
		dels = append(dels, softDelete{"app_users", id, fmt.Sprintf("/users/u%d", id)})
	}
	for id := int64(11); id <= 18; id++ {
		dels = append(dels, softDelete{"chat_groups", id, fmt.Sprintf("/groups/g%d", id)})
	}
	// u<n>'s moderator membership is in group n+1; u15's in g15, whose
	// group delete fails the first pass, is kicked in it.
	memberRow := func(guid, uid string) int64 {
		var id int64
		if err := e.root.QueryRow(`SELECT m.id FROM memberships m JOIN chat_groups g ON g.id = m.group_id WHERE g.guid = ? AND m.user_uid = ?`, guid, uid).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for n := 21; n <= 28; n++ {
		guid, uid := fmt.Sprintf("g%d", n+1), fmt.Sprintf("u%d", n)
		dels = append(dels, softDelete{"memberships", memberRow(guid, uid), "/groups/" + guid + "/members/" + uid})
	}
	dels = append(dels, softDelete{"memberships", memberRow("g15", "u15"), "/groups/g15/members/u15"})
	dc.mu.Lock()
	for _, p := range []string{"/users/u5", "/groups/g15", "/groups/g22/members/u21"} {
		dc.stubborn[p] = attempts
	}
	dc.mu.Unlock()
	passUntilDone(dels)
	if failedPasses == 0 {
		t.Fatal("no pass failed on a delete; the test proves nothing")
	}

	// Rows deleted outright: memberships, two groups with theirs, two
	// users (whose memberships stay); one delete of each stream fails a
	// whole reconcile.
	e.exec(`DELETE FROM memberships WHERE role = 'moderator' AND user_uid IN ('u30', 'u31', 'u32', 'u33', 'u34', 'u35') OR group_id IN (40, 41)`)
	e.exec(`DELETE FROM chat_groups WHERE id IN (40, 41)`)
	e.exec(`DELETE FROM app_users WHERE id IN (45, 46)`)
	dc.mu.Lock()
	for _, p := range []string{"/users/u46", "/groups/g41", "/groups/g31/members/u30"} {
		dc.stubborn[p] = attempts
	}
	dc.mu.Unlock()
	before := failedPasses
	passUntilDone(nil, "--reconcile")
	if failedPasses == before {
		t.Fatal("no reconcile failed on a delete; the test proves nothing")
	}

	// Nothing repeated: each delete succeeded at most once, and was sent in
	// a later pass only when its stream had failed in the earlier one.
	for path, passes := range sent {
		if n := dc.ok[path]; n > 1 {
			t.Errorf("DELETE %s succeeded %d times", path, n)
		}
		for _, p := range passes[:len(passes)-1] {
			if !failedIn[p][streamOf(path)] {
				t.Errorf("DELETE %s was sent in passes %v, again after pass %d in which %s completed", path, passes, p, streamOf(path))
			}
		}
	}
	faulted := 0
	for k, n := range e.emu.Stats().Requests {
		if strings.HasPrefix(k, "DELETE ") && !strings.HasSuffix(k, " 200") && !strings.HasSuffix(k, " 404") {
			faulted += n
		}
	}
	if faulted == 0 {
		t.Errorf("the emulator's faults hit no delete: %v", e.emu.Stats().Requests)
	}
	e.emu.SetFaults(cometchattest.Faults{})
	e.once(0)
	e.once(0, "--reconcile")
	if again := dc.newPass(); len(again) != 0 {
		t.Errorf("a pass and a reconcile after everything was deleted sent deletes again: %v", again)
	}
	assertGraphEqualsSource(e, map[string]bool{"u45": true, "u46": true})
}

// assertGraphEqualsSource checks that CometChat holds the source's graph:
// every user of the table (active unless deleted, named as the row says)
// and the vanished ones deactivated, the groups not archived as the rows
// say, and exactly the memberships not removed of those groups; and that
// the error store is empty.
func assertGraphEqualsSource(e *env, vanished map[string]bool) {
	e.t.Helper()
	t := e.t
	users := e.emu.Users()
	rows, err := e.root.Query(`SELECT uid, display_name, deleted_at IS NOT NULL FROM app_users`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var uid, name string
		var deleted bool
		if err := rows.Scan(&uid, &name, &deleted); err != nil {
			t.Fatal(err)
		}
		n++
		u, ok := users[uid]
		switch {
		case !ok:
			t.Errorf("user %s is missing from CometChat", uid)
		case deleted && u.DeactivatedAt == 0:
			t.Errorf("the deleted user %s is still active in CometChat", uid)
		case !deleted && (u.DeactivatedAt != 0 || u.Name != name):
			t.Errorf("user %s in CometChat is %+v, the database says active and named %q", uid, u, name)
		}
	}
	rows.Close()
	for uid := range vanished {
		if u, ok := users[uid]; !ok || u.DeactivatedAt == 0 {
			t.Errorf("the vanished user %s is %+v (%v) in CometChat, want it deactivated", uid, u, ok)
		}
	}
	if len(users) != n+len(vanished) {
		t.Errorf("CometChat holds %d users, the database %d and %d vanished", len(users), n, len(vanished))
	}

	groups := e.emu.Groups()
	rows, err = e.root.Query(`SELECT guid, title FROM chat_groups WHERE archived = 0`)
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for rows.Next() {
		var guid, title string
		if err := rows.Scan(&guid, &title); err != nil {
			t.Fatal(err)
		}
		n++
		if g, ok := groups[guid]; !ok || g.Name != title {
			t.Errorf("group %s in CometChat is %+v (%v), the database names it %q", guid, g, ok, title)
		}
	}
	rows.Close()
	if len(groups) != n {
		t.Errorf("CometChat holds %d groups, the database %d live ones", len(groups), n)
	}

	members := e.emu.AllMembers()
	rows, err = e.root.Query(`SELECT g.guid, m.user_uid, m.role FROM memberships m JOIN chat_groups g ON g.id = m.group_id
		WHERE NOT m.removed AND g.archived = 0`)
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for rows.Next() {
		var guid, uid, role string
		if err := rows.Scan(&guid, &uid, &role); err != nil {
			t.Fatal(err)
		}
		n++
		if m, ok := members[cometchat.MemberID(guid, uid)]; !ok || m.Scope != role {
			t.Errorf("membership of %s in %s in CometChat is %+v (%v), the database says %s", uid, guid, m, ok, role)
		}
	}
	rows.Close()
	if len(members) != n {
		t.Errorf("CometChat holds %d memberships, the database %d", len(members), n)
	}
	if errs := e.rowErrors(); len(errs) != 0 {
		t.Errorf("row errors: %+v", errs)
	}
}

// With no brake at all (both limits 0), every delete of a pass is made:
// none is dropped while the checkpoint moves past its row.
func TestWithoutABrakeEveryDeleteIsMade(t *testing.T) {
	e := newDeletesEnv(t, "deletes:\n  max_per_pass: 0\n  max_percent: 0\n")
	seedGraph(e)
	e.exec(`UPDATE chat_groups SET archived = 1, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id <= 25`)
	e.once(0)
	e.once(0)
	if n := len(e.emu.Groups()); n != 5 {
		t.Errorf("CometChat holds %d groups after 25 of 30 were archived, want 5", n)
	}
}

func TestAPassDeletesMembersThenGroupsThenUsers(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	var mu sync.Mutex
	var order []string
	e.http.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			kind := "user"
			switch {
			case strings.Contains(r.URL.Path, "/members/"):
				kind = "member"
			case strings.Contains(r.URL.Path, "/groups/"):
				kind = "group"
			}
			mu.Lock()
			order = append(order, kind)
			mu.Unlock()
		}
		e.emu.ServeHTTP(w, r)
	})
	e.exec(`UPDATE app_users SET deleted_at = NOW(), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE uid IN ('u1', 'u2')`)
	e.exec(`UPDATE chat_groups SET archived = 1, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE guid IN ('g3', 'g4')`)
	e.exec(`UPDATE memberships SET removed = TRUE, updated_at = NOW(6) - INTERVAL 1 SECOND WHERE user_uid IN ('u5', 'u6')`)
	e.once(0)
	want := []string{"member", "member", "group", "group", "user", "user"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("deletes went %v, want members, then groups, then users: %v", order, want)
	}
}

func TestReconcileDryRunListsTheDeletesAndSendsNothing(t *testing.T) {
	e := newDeletesEnv(t, "")
	seedGraph(e)
	e.exec(`DELETE FROM memberships WHERE user_uid = 'u5'`)
	e.exec(`DELETE FROM app_users WHERE uid = 'u7'`)
	e.emu.ResetStats()
	r := e.once(0, "--reconcile", "--dry-run")
	deletes := dryRunDeletes(r.stdout)
	if !deletes["g5_member_u5"] || !deletes["u7"] || len(deletes) != 2 {
		t.Errorf("the reconcile dry run listed deletes %v, want g5_member_u5 and u7\n%s%s", deletes, r.stdout, r.stderr)
	}
	if n := e.requests(); n != 0 {
		t.Errorf("the reconcile dry run made %d write requests", n)
	}
	e.once(0, "--reconcile")
	if u, _ := e.emu.User("u7"); u.DeactivatedAt == 0 {
		t.Error("u7 was not deactivated by the reconcile after the dry run")
	}
}

// dryRunDeletes are the keys of the {"delete": key} lines a dry run printed.
func dryRunDeletes(stdout string) map[string]bool {
	deletes := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var d struct {
			Delete string `json:"delete"`
		}
		if json.Unmarshal([]byte(line), &d) == nil && d.Delete != "" {
			deletes[d.Delete] = true
		}
	}
	return deletes
}
