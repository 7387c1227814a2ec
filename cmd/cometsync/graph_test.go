package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/syncer"
)

// graphSchema adds to GroupsSchema the users and memberships of a typical
// product: a users table with its own ids and timestamps, and a
// memberships table joined to its group.
const graphSchema = mariadbtest.UsersSchema + ";" + mariadbtest.MembersSchema

// graphStreams is the config of the three streams over graphSchema.
func graphStreams(via string) string {
	return fmt.Sprintf(`users:
  query: |
    SELECT u.id, u.updated_at, u.uid, u.display_name AS name, u.avatar_url AS avatar FROM app_users u
  cursor: {column: updated_at, tiebreaker: id, lag: 0s}
groups:
  query: |
    SELECT g.id, g.updated_at, g.guid, g.title AS name, g.kind AS type FROM chat_groups g
  cursor: {column: updated_at, tiebreaker: id, lag: 0s}
members:
  query: |
    SELECT m.id, m.updated_at, g.guid, m.user_uid AS uid, m.role AS scope, m.joined_at
    FROM memberships m JOIN chat_groups g ON g.id = m.group_id
  cursor: {column: updated_at, tiebreaker: id, lag: 0s}
  via: %s
`, via)
}

func newGraphEnv(t *testing.T, via string) *env {
	e := newEnv(t)
	for _, q := range strings.Split(graphSchema, ";") {
		e.exec(q)
	}
	e.configure(func(o *cfgOpts) { o.streams = graphStreams(via) })
	return e
}

