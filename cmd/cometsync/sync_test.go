package main

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
)

// insertShapes writes rows covering every column shape the mapping reads.
func insertShapes(e *env) {
	e.exec(`INSERT INTO users VALUES ('u1', 'User One', 'https://example.com/u1.png'), ('u3', NULL, NULL)`)
	e.exec(`INSERT INTO chat_groups (guid, title, kind, join_password, icon_url, created_at, created_ms, meta, tags, owner_uid, updated_at) VALUES
		('Team-Alpha', 'Alpha', 'public', NULL, 'https://example.com/a.png', '2023-01-11 07:16:59.500000', 1673421419123, '{"a": 1, "b": [1, 2]}', 'x, y,,z', 'u1', NOW(6) - INTERVAL 3 HOUR),
		('team-beta', 'Bêta ✓', 'password', 'pw-123', NULL, '2020-02-29 23:59:59', NULL, NULL, '["p", "q"]', NULL, NOW(6) - INTERVAL 2 HOUR),
		('team_gamma', 'Gamma', 'private', NULL, NULL, NULL, 1600000000, '{}', NULL, 'u3', NOW(6) - INTERVAL 1 HOUR)`)
}

// shapesWant is what CometChat must hold after insertShapes.
var shapesWant = map[string]cometchat.Group{
	"team-alpha": {GUID: "team-alpha", Name: "Alpha", Type: "public", Icon: "https://example.com/a.png", Owner: "u1",
		CreatedAt: 1673421419, Metadata: json.RawMessage(`{"a":1,"b":[1,2]}`), Tags: []string{"x", "y", "z"},
		GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u1", Name: "User One", Avatar: "https://example.com/u1.png"}},
	"team-beta": {GUID: "team-beta", Name: "Bêta ✓", Type: "password", Password: "pw-123", CreatedAt: 1583020799,
		Tags: []string{"p", "q"}},
	"team_gamma": {GUID: "team_gamma", Name: "Gamma", Type: "private", Owner: "u3", Metadata: json.RawMessage(`{}`),
		GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u3", Name: "u3"}},
}

func TestBackfillEveryColumnShape(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dsnParams string
		createdMS bool
	}{
		{"datetime without parseTime", "", false},
		{"datetime with parseTime", "?parseTime=true", false},
		{"integer milliseconds", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			insertShapes(e)
			want := shapesWant
			if tc.createdMS {
				e.configure(func(o *cfgOpts) { o.query = strings.Replace(query, "g.created_at,", "g.created_ms AS created_at,", 1) })
				want = map[string]cometchat.Group{}
				for k, g := range shapesWant {
					want[k] = g
				}
				alpha, beta, gamma := want["team-alpha"], want["team-beta"], want["team_gamma"]
				alpha.CreatedAt, beta.CreatedAt, gamma.CreatedAt = 1673421419, 0, 1600000000
				want["team-alpha"], want["team-beta"], want["team_gamma"] = alpha, beta, gamma
			}
			e.configure(func(o *cfgOpts) { o.dsnParams = tc.dsnParams })
			r := e.once(0)
			if !strings.Contains(r.stdout, "3 imported") {
				t.Errorf("summary does not say 3 imported:\n%s", r.stdout)
			}
			got := e.emu.Groups()
			if len(got) != len(want) {
				t.Fatalf("CometChat has %d groups, want %d: %v", len(got), len(want), got)
			}
			for guid, w := range want {
				if g := got[guid]; !reflect.DeepEqual(g, w) {
					t.Errorf("group %s:\n got %+v\nwant %+v", guid, g, w)
				}
			}
			st := e.status()
			if isNull(st.Checkpoint) || st.FailedRows != 0 {
				t.Errorf("status after backfill: checkpoint %s, failed %d", st.Checkpoint, st.FailedRows)
			}
		})
	}
}

func TestSecondPassWithoutChangesSendsNothing(t *testing.T) {
	e := newEnv(t)
	e.addGroups(120)
	e.once(0)
	if n := len(e.emu.Groups()); n != 120 {
		t.Fatalf("backfill delivered %d groups, want 120", n)
	}
	e.emu.ResetStats()
	r := e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("a pass with no changes made %d requests: %v", n, e.emu.Stats().Requests)
	}
	if !strings.Contains(r.stdout, "read 0 rows") {
		t.Errorf("second pass read rows again:\n%s", r.stdout)
	}
}

