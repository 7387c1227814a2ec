package state

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMissingStateIsAFirstRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrNoState) {
		t.Errorf("read-only open of a missing state: %v, want ErrNoState", err)
	}
	s := open(t, path, Options{})
	cp, err := s.Stream("groups").Checkpoint(context.Background())
	if err != nil || cp != nil {
		t.Errorf("first run: checkpoint %s, %v; want none", cp, err)
	}
}

func TestSecondOpenIsRefusedUntilTheFirstCloses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	var le *LockedError
	if !errors.As(err, &le) || le.Path != path {
		t.Fatalf("second open: %v, want a LockedError", err)
	}
	// Readers do not need the lock.
	ro := open(t, path, Options{ReadOnly: true})
	if _, err := ro.Stream("groups").Checkpoint(context.Background()); err != nil {
		t.Errorf("read-only open beside the writer: %v", err)
	}
	first.Close()
	open(t, path, Options{})
}

func TestLockIsReleasedWhenTheHolderDies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	// flock(1) from util-linux holds the lock in another process; killing
	// it must free the state, as the kernel does for a crashed cometsync.
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatalf("flock(1) is needed for this test: %v", err)
	}
	cmd := exec.Command("flock", "--exclusive", "--no-fork", path+".lock", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := Open(path, Options{})
		if errors.As(err, new(*LockedError)) {
			break
		}
		if err == nil {
			s.Close() // flock(1) has not taken the lock yet
		}
		if time.Now().After(deadline) {
			t.Fatalf("open while another process holds the lock: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	open(t, path, Options{})
}

func TestApplyCountsAttemptsAndParks(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "state.db"), Options{ParkAfter: 3})
	fail := func(hash string) {
		t.Helper()
		if err := s.Stream("groups").Apply(ctx, Changes{Failed: []Failure{{RowKey: "7", KeyJSON: json.RawMessage(`{"kind":"int","value":"7"}`),
			GUID: "g7", Code: "ERR_X", Message: "no", RowHash: hash}}}); err != nil {
			t.Fatal(err)
		}
	}
	get := func() RowError {
		t.Helper()
		rows, err := s.Stream("groups").RowErrors(ctx)
		if err != nil || len(rows) != 1 {
			t.Fatalf("row errors: %v %v", rows, err)
		}
		return rows[0]
	}
	fail("a")
	fail("a")
	if e := get(); e.Attempts != 2 || e.Parked {
		t.Errorf("after 2 failures: %+v", e)
	}
	if keys, _ := s.Stream("groups").RetryKeys(ctx); len(keys) != 1 {
		t.Errorf("retry keys: %s", keys)
	}
	fail("a")
	if e := get(); e.Attempts != 3 || !e.Parked {
		t.Errorf("after 3 failures with park_after 3: %+v", e)
	}
	if keys, _ := s.Stream("groups").RetryKeys(ctx); len(keys) != 0 {
		t.Errorf("a parked row is still retried: %s", keys)
	}
	if total, parked, _ := s.Stream("groups").FailedRows(ctx); total != 1 || parked != 1 {
		t.Errorf("failed rows %d, parked %d", total, parked)
	}
	fail("b") // the row changed: a fresh start
	if e := get(); e.Attempts != 1 || e.Parked {
		t.Errorf("after the row changed: %+v", e)
	}
	if err := s.Stream("groups").Apply(ctx, Changes{Cleared: []string{"7"}, Delivered: []Delivered{{Key: "g7", Hash: "h", Present: 5}},
		Checkpoint: json.RawMessage(`{"at":1}`)}); err != nil {
		t.Fatal(err)
	}
	if rows, _ := s.Stream("groups").RowErrors(ctx); len(rows) != 0 {
		t.Errorf("cleared row still listed: %+v", rows)
	}
	known, err := s.Stream("groups").Known(ctx, []string{"g7", "g8"})
	if err != nil || len(known) != 1 || known["g7"].Hash != "h" || known["g7"].Present != 5 {
		t.Errorf("known: %+v %v", known, err)
	}
	if cp, _ := s.Stream("groups").Checkpoint(ctx); string(cp) != `{"at":1}` {
		t.Errorf("checkpoint %s", cp)
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stream("groups").Apply(ctx, Changes{Checkpoint: json.RawMessage(`{"k":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stream("groups").StartFullPass(ctx, FullRescan); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, Options{})
	if cp, _ := s.Stream("groups").Checkpoint(ctx); cp != nil {
		t.Errorf("a full pass keeps the old checkpoint: %s", cp)
	}
	if mode, _ := s.Stream("groups").FullPass(ctx); mode != FullRescan {
		t.Errorf("an interrupted rescan is remembered as %q on reopen", mode)
	}
	if err := s.Stream("groups").StartFullPass(ctx, "everything"); err == nil {
		t.Error("an unknown full pass was accepted")
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

func TestStateOfANewerFormatIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path, Options{})
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, opts := range []Options{{}, {ReadOnly: true}} {
		_, err := Open(path, opts)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "newer cometsync") {
			t.Errorf("open (read-only %v) of a state in format 99: %v, want a refusal naming the file", opts.ReadOnly, err)
		}
	}
}

// Hashes are raw bytes: any byte, NUL included, must come back as stored,
// or every group would look changed on the next pass.
func TestKnownReturnsRawHashesAsStored(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"), Options{})
	ctx := context.Background()
	raw := "\x00\xff\x10abc\x00\x80\xfe\x01\x02\x03\x04\x05\x06\x07"
	if err := s.Stream("groups").Apply(ctx, Changes{Delivered: []Delivered{{Key: "g1", Hash: raw, Present: 3}}}); err != nil {
		t.Fatal(err)
	}
	known, err := s.Stream("groups").Known(ctx, []string{"g1", "g2"})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := known["g1"]; !ok || d.Hash != raw || d.Present != 3 || len(known) != 1 {
		t.Errorf("Known = %+v, want g1 with hash %q and present 3 only", known, raw)
	}
}

func deliveries(hash string, guids ...string) Changes {
	var c Changes
	for _, g := range guids {
		c.Delivered = append(c.Delivered, Delivered{Key: g, Hash: hash, Present: 1})
	}
	return c
}

func hasGUIDIndex(t *testing.T, s *Store) bool {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'groups_delivered_key'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// A first backfill appends and indexes once at the end. What the next pass
// sees must be exactly what row-by-row upserts would have left: the latest
// delivery of each guid, found by Known.
func TestBulkLoadLeavesWhatUpsertsWould(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"), Options{})
	ctx := context.Background()
	on, err := s.Stream("groups").BeginBulkLoad(ctx)
	if err != nil || !on {
		t.Fatalf("BeginBulkLoad on an empty state: %v, %v; want bulk mode on", on, err)
	}
	if hasGUIDIndex(t, s) {
		t.Error("the guid index is still there during a bulk load")
	}
	for _, c := range []Changes{deliveries("old", "g1", "g2"), deliveries("new", "g2", "g3")} {
		if err := s.Stream("groups").Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if k, err := s.Stream("groups").Known(ctx, []string{"g1", "g2"}); err != nil || len(k) != 0 {
		t.Errorf("Known during a bulk load: %v, %v; want nothing (the table was empty when it began)", k, err)
	}
	if err := s.Stream("groups").EndBulkLoad(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := s.Stream("groups").Known(ctx, []string{"g1", "g2", "g3", "g4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != 3 || k["g1"].Hash != "old" || k["g2"].Hash != "new" || k["g3"].Hash != "new" {
		t.Errorf("after the bulk load Known = %+v, want g1 old, g2 new (its latest delivery), g3 new", k)
	}
	// Back to upserts: a guid delivered again replaces its row.
	if err := s.Stream("groups").Apply(ctx, deliveries("newer", "g1")); err != nil {
		t.Fatal(err)
	}
	if k, _ := s.Stream("groups").Known(ctx, []string{"g1"}); k["g1"].Hash != "newer" {
		t.Errorf("upsert after the bulk load: %+v", k)
	}
	var rows int
	if err := s.db.QueryRow(`SELECT count(*) FROM groups_delivered`).Scan(&rows); err != nil || rows != 3 {
		t.Errorf("delivered holds %d rows (%v), want 3: one per guid", rows, err)
	}
	// A state that has deliveries never goes into bulk mode.
	if on, err := s.Stream("groups").BeginBulkLoad(ctx); err != nil || on {
		t.Errorf("BeginBulkLoad with deliveries recorded: %v, %v; want off", on, err)
	}
}

// A process that dies during a bulk load leaves no index; the next Open
// builds it, so nothing delivered is forgotten.
func TestOpenIndexesAfterABulkLoadThatDied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if on, err := s.Stream("groups").BeginBulkLoad(ctx); err != nil || !on {
		t.Fatalf("BeginBulkLoad: %v, %v", on, err)
	}
	if err := s.Stream("groups").Apply(ctx, deliveries("a", "g1", "g2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Stream("groups").Apply(ctx, deliveries("b", "g2")); err != nil {
		t.Fatal(err)
	}
	// A reader beside the loading writer answers without the index.
	ro := open(t, path, Options{ReadOnly: true})
	if k, err := ro.Stream("groups").Known(ctx, []string{"g1"}); err != nil || len(k) != 0 {
		t.Errorf("read-only Known during a bulk load: %v, %v; want nothing, no error", k, err)
	}
	s.Close() // no EndBulkLoad: the process died
	s = open(t, path, Options{})
	if !hasGUIDIndex(t, s) {
		t.Fatal("Open did not build the guid index again")
	}
	k, err := s.Stream("groups").Known(ctx, []string{"g1", "g2"})
	if err != nil || len(k) != 2 || k["g1"].Hash != "a" || k["g2"].Hash != "b" {
		t.Errorf("Known after reopening: %+v, %v; want g1 a, g2 b", k, err)
	}
}