func TestWholeGraphInOnePass(t *testing.T) {
	for _, via := range []string{"import", "rest"} {
		t.Run("via "+via, func(t *testing.T) {
			e := newGraphEnv(t, via)
			e.exec(`INSERT INTO app_users (uid, display_name, avatar_url, updated_at) VALUES
				('Alice', 'Alice A', 'https://example.com/a.png', NOW(6) - INTERVAL 3 HOUR),
				('bob', 'Bob B', NULL, NOW(6) - INTERVAL 3 HOUR),
				('carol', 'Carol C', NULL, NOW(6) - INTERVAL 3 HOUR)`)
			e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) VALUES
				(1, 'eng', 'Engineering', 'public', NOW(6) - INTERVAL 2 HOUR),
				(2, 'ops', 'Operations', 'private', NOW(6) - INTERVAL 2 HOUR)`)
			e.exec(`INSERT INTO memberships (group_id, user_uid, role, joined_at, updated_at) VALUES
				(1, 'alice', 'admin', '2024-01-02 03:04:05', NOW(6) - INTERVAL 1 HOUR),
				(1, 'bob', NULL, '2024-01-03 00:00:00', NOW(6) - INTERVAL 1 HOUR),
				(2, 'bob', 'moderator', NULL, NOW(6) - INTERVAL 1 HOUR),
				(2, 'carol', 'participant', NULL, NOW(6) - INTERVAL 1 HOUR),
				(2, 'dave', 'participant', NULL, NOW(6) - INTERVAL 1 HOUR)`)
			r := e.once(0)
			for _, want := range []string{"users: pass complete", "groups: pass complete", "members: pass complete"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("the summary lacks %q:\n%s", want, r.stdout)
				}
			}
			// Every object arrives whole, in one pass.
			if u, ok := e.emu.User("alice"); !ok || u.Name != "Alice A" || u.Avatar != "https://example.com/a.png" {
				t.Errorf("alice in CometChat = %+v (%v), want her name and avatar", u, ok)
			}
			if n := len(e.emu.Users()); n != 3 {
				t.Errorf("CometChat has %d users, want 3", n)
			}
			if n := len(e.emu.Groups()); n != 2 {
				t.Errorf("CometChat has %d groups, want 2", n)
			}
			wantScopes := map[string]string{"eng_member_alice": "admin", "eng_member_bob": "participant", "ops_member_bob": "moderator", "ops_member_carol": "participant"}
			got := e.emu.AllMembers()
			for id, scope := range wantScopes {
				if m, ok := got[id]; !ok || m.Scope != scope {
					t.Errorf("member %s = %+v (%v), want scope %s", id, m, ok, scope)
				}
			}
			if via == "import" {
				if m := got["eng_member_alice"]; m.JoinedAt != time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Unix() {
					t.Errorf("alice joined eng at %d, want the row's joined_at", m.JoinedAt)
				}
			}
			// The member of a user CometChat does not have is a row error.
			errs := e.rowErrors()
			if len(errs) != 1 || errs[0].Stream != "members" || errs[0].GUID != "ops_member_dave" || errs[0].Code != cometchat.CodeUIDNotFound {
				t.Fatalf("row errors = %+v, want ops_member_dave refused with %s", errs, cometchat.CodeUIDNotFound)
			}

			// A late user row: the next pass delivers the user, then clears
			// the membership, in that order.
			e.exec(`INSERT INTO app_users (uid, display_name, updated_at) VALUES ('dave', 'Dave D', NOW(6) - INTERVAL 1 SECOND)`)
			e.once(0)
			if _, ok := e.emu.Member("ops", "dave"); !ok {
				t.Error("dave's membership did not arrive once dave did")
			}
			if errs := e.rowErrors(); len(errs) != 0 {
				t.Errorf("row errors after the late user arrived: %+v", errs)
			}

			// A scope change arrives, and only it is sent.
			e.emu.ResetStats()
			e.exec(`UPDATE memberships SET role = 'admin', updated_at = NOW(6) - INTERVAL 1 SECOND WHERE user_uid = 'carol'`)
			e.once(0)
			if m, _ := e.emu.Member("ops", "carol"); m.Scope != "admin" {
				t.Errorf("carol's scope in ops = %q, want admin", m.Scope)
			}
			if st := e.emu.Stats(); st.ScopeChanges != 1 || e.requests() != 1 {
				t.Errorf("the scope change made %d scope changes and %d write requests, want 1 and 1: %v", st.ScopeChanges, e.requests(), st.Requests)
			}

			// Nothing changed: nothing is sent.
			e.emu.ResetStats()
			e.once(0)
			if n := e.requests(); n != 0 {
				t.Errorf("a pass with no changes made %d write requests: %v", n, e.emu.Stats().Requests)
			}

			st := e.status()
			if st.Streams["users"].Delivered != 4 || st.Streams["groups"].Delivered != 2 || st.Streams["members"].Delivered != 5 {
				t.Errorf("status delivered: %+v, want users 4, groups 2, members 5", st.Streams)
			}
			if st.Delivered != 11 || st.FailedRows != 0 {
				t.Errorf("status totals: delivered %d, failed %d; want 11 and 0", st.Delivered, st.FailedRows)
			}
		})
	}
}

func TestOnceRunsTheNamedStreamsOnly(t *testing.T) {
	e := newGraphEnv(t, "import")
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at) VALUES ('alice', 'Alice', NOW(6) - INTERVAL 1 HOUR)`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) VALUES (1, 'eng', 'Engineering', 'public', NOW(6) - INTERVAL 1 HOUR)`)
	e.once(0, "--stream", "users")
	if len(e.emu.Users()) != 1 || len(e.emu.Groups()) != 0 {
		t.Errorf("--stream users delivered %d users and %d groups, want 1 and 0", len(e.emu.Users()), len(e.emu.Groups()))
	}
	r := e.run("once", "--config", e.cfg, "--stream", "channels")
	if r.code != 2 || !strings.Contains(r.stderr, "--stream channels: not a configured stream (configured: users, groups, members)") {
		t.Errorf("an unknown stream: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = e.run("errors", "--config", e.cfg, "--stream", "members")
	if r.code != 0 || !strings.Contains(r.stdout, "no failed rows") {
		t.Errorf("errors --stream members: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestSIGKILLDuringTheMembersStreamThenEverythingArrives(t *testing.T) {
	e := newGraphEnv(t, "import")
	// 50 users, 60 groups, each user in each group: 3,000 memberships.
	e.exec(`INSERT INTO app_users (uid, display_name, updated_at)
		SELECT CONCAT('u', seq), CONCAT('User ', seq), NOW(6) - INTERVAL 3 HOUR FROM seq_1_to_50`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at)
		SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), 'public', NOW(6) - INTERVAL 2 HOUR FROM seq_1_to_60`)
	e.exec(`INSERT INTO memberships (group_id, user_uid, role, updated_at)
		SELECT g.seq, CONCAT('u', u.seq), ELT(1 + (g.seq + u.seq) % 3, 'admin', 'moderator', 'participant'),
			NOW(6) - INTERVAL 1 HOUR + INTERVAL (g.seq * 100 + u.seq) MICROSECOND
		FROM seq_1_to_60 g CROSS JOIN seq_1_to_50 u`)
	e.emu.SetFaults(cometchattest.Faults{Latency: 40 * time.Millisecond})
	c := e.start("once", "--config", e.cfg)
	eventually(t, 60*time.Second, func() string {
		if n := e.emu.Stats().ImportedMembers; n < 1000 {
			return fmt.Sprintf("%d memberships imported, waiting for 1000", n)
		}
		return ""
	})
	_ = c.cmd.Process.Kill()
	e.wait(c, 5*time.Second)
	if n := len(e.emu.AllMembers()); n >= 3000 {
		t.Fatalf("the process delivered all %d memberships before it was killed: the test did not kill it mid-stream", n)
	}
	e.emu.SetFaults(cometchattest.Faults{})
	e.emu.ResetStats()
	e.once(0)

	st := e.emu.Stats()
	// Users and groups had completed: none of them is sent again.
	if st.UserImportRequests != 0 || st.ImportRequests != 0 || st.UserUpdates != 0 || st.Updates != 0 {
		t.Errorf("after the kill, users and groups were sent again: %v", st.Requests)
	}
	// The memberships the killed process had sent but not recorded are
	// answered "already exists" and get a scope update: at most the batches
	// that can be unrecorded at any moment.
	resent := 0
	for k, n := range st.Requests {
		if strings.HasPrefix(k, "PUT member ") {
			resent += n
		}
	}
	if limit := syncer.MaxUnrecorded(4) * 50; resent > limit {
		t.Errorf("re-sent %d memberships after SIGKILL, more than could be unrecorded at any moment (%d)", resent, limit)
	}
	if n := len(e.emu.AllMembers()); n != 3000 {
		t.Errorf("CometChat holds %d memberships, want 3000", n)
	}
	for id, m := range e.emu.AllMembers() {
		var u, g int
		if _, err := fmt.Sscanf(id, "g%d_member_u%d", &g, &u); err != nil {
			t.Fatalf("unexpected member id %s", id)
		}
		if want := []string{"admin", "moderator", "participant"}[(g+u)%3]; m.Scope != want {
			t.Errorf("%s has scope %s, want %s", id, m.Scope, want)
		}
	}
	if errs := e.rowErrors(); len(errs) != 0 {
		t.Errorf("row errors after the rerun: %+v", errs[:min(len(errs), 5)])
	}
}

