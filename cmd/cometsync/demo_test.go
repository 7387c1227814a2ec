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
	for _, want := range []string{
		// The backfill: 240 rows, 4 invalid, one refused once by the emulator.
		"read 240 rows (0 retried from the error store): 235 imported, 0 updated, 0 unchanged, 0 deleted, 5 failed (4 invalid, 1 rejected, 0 duplicate keys; 5 of them new in the error store)",
		"CometChat now has 235 groups (5 import requests of at most 50)",
		// The incremental pass: 5 failed rows retried (2 now succeed, one of
		// them also renamed), 4 more renamed, 10 touched, 3 new.
		"read 22 rows (5 retried from the error store): 5 imported, 4 updated, 10 unchanged, 0 deleted, 3 failed (3 invalid, 0 rejected, 0 duplicate keys; 0 of them new in the error store)",
		"CometChat now has 240 groups",
		`team-0003 is now named "Team 3 (renamed)"`,
		// The rescan after a bulk fix of 3 titles that left updated_at
		// alone: every row read again, only the 3 sent.
		"rescan pass complete",
		"0 imported, 3 updated, 237 unchanged, 0 deleted, 3 failed (3 invalid, 0 rejected, 0 duplicate keys; 0 of them new in the error store)",
		"this pass made 0 import and 3 update requests",
		"name: must be 1 to 100 characters",
		"password: is required for a password group",
		"metadata: must be a JSON object",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
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
		"sample database: " + filepath.Join(dir, "groups.db") + " (",
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
	for _, name := range []string{"groups.db", "cometsync.yaml", "state.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("demo --dir did not keep %s: %v", name, err)
		}
	}
}
