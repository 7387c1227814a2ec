package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemoRunsEndToEnd(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--dir", t.TempDir()}, &out, &errb); code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	s := out.String()
	for _, want := range []string{
		// The backfill: 240 rows, 4 invalid, one refused once by the emulator.
		"read 240 rows (0 retried from the error store): 235 imported, 0 updated, 0 unchanged, 5 failed (4 invalid, 1 rejected, 0 duplicate keys; 5 of them new in the error store)",
		"CometChat now has 235 groups (5 import requests of at most 50)",
		// The incremental pass: 5 failed rows retried (2 now succeed, one of
		// them also renamed), 4 more renamed, 10 touched, 3 new.
		"read 22 rows (5 retried from the error store): 5 imported, 4 updated, 10 unchanged, 3 failed (3 invalid, 0 rejected, 0 duplicate keys; 0 of them new in the error store)",
		"CometChat now has 240 groups",
		`team-0003 is now named "Team 3 (renamed)"`,
		// The rescan after a bulk fix of 3 titles that left updated_at
		// alone: every row read again, only the 3 sent.
		"rescan pass complete",
		"0 imported, 3 updated, 237 unchanged, 3 failed (3 invalid, 0 rejected, 0 duplicate keys; 0 of them new in the error store)",
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