func TestUpdatedRowsGoOutAsUpdates(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	e.addGroups(10)
	e.once(0)
	e.emu.ResetStats()
	e.exec(`UPDATE chat_groups SET title = 'Alpha renamed', icon_url = NULL, meta = NULL, tags = NULL, updated_at = NOW(6) WHERE guid = 'Team-Alpha'`)
	e.exec(`UPDATE chat_groups SET title = 'Beta renamed', updated_at = NOW(6) WHERE guid = 'team-beta'`)
	r := e.once(0)
	st := e.emu.Stats()
	if st.Updates != 2 || st.ImportRequests != 0 {
		t.Errorf("updates %d, import requests %d; want 2 updates and no import (requests %v)", st.Updates, st.ImportRequests, st.Requests)
	}
	if !strings.Contains(r.stdout, "2 updated") {
		t.Errorf("summary does not say 2 updated:\n%s", r.stdout)
	}
	alpha, _ := e.emu.Group("team-alpha")
	if alpha.Name != "Alpha renamed" || alpha.Icon != "" || alpha.Metadata != nil || alpha.Tags != nil {
		t.Errorf("team-alpha after update: %+v; want the new name and icon, metadata and tags cleared", alpha)
	}
	if beta, _ := e.emu.Group("team-beta"); beta.Name != "Beta renamed" || beta.Password != "pw-123" {
		t.Errorf("team-beta after update: %+v", beta)
	}
}

func TestTouchedButUnchangedRowsSendNothing(t *testing.T) {
	e := newEnv(t)
	e.addGroups(30)
	e.once(0)
	e.emu.ResetStats()
	e.exec(`UPDATE chat_groups SET updated_at = NOW(6) - INTERVAL 1 SECOND`)
	r := e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("touched rows made %d requests: %v", n, e.emu.Stats().Requests)
	}
	if !strings.Contains(r.stdout, "read 30 rows") || !strings.Contains(r.stdout, "30 unchanged") {
		t.Errorf("summary should count 30 rows read and unchanged:\n%s", r.stdout)
	}
}

func TestThousandsOfRowsSharingOneTimestamp(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ")
	for i := 0; i < 3000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("(CONCAT('same-', " + strconv.Itoa(i) + "), 'Same', 'public', '2024-05-01 12:00:00')")
	}
	e.exec(b.String())
	e.configure(func(o *cfgOpts) { o.pageSize = 70 }) // pages end mid-batch and mid-timestamp
	e.once(0)
	if n := len(e.emu.Groups()); n != 3000 {
		t.Fatalf("delivered %d of 3000 rows sharing one timestamp", n)
	}
	e.emu.ResetStats()
	e.exec("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('same-late', 'Late', 'public', '2024-05-01 12:00:00')")
	e.once(0)
	if _, ok := e.emu.Group("same-late"); !ok {
		t.Error("a row added later with the same timestamp and a higher id was not delivered")
	}
	if st := e.emu.Stats(); st.ImportedRows != 1 {
		t.Errorf("second pass imported %d rows, want only the new one", st.ImportedRows)
	}
}

// TestLateCommitCaughtByLag: a transaction stamps its row first but commits
// after a newer row; a pass in between must not move the watermark past it.
func TestLateCommitCaughtByLag(t *testing.T) {
	for _, tc := range []struct {
		lag      string
		wantLate bool
	}{
		{"2s", true},
		{"0s", false}, // shows what lag prevents: the late row is lost
	} {
		t.Run("lag "+tc.lag, func(t *testing.T) {
			e := newEnv(t)
			e.configure(func(o *cfgOpts) { o.lag = tc.lag })
			conn, err := e.root.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tx, err := conn.BeginTx(t.Context(), &sql.TxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('late', 'Late', 'public', NOW(6))`); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('early', 'Early', 'public', NOW(6))`)
			time.Sleep(200 * time.Millisecond)
			e.once(0) // 'late' is not committed yet
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond)
			e.once(0)
			if _, ok := e.emu.Group("early"); !ok {
				t.Error("the committed row was not delivered")
			}
			if _, ok := e.emu.Group("late"); ok != tc.wantLate {
				t.Errorf("late-committing row delivered = %v, want %v", ok, tc.wantLate)
			}
		})
	}
}

