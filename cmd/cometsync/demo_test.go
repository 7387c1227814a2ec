package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// demo runs the demo command with args and returns what it printed.
func demo(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"demo"}, args...), &out, &errb); code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	return out.String()
}

func TestDemoRunsEndToEnd(t *testing.T) {
	s := demo(t, "--dir", t.TempDir())
	backfill, incremental, rescan, store := demoSteps(t, s)
	for _, c := range []struct {
		step, text string
		want       []string
	}{
		{"1. backfill", backfill, []string{
			// The whole graph in one pass, users first, each stream's figures.
			"users: pass complete",
			"read 40 rows (0 retried from the error store): 40 imported, 0 updated, 0 unchanged, 0 deleted, 0 failed",
			// 240 groups, 4 invalid, one refused once by the emulator.
			"groups: pass complete",
			"read 240 rows (0 retried from the error store): 235 imported, 0 updated, 0 unchanged, 0 deleted, 5 failed (4 invalid, 1 rejected, 0 duplicate keys; 5 of them new in the error store)",
			// 121 memberships, one of them of a user CometChat does not have.
			"members: pass complete",
			"read 121 rows (0 retried from the error store): 120 imported, 0 updated, 0 unchanged, 0 deleted, 1 failed (0 invalid, 1 rejected, 0 duplicate keys; 1 of them new in the error store)",
			"CometChat now has 40 users, 235 groups and 120 memberships (30 admins, 30 moderators, 60 participants)",
			"from 9 import requests of at most 50 (users 1, groups 5, members 3)",
			"members: row 121 (team-0011_member_user-41) is in the error store: ERR_UID_NOT_FOUND",
		}},
		{"3. incremental pass", incremental, []string{
			// A user renamed, the late user's row.
			"read 2 rows (0 retried from the error store): 1 imported, 1 updated, 0 unchanged, 0 deleted, 0 failed",
			// The groups' 5 failed rows retried (2 now succeed, one of them
			// also renamed), 4 more renamed, 10 touched, 3 new.
			"read 22 rows (5 retried from the error store): 5 imported, 4 updated, 10 unchanged, 0 deleted, 3 failed (3 invalid, 0 rejected, 0 duplicate keys; 0 of them new in the error store)",
			// The late user's membership retried and delivered, a scope changed.
			"read 2 rows (1 retried from the error store): 1 imported, 1 updated, 0 unchanged, 0 deleted, 0 failed (0 invalid, 0 rejected",
			"CometChat now has 41 users, 240 groups and 121 memberships",
			"this pass made 4 import requests (users 1, groups 2, members 1) and 6 updates (users 1, groups 4, member scopes 1)",
			`team-0003 is now named "Team 3 (renamed)"`,
			`user-33 is now named "User 33 (renamed)"`,
			"user-11's scope in team-0012: participant, now moderator",
			"user-41 arrived before its membership in this pass: it is a participant of team-0011 now, and the error store holds 0 members rows",
		}},
		{"4. rescan", rescan, []string{
			// A bulk fix of 3 titles that left updated_at alone: every row
			// of every stream read again, only the 3 sent.
			"groups: rescan pass complete",
			"0 imported, 3 updated, 237 unchanged, 0 deleted, 3 failed (3 invalid, 0 rejected, 0 duplicate keys; 0 of them new in the error store)",
			"read 41 rows (0 retried from the error store): 0 imported, 0 updated, 41 unchanged",
			"read 121 rows (0 retried from the error store): 0 imported, 0 updated, 121 unchanged",
			"this pass made 0 import requests (users 0, groups 0, members 0) and 3 updates (users 0, groups 3, member scopes 0)",
		}},
		{"5. error store", store, []string{
			"name: must be 1 to 100 characters",
			"password: is required for a password group",
			"metadata: must be a JSON object",
		}},
	} {
		for _, want := range c.want {
			if !strings.Contains(c.text, want) {
				t.Errorf("step %s lacks %q:\n%s", c.step, want, c.text)
			}
		}
	}
	// A pass runs users, then groups, then members.
	if u, g, m := strings.Index(backfill, "users: pass"), strings.Index(backfill, "groups: pass"), strings.Index(backfill, "members: pass"); u < 0 || u > g || g > m {
		t.Errorf("the backfill's streams are not in the order users, groups, members:\n%s", backfill)
	}
	// The error store holds the 3 invalid groups and nothing else.
	if n := strings.Count(store, "\ngroups "); n != 3 || strings.Contains(store, "\nmembers ") || strings.Contains(store, "\nusers ") {
		t.Errorf("the error store shows %d groups rows (want 3) or rows of other streams (want none):\n%s", n, store)
	}
}

// demoSteps cuts the demo's output into the steps a test checks: the
// backfill, the incremental pass, the rescan and the error store.
func demoSteps(t *testing.T, s string) (backfill, incremental, rescan, store string) {
	t.Helper()
	var cuts []int
	for _, mark := range []string{"\n1. ", "\n3. ", "\n4. ", "\n5. "} {
		i := strings.Index(s, mark)
		if i < 0 || len(cuts) > 0 && i < cuts[len(cuts)-1] {
			t.Fatalf("the demo's output lacks step %q in its place:\n%s", mark[1:], s)
		}
		cuts = append(cuts, i)
	}
	return s[cuts[0]:cuts[1]], s[cuts[1]:cuts[2]], s[cuts[2]:cuts[3]], s[cuts[3]:]
}

var demoDatabase = regexp.MustCompile(`sample database: (\S+) \(`)

// The paths the demo prints are in a temporary folder it removes, and it
// says so; with --dir they stay, and it says where.
func TestDemoSaysWhetherItsFilesStay(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s := demo(t)
	m := demoDatabase.FindStringSubmatch(s)
	if m == nil || !strings.HasPrefix(m[1], tmp) {
		t.Fatalf("no sample database in %s named:\n%s", tmp, s)
	}
	folder := filepath.Dir(m[1])
	for _, want := range []string{
		"These files are in a temporary folder that is removed when the demo exits; run 'cometsync demo --dir DIR' to keep them.",
		"Removed the temporary folder " + folder + " and the files above; run 'cometsync demo --dir DIR' to keep them.",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Errorf("the temporary folder %s is still there (%v)", folder, err)
	}

	dir := filepath.Join(t.TempDir(), "kept")
	s = demo(t, "--dir", dir)
	for _, want := range []string{
		"sample database: " + filepath.Join(dir, "chat.db") + " (",
		"These files, and the state beside them, stay in " + dir + " after the demo; the emulator stops with it.",
		"The sample database, config and state are in " + dir + ".",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo --dir output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "temporary") {
		t.Errorf("demo --dir speaks of a temporary folder:\n%s", s)
	}
	for _, name := range []string{"chat.db", "cometsync.yaml", "state.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("demo --dir did not keep %s: %v", name, err)
		}
	}
}
