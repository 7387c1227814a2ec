package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/syncer"
)

// channelTableByName is the shape of a real chat product's channels table: a
// name unique only per team, epoch-millisecond bigint timestamps, a raw
// enum type, a soft-delete column with its own index and none on the
// cursor.
const channelTableByName = `
CREATE TABLE channels (
	Id VARCHAR(26) PRIMARY KEY,
	TeamId VARCHAR(26) NOT NULL,
	Name VARCHAR(64) NOT NULL,
	DisplayName VARCHAR(64) NOT NULL,
	Type ENUM('O', 'P') NOT NULL,
	CreateAt BIGINT NOT NULL,
	UpdateAt BIGINT NOT NULL,
	DeleteAt BIGINT NOT NULL DEFAULT 0,
	UNIQUE KEY team_name (TeamId, Name),
	KEY idx_channels_delete_at (DeleteAt)
)`

// channelsByNameQuery maps channels by name: a guid that is unique per team only.
const channelsByNameQuery = `SELECT c.Id AS id, c.UpdateAt AS updated_at, c.Name AS guid, c.DisplayName AS name,
       CASE c.Type WHEN 'O' THEN 'public' ELSE 'private' END AS type
FROM channels c WHERE c.DeleteAt = 0`

// newChannelsEnv is an env whose source is the channels table.
func newChannelsEnv(t *testing.T) *env {
	e := newEnv(t)
	e.exec(channelTableByName)
	e.configure(func(o *cfgOpts) {
		o.query = channelsByNameQuery
		o.cursorExtra = "    integer_unit: milliseconds\n"
	})
	return e
}

// addChannel inserts a channel stamped ago before now.
func (e *env) addChannel(id, team, name, display, typ string, ago time.Duration) {
	e.t.Helper()
	ms := time.Now().Add(-ago).UnixMilli()
	e.exec(`INSERT INTO channels (Id, TeamId, Name, DisplayName, Type, CreateAt, UpdateAt) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, team, name, display, typ, ms, ms)
}

func TestTwoRowsMappingToOneGUIDAreNeverMerged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env)
	}{
		// The first backfill bulk loads the state: the owners come from the
		// database's own count of the guids.
		{"first backfill", func(e *env) {}},
		// Later passes find owners in the state and among the rows in
		// flight: one row a batch, four batches in flight, two rows a page.
		{"incremental, across pages and concurrent batches", func(e *env) {
			e.addChannel("seed", "t0", "seed", "Seed", "O", 3*time.Hour)
			e.once(0)
			e.configure(func(o *cfgOpts) { o.pageSize, o.batchSize = 2, 1 })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newChannelsEnv(t)
			tc.setup(e)
			// "town-square" exists in three teams, "off-topic" in two; the
			// rows of one name sit on different pages.
			for i, team := range []string{"t1", "t2", "t3"} {
				ago := time.Duration(60-i*10) * time.Minute
				e.addChannel("ts"+team, team, "town-square", "Town Square "+team, "O", ago)
				e.addChannel("ot"+team, team, "off-topic", "Off-Topic "+team, "P", ago-time.Minute)
				e.addChannel("own"+team, team, "only-"+team, "Only "+team, "O", ago-2*time.Minute)
			}
			e.exec(`DELETE FROM channels WHERE Id = 'ott3'`)
			r := e.once(0)
			if !strings.Contains(r.stdout, "3 duplicate keys; 3 of them new") {
				t.Errorf("the summary does not count 3 duplicate keys:\n%s", r.stdout)
			}
			// The first row of each name (in cursor order) owns it; the
			// others are never sent, so nothing is mixed.
			if g, _ := e.emu.Group("town-square"); g.Name != "Town Square t1" || g.Type != "public" {
				t.Errorf("town-square in CometChat = %+v, want exactly the t1 row", g)
			}
			if g, _ := e.emu.Group("off-topic"); g.Name != "Off-Topic t1" || g.Type != "private" {
				t.Errorf("off-topic in CometChat = %+v, want exactly the t1 row", g)
			}
			for _, team := range []string{"t1", "t2", "t3"} {
				if _, ok := e.emu.Group("only-" + team); !ok {
					t.Errorf("only-%s was not delivered", team)
				}
			}
			dups := map[string]string{}
			for _, re := range e.rowErrors() {
				if re.Code != syncer.CodeDuplicateKey {
					t.Errorf("unexpected row error %+v", re)
					continue
				}
				dups[re.RowKey] = re.Message
			}
			for key, owner := range map[string]string{"tst2": "tst1", "tst3": "tst1", "ott2": "ott1"} {
				msg, ok := dups[key]
				if !ok || !strings.Contains(msg, "row "+owner) || !strings.Contains(msg, "row "+key) {
					t.Errorf("row %s: error %q, want DUPLICATE_KEY naming %s and %s", key, msg, owner, key)
				}
			}
			if len(dups) != 3 {
				t.Errorf("%d duplicate rows in the error store, want 3: %v", len(dups), dups)
			}

			// A change to a duplicate row is still not sent, and a rescan
			// does not "update" the group on every pass.
			e.emu.ResetStats()
			e.exec(`UPDATE channels SET DisplayName = 'Town Square t2, renamed', UpdateAt = UpdateAt + 1 WHERE Id = 'tst2'`)
			e.once(0)
			e.once(0, "--rescan")
			if n := e.requests(); n != 0 {
				t.Errorf("passes over duplicate rows made %d write requests: %v", n, e.emu.Stats().Requests)
			}
			if g, _ := e.emu.Group("town-square"); g.Name != "Town Square t1" {
				t.Errorf("town-square after the duplicate changed = %q, want the owner's name", g.Name)
			}

			// With a key unique per row, every channel arrives and the row
			// errors clear.
			e.configure(func(o *cfgOpts) {
				o.query = strings.Replace(channelsByNameQuery, "c.Name AS guid", "CONCAT(c.TeamId, '-', c.Name) AS guid", 1)
			})
			e.once(0, "--rescan")
			for _, guid := range []string{"t2-town-square", "t3-town-square", "t2-off-topic", "t1-town-square"} {
				if _, ok := e.emu.Group(guid); !ok {
					t.Errorf("%s missing after the key was made unique", guid)
				}
			}
			if st := e.status(); st.FailedRows != 0 {
				t.Errorf("%d failed rows after the key was made unique, want 0", st.FailedRows)
			}
		})
	}
}

func TestGUIDsDifferingOnlyInCaseAreOneKey(t *testing.T) {
	e := newEnv(t)
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES
		('Team-A', 'Upper', 'public', NOW(6) - INTERVAL 2 HOUR),
		('team-a', 'Lower', 'public', NOW(6) - INTERVAL 1 HOUR)`)
	e.once(0)
	if g, _ := e.emu.Group("team-a"); g.Name != "Upper" {
		t.Errorf("team-a = %+v, want the first row only", g)
	}
	if errs := e.rowErrors(); len(errs) != 1 || errs[0].Code != syncer.CodeDuplicateKey {
		t.Errorf("row errors = %+v, want one DUPLICATE_KEY", errs)
	}
}