func TestInvalidRowsRecordedAndTheRestDelivered(t *testing.T) {
	e := newEnv(t)
	e.addGroups(60)
	e.exec(`INSERT INTO chat_groups (guid, title, kind, join_password, meta, updated_at) VALUES
		('Bad Guid!', 'ok', 'public', NULL, NULL, NOW(6) - INTERVAL 30 MINUTE),
		('long-name', REPEAT('n', 101), 'public', NULL, NULL, NOW(6) - INTERVAL 30 MINUTE),
		('no-pass', 'Locked', 'password', NULL, NULL, NOW(6) - INTERVAL 30 MINUTE),
		('bad-meta', 'Meta', 'public', NULL, '[1, 2]', NOW(6) - INTERVAL 30 MINUTE),
		('bad-type', 'Type', 'secret', NULL, NULL, NOW(6) - INTERVAL 30 MINUTE)`)
	r := e.once(0)
	if n := len(e.emu.Groups()); n != 60 {
		t.Errorf("delivered %d groups, want the 60 valid ones", n)
	}
	if !strings.Contains(r.stdout, "5 failed (5 invalid, 0 rejected, 0 duplicate keys;") {
		t.Errorf("summary does not count the invalid rows:\n%s", r.stdout)
	}
	rows := e.rowErrors()
	if len(rows) != 5 {
		t.Fatalf("error store has %d rows, want 5: %+v", len(rows), rows)
	}
	want := map[string]string{"": "guid:", "long-name": "name:", "no-pass": "password:", "bad-meta": "metadata:", "bad-type": "type:"}
	for _, re := range rows {
		prefix, ok := want[re.GUID]
		if !ok || !strings.HasPrefix(re.Message, prefix) || re.Code != "INVALID_ROW" || re.Attempts != 1 || re.RowKey == "" {
			t.Errorf("unexpected row error %+v", re)
		}
	}
	st := e.status()
	if st.FailedRows != 5 || isNull(st.Checkpoint) {
		t.Errorf("status: failed %d, checkpoint %s; want 5 and a checkpoint past the bad rows", st.FailedRows, st.Checkpoint)
	}
	// Fixing a row without touching its timestamp is enough: failed rows are
	// re-read by key on every pass.
	e.exec(`UPDATE chat_groups SET guid = 'good-guid' WHERE guid = 'Bad Guid!'`)
	e.once(0)
	if _, ok := e.emu.Group("good-guid"); !ok {
		t.Error("a fixed row was not delivered by the next pass")
	}
	if rows := e.rowErrors(); len(rows) != 4 {
		t.Errorf("after the fix the error store has %d rows, want 4", len(rows))
	}
}

