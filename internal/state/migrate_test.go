package state

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fixtureFormat1 is a state written by the release before format 2 (see its
// README): 240 groups delivered, three invalid rows, a checkpoint.
const fixtureFormat1 = "../../cmd/cometsync/testdata/state-v1/state.db"

func copyFixture(t *testing.T, from string) string {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	path := filepath.Join(t.TempDir(), "state.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenMigratesFormat1InPlace(t *testing.T) {
	ctx := context.Background()
	path := copyFixture(t, fixtureFormat1)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open a format 1 state: %v", err)
	}
	defer s.Close()
	var version int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != schemaVersion {
		t.Fatalf("user_version = %d (%v), want %d", version, err, schemaVersion)
	}
	cp, err := s.Stream("groups").Checkpoint(ctx)
	if err != nil || string(cp) != `{"cursor":{"kind":"text","value":"2026-12-02 07:13:33.886"},"key":{"kind":"int","value":"110"}}` {
		t.Errorf("checkpoint after the upgrade = %s (%v), want the one format 1 recorded", cp, err)
	}
	known, err := s.Stream("groups").Known(ctx, []string{"team-0001", "team-0240", "team-0100"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"team-0001", "team-0240"} {
		d, ok := known[g]
		if !ok || len(d.Hash) != 16 || d.RowKey != "" {
			t.Errorf("%s after the upgrade: %+v (known %v), want its 16-byte hash kept and no owner yet", g, d, ok)
		}
	}
	if _, ok := known["team-0100"]; ok {
		t.Error("team-0100 was never delivered (an invalid row) but the upgraded state knows it")
	}
	errs, err := s.Stream("groups").RowErrors(ctx)
	if err != nil || len(errs) != 3 {
		t.Errorf("row errors after the upgrade: %d (%v), want the 3 of format 1", len(errs), err)
	}
	// The owner is recorded from the next delivery on.
	if err := s.Stream("groups").Apply(ctx, Changes{Delivered: []Delivered{{Key: "team-0001", Hash: known["team-0001"].Hash, RowKey: "1"}}}); err != nil {
		t.Fatal(err)
	}
	if k, _ := s.Stream("groups").Known(ctx, []string{"team-0001"}); k["team-0001"].RowKey != "1" {
		t.Errorf("owner after a delivery = %q, want 1", k["team-0001"].RowKey)
	}
	s.Close()
	// Opening again (format 2 now) changes nothing.
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen the migrated state: %v", err)
	}
	defer s2.Close()
	if k, _ := s2.Stream("groups").Known(ctx, []string{"team-0001"}); k["team-0001"].RowKey != "1" {
		t.Errorf("owner after reopening = %q, want 1", k["team-0001"].RowKey)
	}
}

func TestReadOnlyOpenOfFormat1StateReads(t *testing.T) {
	// status and errors open read-only, without migrating: a daemon of the
	// older release may still be running.
	path := copyFixture(t, fixtureFormat1)
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a format 1 state: %v", err)
	}
	defer s.Close()
	total, _, err := s.Stream("groups").FailedRows(context.Background())
	if err != nil || total != 3 {
		t.Errorf("failed rows = %d (%v), want 3", total, err)
	}
}

func TestReadOnlyKnownOfFormat1State(t *testing.T) {
	// A dry run opens the state read-only and looks up what was delivered.
	path := copyFixture(t, fixtureFormat1)
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	known, err := s.Stream("groups").Known(context.Background(), []string{"team-0001"})
	if err != nil || len(known["team-0001"].Hash) != 16 {
		t.Errorf("Known on a read-only format 1 state = %+v (%v), want the delivered hash", known, err)
	}
}