func TestErrorsOfAStreamNameItsKeys(t *testing.T) {
	e := newGraphEnv(t, "import")
	e.configure(func(o *cfgOpts) {
		o.streams = strings.Replace(graphStreams("import"), "SELECT m.id, m.updated_at,", "SELECT m.id,", 1)
	})
	r := e.once(2)
	if want := `members.cursor.column: "updated_at" is not a column of members.query`; !strings.Contains(r.stderr, want) {
		t.Errorf("the error does not name the members stream's keys (%s):\n%s", want, r.stderr)
	}
}

// The first backfill bulk loads the state, so the keys two rows share come
// from a list of every key read beforehand (syncer.findSharedKeys): a user
// and a membership held by two rows each (compared trimmed and lowercased,
// the membership's key of two columns, one from a JOIN) are sent once, from
// the row read first, and the other row is a DUPLICATE_KEY row error.
func TestRowsSharingAUserOrMembershipKeyAreNeverMergedInTheFirstBackfill(t *testing.T) {
	e := newGraphEnv(t, "import")
	e.exec(`INSERT INTO app_users (id, uid, display_name, updated_at) VALUES
		(1, 'alice', 'Alice First', NOW(6) - INTERVAL 4 HOUR),
		(2, 'bob', 'Bob B', NOW(6) - INTERVAL 4 HOUR),
		(3, ' ALICE ', 'Alice Second', NOW(6) - INTERVAL 3 HOUR)`)
	e.exec(`INSERT INTO chat_groups (id, guid, title, kind, updated_at) VALUES
		(1, 'eng', 'Engineering', 'public', NOW(6) - INTERVAL 2 HOUR),
		(2, 'ops', 'Operations', 'public', NOW(6) - INTERVAL 2 HOUR)`)
	e.exec(`INSERT INTO memberships (id, group_id, user_uid, role, updated_at) VALUES
		(1, 1, 'bob', 'admin', NOW(6) - INTERVAL 90 MINUTE),
		(2, 2, 'bob', 'participant', NOW(6) - INTERVAL 90 MINUTE),
		(3, 1, 'Bob', 'moderator', NOW(6) - INTERVAL 1 HOUR)`)
	e.once(0)
	if u, _ := e.emu.User("alice"); u.Name != "Alice First" {
		t.Errorf("alice in CometChat is named %q, want the first row's name only", u.Name)
	}
	if m, _ := e.emu.Member("eng", "bob"); m.Scope != "admin" {
		t.Errorf("bob's scope in eng = %q, want the first row's admin only", m.Scope)
	}
	if _, ok := e.emu.Member("ops", "bob"); !ok {
		t.Error("bob's membership of ops, a key no other row holds, did not arrive")
	}
	got := map[string]string{}
	for _, re := range e.rowErrors() {
		got[re.Stream+" "+re.GUID] = re.Code
	}
	want := map[string]string{"users alice": syncer.CodeDuplicateKey, "members eng_member_bob": syncer.CodeDuplicateKey}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("row errors = %v, want %v", got, want)
	}
}