func TestTransientRejectionsRetriedOnTheNextPass(t *testing.T) {
	e := newEnv(t)
	e.addGroups(40)
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('flaky', 'Flaky', 'public', NOW(6) - INTERVAL 10 MINUTE)`)
	var mu sync.Mutex
	refusals := 0
	e.emu.SetFaults(cometchattest.Faults{RejectRow: func(guid string) (string, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if guid == "flaky" && refusals < 2 {
			refusals++
			return "ERR_EXCEPTION", "try again later", true
		}
		return "", "", false
	}})
	r := e.once(0)
	if !strings.Contains(r.stdout, "1 rejected") {
		t.Errorf("summary does not count the rejected row:\n%s", r.stdout)
	}
	rows := e.rowErrors()
	if len(rows) != 1 || rows[0].GUID != "flaky" || rows[0].Code != "ERR_EXCEPTION" || rows[0].Message != "try again later" {
		t.Fatalf("error store: %+v", rows)
	}
	e.once(0)
	if rows := e.rowErrors(); len(rows) != 1 || rows[0].Attempts != 2 {
		t.Fatalf("after a second refusal the error store should hold flaky with 2 attempts: %+v", rows)
	}
	r = e.once(0)
	if _, ok := e.emu.Group("flaky"); !ok {
		t.Fatal("the rejected row was never delivered")
	}
	if rows := e.rowErrors(); len(rows) != 0 {
		t.Errorf("a delivered row stayed in the error store: %+v", rows)
	}
	if len(e.emu.Groups()) != 41 {
		t.Errorf("CometChat has %d groups, want 41", len(e.emu.Groups()))
	}
}

func TestFailedRowsAreParked(t *testing.T) {
	e := newEnv(t)
	e.configure(func(o *cfgOpts) { o.parkAfter = 2 })
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('bad type', 'x', 'public', NOW(6) - INTERVAL 1 HOUR)`)
	e.once(0)
	e.once(0)
	rows := e.rowErrors()
	if len(rows) != 1 || !rows[0].Parked || rows[0].Attempts != 2 {
		t.Fatalf("after 2 attempts the row should be parked: %+v", rows)
	}
	r := e.once(0)
	if !strings.Contains(r.stdout, "read 0 rows") {
		t.Errorf("a parked row was retried although it did not change:\n%s", r.stdout)
	}
	if rows := e.rowErrors(); rows[0].Attempts != 2 {
		t.Errorf("parked row attempts moved to %d", rows[0].Attempts)
	}
	// A change brings it back: this time it is fixed.
	e.exec(`UPDATE chat_groups SET guid = 'good-type', updated_at = NOW(6) WHERE guid = 'bad type'`)
	e.once(0)
	if _, ok := e.emu.Group("good-type"); !ok {
		t.Error("a parked row that changed was not retried")
	}
	if st := e.status(); st.FailedRows != 0 || st.ParkedRows != 0 {
		t.Errorf("status after the fix: %+v", st)
	}
}

func TestResyncRefillsAnEmptiedApp(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	e.addGroups(75)
	e.once(0)
	before := e.emu.Groups()
	e.emu.Reset()
	e.once(0)
	if n := len(e.emu.Groups()); n != 0 {
		t.Fatalf("a plain pass sent %d unchanged groups", n)
	}
	r := e.once(0, "--resync")
	if !strings.Contains(r.stdout, "78 imported") {
		t.Errorf("resync summary:\n%s", r.stdout)
	}
	if after := e.emu.Groups(); !reflect.DeepEqual(before, after) {
		t.Errorf("after resync CometChat holds %d groups, want the %d it had", len(after), len(before))
	}
	// A resync over a full app updates every group instead.
	e.emu.ResetStats()
	e.once(0, "--resync")
	if st := e.emu.Stats(); st.Updates != 78 {
		t.Errorf("resync over existing groups made %d updates, want 78", st.Updates)
	}
}

// rescanWorld is a synced table, then two changes the cursor cannot see:
// an owner renamed in the joined users table (4 groups carry that name in
// their object, so 4 updates; the owner's profile itself is a CometChat
// user, which a group update does not change) and a bulk fix of 3 titles
// that left updated_at alone (assertAllDelivered checks the titles).
func rescanWorld(t *testing.T) *env {
	e := newEnv(t)
	e.addGroups(60)
	e.exec(`INSERT INTO users (uid, display_name) VALUES ('u1', 'Ann')`)
	e.exec(`UPDATE chat_groups SET owner_uid = 'u1' WHERE id <= 4`)
	e.once(0)
	e.exec(`UPDATE users SET display_name = 'Ann B' WHERE uid = 'u1'`)
	e.exec(`UPDATE chat_groups SET title = CONCAT(title, ' (fixed)'), updated_at = updated_at WHERE id BETWEEN 10 AND 12`)
	e.emu.ResetStats()
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Fatalf("a plain pass saw changes that did not touch the cursor (%d requests); the test shows nothing", n)
	}
	return e
}