func TestMostlyInvalidPassFailsAsAMappingMistake(t *testing.T) {
	e := newChannelsEnv(t)
	// The raw enum selected as type: every row is invalid.
	e.configure(func(o *cfgOpts) {
		o.query = strings.Replace(channelsByNameQuery, "CASE c.Type WHEN 'O' THEN 'public' ELSE 'private' END AS type", "c.Type AS type", 1)
	})
	values := make([]string, 0, 150)
	ms := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 150 {
		typ := "O"
		if i%3 == 0 {
			typ = "P"
		}
		values = append(values, fmt.Sprintf("('c%03d', 'team', 'ch-%03d', 'Channel %d', '%s', %d, %d)", i, i, i, typ, ms, ms+int64(i)))
	}
	e.exec(`INSERT INTO channels (Id, TeamId, Name, DisplayName, Type, CreateAt, UpdateAt) VALUES ` + strings.Join(values, ","))
	r := e.once(1)
	for _, want := range []string{"150 of the 150 rows read by the cursor are invalid", "most of them for type", `"O"`, "source.max_invalid_percent"} {
		if !strings.Contains(r.stderr+r.stdout, want) {
			t.Errorf("the failed pass does not say %q:\nstdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
	// Recorded all the same, and the checkpoint moved past them.
	st := e.status()
	if st.FailedRows != 150 || isNull(st.Checkpoint) {
		t.Errorf("status: %d failed rows, checkpoint %s; want 150 and a checkpoint", st.FailedRows, st.Checkpoint)
	}
	// Their retries do not count: the next pass reads nothing new.
	e.once(0)

	// A relaxed setting lets such a pass complete.
	e2 := newChannelsEnv(t)
	e2.configure(func(o *cfgOpts) {
		o.query = e.opts.query
		o.sourceExtra = "  max_invalid_percent: 100\n"
	})
	e2.exec(`INSERT INTO channels (Id, TeamId, Name, DisplayName, Type, CreateAt, UpdateAt) VALUES ` + strings.Join(values, ","))
	e2.once(0)
}

func TestAFewInvalidRowsDoNotFailThePass(t *testing.T) {
	e := newChannelsEnv(t)
	e.configure(func(o *cfgOpts) {
		o.query = strings.Replace(channelsByNameQuery, "CASE c.Type WHEN 'O' THEN 'public' ELSE 'private' END AS type", "c.Type AS type", 1)
	})
	// 99 invalid rows of 99: below the minimum, bad data rather than a
	// mapping mistake.
	ms := time.Now().Add(-time.Hour).UnixMilli()
	values := make([]string, 0, 99)
	for i := range 99 {
		values = append(values, fmt.Sprintf("('c%03d', 'team', 'ch-%03d', 'Channel %d', 'O', %d, %d)", i, i, i, ms, ms+int64(i)))
	}
	e.exec(`INSERT INTO channels (Id, TeamId, Name, DisplayName, Type, CreateAt, UpdateAt) VALUES ` + strings.Join(values, ","))
	e.once(0)
}

func TestResyncStartsWithTheUpdateOfKnownGroups(t *testing.T) {
	e := newEnv(t)
	e.addGroups(40)
	e.once(0)
	e.emu.ResetStats()
	e.once(0, "--resync")
	if st := e.emu.Stats(); st.Updates != 40 || st.ImportRequests != 0 {
		t.Errorf("resync of 40 known groups: %d updates, %d import requests; want 40 updates and no import", st.Updates, st.ImportRequests)
	}
	// The state is a hint: an emptied app gets every group imported.
	e.emu.Reset()
	e.once(0, "--resync")
	if n := len(e.emu.Groups()); n != 40 {
		t.Errorf("resync into an emptied app delivered %d groups, want 40", n)
	}
}

func TestRowErrorsAreCountedOnceInTheMetrics(t *testing.T) {
	e := newEnv(t)
	e.addGroups(5)
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES
		('bad-1', 'x', 'secret', NOW(6) - INTERVAL 1 HOUR), ('bad-2', 'y', 'secret', NOW(6) - INTERVAL 1 HOUR)`)
	addr := freeAddr(t)
	e.configure(func(o *cfgOpts) { o.extra = fmt.Sprintf("schedule: \"@every 1s\"\nhttp:\n  listen: %q\n", addr) })
	stop := e.daemon()
	defer stop()
	// Three passes at least: the first records the two invalid rows, the
	// others retry them.
	eventually(t, 20*time.Second, func() string {
		_, m := get(t, "http://"+addr+"/metrics")
		if !strings.Contains(m, `cometsync_passes_total{result="success"} 3`) && !strings.Contains(m, `cometsync_passes_total{result="success"} 4`) {
			return "fewer than 3 passes yet"
		}
		return ""
	})
	_, m := get(t, "http://"+addr+"/metrics")
	if !strings.Contains(m, `cometsync_rows_total{outcome="invalid",stream="groups"} 2`+"\n") {
		t.Errorf("invalid rows counted more than once:\n%s", grepLines(m, "cometsync_row"))
	}
	if !strings.Contains(m, `cometsync_row_retries_total{outcome="failed",stream="groups"} `) || strings.Contains(m, `cometsync_row_retries_total{outcome="failed",stream="groups"} 0`+"\n") {
		t.Errorf("retries of the invalid rows are not counted:\n%s", grepLines(m, "cometsync_row"))
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestStateOfThePreviousReleaseIsUpgradedAndNothingIsResent(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	for _, f := range []string{"groups.db", "state.db"} {
		copyFile(t, filepath.Join("testdata", "state-v1", f), filepath.Join(dir, f))
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "state-v1", "cometsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("SOURCE", filepath.Join(dir, "groups.db"), "STATE", filepath.Join(dir, "state.db"),
		"BASEURL", e.http.URL, "demo-key", testAPIKey).Replace(string(raw))
	e.cfg = filepath.Join(dir, "cometsync.yaml")
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	before := e.status()
	r := e.once(0)
	if n := e.requests(); n != 0 {
		t.Errorf("the first pass after the upgrade made %d write requests, want none: %v", n, e.emu.Stats().Requests)
	}
	if !strings.Contains(r.stdout, "0 imported, 0 updated") {
		t.Errorf("the first pass after the upgrade sent something:\n%s", r.stdout)
	}
	after := e.status()
	if string(after.Checkpoint) != string(before.Checkpoint) || after.FailedRows != 3 {
		t.Errorf("after the upgrade: checkpoint %s (was %s), %d failed rows (want 3)", after.Checkpoint, before.Checkpoint, after.FailedRows)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPassThatCanReadNothingBeyondTheBoundFails(t *testing.T) {
	e := newEnv(t)
	// A DATETIME cursor written in a zone ahead of the database clock:
	// every row is "in the future" and no pass would ever read it.
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES
		('ahead-1', 'A', 'public', NOW(6) + INTERVAL 3 HOUR), ('ahead-2', 'B', 'public', NOW(6) + INTERVAL 3 HOUR)`)
	r := e.once(1)
	for _, want := range []string{"2 rows have a cursor after this pass's upper bound", "time_zone", "cometsync check"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("the pass does not say %q:\nstdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
	// A few rows ahead of many behind is a normal busy table: counted, not
	// a failure.
	e.addGroups(5)
	r = e.once(0)
	if strings.Contains(r.stdout, "WARNING") {
		t.Errorf("a pass with most rows readable warned:\n%s", r.stdout)
	}
}