func TestRescanSendsOnlyWhatChangedUnseen(t *testing.T) {
	e := rescanWorld(t)
	dry := e.once(0, "--rescan", "--dry-run")
	if lines := strings.Split(strings.TrimSpace(dry.stdout), "\n"); len(lines) != 7 || e.requests() != 0 || e.status().RescanInProgress {
		t.Errorf("a dry-run rescan printed %d objects and made %d requests (status %+v); want the 7 changed ones, no request, no change:\n%s",
			len(lines), e.requests(), e.status(), dry.stdout)
	}
	r := e.once(0, "--rescan")
	if !strings.Contains(r.stdout, "rescan pass complete") {
		t.Errorf("the summary does not say it was a rescan:\n%s", r.stdout)
	}
	if st := e.emu.Stats(); st.Updates != 7 || st.ImportRequests != 0 {
		t.Errorf("rescan: %d updates and %d import requests, want 7 updates (4 owner, 3 titles) and no import:\n%s",
			st.Updates, st.ImportRequests, r.stdout)
	}
	e.assertAllDelivered()
	if st := e.status(); st.RescanInProgress || st.ResyncInProgress {
		t.Errorf("status after a completed rescan: %+v", st)
	}
	e.emu.ResetStats()
	e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("the pass after a rescan made %d requests, want none", n)
	}
	if r := e.run("once", "--config", e.cfg, "--rescan", "--resync"); r.code != 2 || !strings.Contains(r.stderr, "exclude each other") {
		t.Errorf("--rescan with --resync: exit %d, %s; want 2 naming the flags", r.code, r.stderr)
	}
}

// A rescan that cannot start (the API is down before anything was read)
// leaves the state as it was: checkpoint kept, no full pass in progress.
func TestRescanThatCannotStartChangesNothing(t *testing.T) {
	e := rescanWorld(t)
	before := e.status().Checkpoint
	e.emu.SetFaults(cometchattest.Faults{Outage: true})
	e.once(1, "--rescan")
	if st := e.status(); st.RescanInProgress || string(st.Checkpoint) != string(before) {
		t.Errorf("after a rescan that could not start: %+v; want the checkpoint %s kept and no rescan in progress", st, before)
	}
}

// A rescan that fails partway is remembered: the next plain pass (a
// CronJob's next run) carries it on and completes it.
func TestInterruptedRescanIsCarriedOn(t *testing.T) {
	e := rescanWorld(t)
	// Writes fail once the pass is under way (the key check reads).
	e.emu.SetFaults(cometchattest.Faults{WriteOutage: true})
	e.once(1, "--rescan")
	if st := e.status(); !st.RescanInProgress {
		t.Fatalf("status after a failed rescan: %+v, want rescan_in_progress", st)
	}
	e.emu.SetFaults(cometchattest.Faults{})
	e.emu.ResetStats()
	e.once(0)
	if st := e.emu.Stats(); st.Updates != 7 {
		t.Errorf("the pass after a failed rescan made %d updates, want 7", st.Updates)
	}
	e.assertAllDelivered()
	if st := e.status(); st.RescanInProgress {
		t.Errorf("the rescan is still in progress after a pass completed it: %+v", st)
	}
}

func TestDryRunPrintsObjectsAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	r := e.once(0, "--dry-run")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("dry run printed %d lines, want 3 JSON objects:\n%s", len(lines), r.stdout)
	}
	for _, l := range lines {
		var g cometchat.Group
		if err := json.Unmarshal([]byte(l), &g); err != nil {
			t.Fatalf("not a JSON object: %s", l)
		}
		if w, ok := shapesWant[g.GUID]; !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("dry run object %+v, want %+v", g, w)
		}
	}
	if n := e.requests(); n != 0 {
		t.Errorf("dry run made %d requests", n)
	}
	if st := e.status(); !isNull(st.Checkpoint) || !isNull(st.LastPass) {
		t.Errorf("dry run changed the state: %+v", st)
	}
}

func TestWrongAPIKeyFailsAndKeepsTheCheckpoint(t *testing.T) {
	e := newEnv(t)
	e.addGroups(20)
	e.once(0)
	cp := e.status().Checkpoint
	e.exec(`UPDATE chat_groups SET title = 'changed', updated_at = NOW(6) WHERE id <= 5`)
	e.configure(func(o *cfgOpts) { o.apiKey = "sk-wrong-key-000" })
	r := e.once(1)
	for _, want := range []string{"cometchat.api_key", `"testapp"`, `"eu"`, "AUTH_ERR_APIKEY_NOT_FOUND"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the failure should mention %s:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, "sk-wrong-key-000") || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("the failure printed the key or a stack trace:\n%s", r.stderr)
	}
	if got := e.status().Checkpoint; string(got) != string(cp) {
		t.Errorf("checkpoint moved on an auth failure: %s -> %s", cp, got)
	}
	if st := e.status(); st.FailedRows != 0 {
		t.Errorf("an auth failure put %d rows in the error store", st.FailedRows)
	}
	e.configure(func(o *cfgOpts) { o.apiKey = testAPIKey })
	e.once(0)
	if g, _ := e.emu.Group(firstGUID(t, e)); g.Name != "changed" {
		t.Errorf("the rows changed during the outage were not delivered once the key was fixed: %+v", g)
	}
}

// A revoked key must fail the pass even when there is nothing to send: a
// CronJob on a quiet table would otherwise report success forever.
func TestWrongAPIKeyFailsAPassWithNothingToSend(t *testing.T) {
	e := newEnv(t)
	e.addGroups(5)
	e.once(0)
	e.configure(func(o *cfgOpts) { o.apiKey = "sk-revoked-key-111" })
	r := e.once(1)
	if !strings.Contains(r.stderr, "cometchat.api_key") || !strings.Contains(r.stderr, "AUTH_ERR_APIKEY_NOT_FOUND") {
		t.Errorf("a revoked key with nothing to send: the failure should name the key to check:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "sk-revoked-key-111") {
		t.Errorf("the failure printed the key:\n%s", r.stderr)
	}
	var last struct{ OK *bool }
	if raw := e.status().LastPass; json.Unmarshal(raw, &last) != nil || last.OK == nil || *last.OK {
		t.Errorf("the last pass is not recorded as failed: %s", raw)
	}
}

// CometChat's messages are sentences with a final period; the pass's own
// advice follows them without doubling it ("invalid.. Check").
func TestRefusedKeyMessageReadsAsSentences(t *testing.T) {
	e := newEnv(t)
	e.addGroups(3)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"AUTH_ERR_APIKEY_NOT_FOUND","message":"The API key provided is invalid."}}`)
	}))
	t.Cleanup(refuse.Close)
	e.http = refuse
	e.writeConfig()
	r := e.once(1)
	want := "cometsync: CometChat refused the credentials: cometchat get: HTTP 401 AUTH_ERR_APIKEY_NOT_FOUND: The API key provided is invalid. " +
		`Check cometchat.api_key (a REST API key with fullAccess scope), cometchat.app_id "testapp" and cometchat.region "eu"` + "\n"
	if !strings.HasSuffix(r.stderr, want) {
		t.Errorf("stderr:\n%s\nwant it to end with\n%s", r.stderr, want)
	}
	if strings.Contains(r.stderr+r.stdout, "..") {
		t.Errorf("a doubled period in the output:\n%s%s", r.stdout, r.stderr)
	}
}

func firstGUID(t *testing.T, e *env) string {
	var guid string
	if err := e.root.QueryRow("SELECT guid FROM chat_groups WHERE id = 1").Scan(&guid); err != nil {
		t.Fatal(err)
	}
	return guid
}

func TestStatusBeforeTheFirstPass(t *testing.T) {
	e := newEnv(t)
	r := e.run("status", "--config", e.cfg, "--json")
	if r.code != 0 {
		t.Fatalf("status before any pass: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"checkpoint": null`) || !strings.Contains(r.stdout, `"failed_rows": 0`) {
		t.Errorf("status --json before any pass:\n%s", r.stdout)
	}
}

func TestQueryOrMappingChangeIsReported(t *testing.T) {
	e := newEnv(t)
	e.addGroups(5)
	e.once(0)
	e.configure(func(o *cfgOpts) { o.query = strings.Replace(query, "g.icon_url AS icon,", "", 1) })
	r := e.once(0)
	if !strings.Contains(r.stdout, "--rescan") || !strings.Contains(r.stdout, "--resync") {
		t.Errorf("a changed query was not reported with a rescan and a resync suggestion:\n%s", r.stdout)
	}
	e.once(0, "--rescan")
	if r := e.once(0); strings.Contains(r.stdout, "--rescan") {
		t.Errorf("the change is still reported after a rescan:\n%s", r.stdout)
	}
}

// isNull reports whether a JSON value from status --json is null or absent.
func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
