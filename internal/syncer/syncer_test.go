package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// memSource is an in-memory table read by keyset, standing in for SQL only
// in these tests of the pass's own ordering logic (the keyset SQL itself is
// tested against MariaDB in the source package and end to end in cmd).
type memSource struct {
	rows     []source.Row
	upper    int64 // the database clock; 1<<40 when 0
	upperErr error // the database is down
}

var columns = []string{"id", "updated_at", "guid", "name", "type"}

func newMemSource(n int) *memSource {
	s := &memSource{}
	for i := 1; i <= n; i++ {
		cur := source.Value{Kind: source.KindInt, Int: int64(1000 + i/7)} // ties across rows
		key := source.Value{Kind: source.KindInt, Int: int64(i)}
		s.rows = append(s.rows, source.Row{Cursor: cur, Key: key,
			Values: []any{int64(i), cur.Int, fmt.Sprintf("g-%04d", i), fmt.Sprintf("Group %d", i), "public"}})
	}
	return s
}

func less(a, b source.Row) bool {
	return a.Cursor.Int < b.Cursor.Int || (a.Cursor.Int == b.Cursor.Int && a.Key.Int < b.Key.Int)
}

func (s *memSource) UpperBound(context.Context) (source.Value, error) {
	if s.upperErr != nil {
		return source.Value{}, s.upperErr
	}
	if s.upper != 0 {
		return source.Value{Kind: source.KindInt, Int: s.upper}, nil
	}
	return source.Value{Kind: source.KindInt, Int: 1 << 40}, nil
}

func (s *memSource) ReadPage(_ context.Context, after *source.Position, upper source.Value, limit int) ([]source.Row, error) {
	var out []source.Row
	for _, r := range s.rows {
		if after != nil && !less(source.Row{Cursor: after.Cursor, Key: after.Key}, r) {
			continue
		}
		if r.Cursor.Int > upper.Int {
			continue
		}
		out = append(out, r)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (s *memSource) ReadKeys(_ context.Context, keys []source.Value) ([]source.Row, error) {
	var out []source.Row
	for _, k := range keys {
		for _, r := range s.rows {
			if r.Key.Int == k.Int {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// slowSink acknowledges batches after a delay that depends on the batch,
// so that they finish out of order, and can fail one batch as a whole.
type slowSink struct {
	mu    sync.Mutex
	acked map[string]bool
	delay func(first string) time.Duration
	fail  string // a guid whose batch fails after retries
	ping  error  // what Ping answers
}

func (s *slowSink) Import(ctx context.Context, groups []cometchat.Group) (map[string]cometchat.RowResult, error) {
	time.Sleep(s.delay(groups[0].GUID))
	out := map[string]cometchat.RowResult{}
	for _, g := range groups {
		if g.GUID == s.fail {
			return nil, &cometchat.APIError{Endpoint: "import", Status: 503, Code: "ERR_EXCEPTION", Attempts: 5}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range groups {
		s.acked[g.GUID] = true
		out[g.GUID] = cometchat.RowResult{OK: true}
	}
	return out, nil
}

func (s *slowSink) Update(context.Context, string, cometchat.Update) error { return nil }

func (s *slowSink) Ping(context.Context) error { return s.ping }

// groupEntity is the groups entity over slowSink (the real one, in package
// entities, imports this package).
type groupEntity struct {
	m    *mapping.Mapper
	sink *slowSink
}

func (e groupEntity) Map(values []any) (Object, error) {
	g, err := e.m.Map(values)
	return Object{Key: g.GUID, Hash: mapping.Hash(g), Present: mapping.Present(g), Value: g}, err
}

func (e groupEntity) KeyColumns() []string          { return []string{"guid"} }
func (e groupEntity) JoinKey(parts []string) string { return parts[0] }

func (e groupEntity) Import(ctx context.Context, objs []Object) (map[string]cometchat.RowResult, error) {
	groups := make([]cometchat.Group, len(objs))
	for i, o := range objs {
		groups[i] = o.Value.(cometchat.Group)
	}
	return e.sink.Import(ctx, groups)
}

func (e groupEntity) Update(context.Context, Object, *state.Delivered) error { return nil }

func (e groupEntity) Delete(context.Context, string) (bool, error) { return false, nil }

// The cursor lag says how far behind the database clock the delivered data
// is. A failed pass must neither show 0 ("in sync") nor the age of the last
// row on a quiet table; with the database down it is unknown (-1), which
// leaves the gauge alone.
func TestCursorLagOfPassesThatFail(t *testing.T) {
	src := newMemSource(100) // cursors 1000..1014, in seconds
	src.upper = 2000
	sink := &slowSink{acked: map[string]bool{}, delay: func(string) time.Duration { return 0 }}
	s, _ := newPass(t, src, sink)
	s.cfg.IntegerUnit, s.cfg.Lag = source.UnitSeconds, 5*time.Second
	rep, err := s.Run(context.Background(), Options{})
	if err != nil || rep.CursorLag != 5*time.Second {
		t.Fatalf("a complete pass: lag %v, %v; want the configured 5s", rep.CursorLag, err)
	}
	// Ten minutes later the API refuses the key: nothing changed since
	// the last complete pass, which read up to 2000.
	src.upper = 2600
	sink.ping = &cometchat.APIError{Endpoint: "get", Status: 401, Code: "AUTH_ERR_APIKEY_NOT_FOUND"}
	rep, err = s.Run(context.Background(), Options{})
	if err == nil || rep.CursorLag != 605*time.Second {
		t.Errorf("a failed pass on a quiet table: lag %v (%v); want 605s (10 minutes since the last complete pass, plus lag), not the age of the last row", rep.CursorLag, err)
	}
	src.upperErr = errors.New("connection refused")
	rep, err = s.Run(context.Background(), Options{})
	if err == nil || rep.CursorLag != -1 {
		t.Errorf("the database down: lag %v (%v); want -1, unknown", rep.CursorLag, err)
	}
}

// checkingStore fails the test if a checkpoint is ever written past a row
// that the sink has not acknowledged.
type checkingStore struct {
	*state.Stream
	t    *testing.T
	src  *memSource
	sink *slowSink
	cps  []source.Position
}

func (c *checkingStore) Apply(ctx context.Context, ch state.Changes) error {
	if ch.Checkpoint != nil {
		var cp source.Position
		if err := json.Unmarshal(ch.Checkpoint, &cp); err != nil {
			c.t.Fatal(err)
		}
		c.sink.mu.Lock()
		for _, r := range c.src.rows {
			if !less(source.Row{Cursor: cp.Cursor, Key: cp.Key}, r) && !c.sink.acked[r.Values[2].(string)] {
				c.t.Errorf("checkpoint %v written before row %v was acknowledged", cp.Key, r.Key)
			}
		}
		c.sink.mu.Unlock()
		c.cps = append(c.cps, cp)
	}
	return c.Stream.Apply(ctx, ch)
}

func newPass(t *testing.T, src *memSource, sink *slowSink) (*Syncer, *checkingStore) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := mapping.New(columns, "updated_at", "id", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	cs := &checkingStore{Stream: st.Stream("groups"), t: t, src: src, sink: sink}
	return New(src, groupEntity{m: m, sink: sink}, sink, cs, Config{PageSize: 70, BatchSize: 50, Concurrency: 4}, zaptest.NewLogger(t), nil), cs
}

func TestCheckpointFollowsTheAcknowledgedPrefix(t *testing.T) {
	src := newMemSource(1000)
	// Every fourth batch is slow: later batches finish first.
	sink := &slowSink{acked: map[string]bool{}, delay: func(first string) time.Duration {
		var n int
		fmt.Sscanf(first, "g-%d", &n)
		if (n/50)%4 == 0 {
			return 60 * time.Millisecond
		}
		return time.Millisecond
	}}
	s, cs := newPass(t, src, sink)
	rep, err := s.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 1000 || len(sink.acked) != 1000 {
		t.Fatalf("imported %d, acknowledged %d", rep.Imported, len(sink.acked))
	}
	if !sort.SliceIsSorted(cs.cps, func(i, j int) bool {
		return less(source.Row{Cursor: cs.cps[i].Cursor, Key: cs.cps[i].Key}, source.Row{Cursor: cs.cps[j].Cursor, Key: cs.cps[j].Key})
	}) {
		t.Error("the checkpoint went backwards")
	}
	last := cs.cps[len(cs.cps)-1]
	if last.Key.Int != 1000 {
		t.Errorf("final checkpoint at key %d, want 1000", last.Key.Int)
	}
}

func TestFailedBatchHoldsTheCheckpointButKeepsLaterWork(t *testing.T) {
	src := newMemSource(500)
	sink := &slowSink{acked: map[string]bool{}, fail: "g-0120", delay: func(string) time.Duration { return 5 * time.Millisecond }}
	s, cs := newPass(t, src, sink)
	_, err := s.Run(context.Background(), Options{})
	var pe *PassError
	if !errors.As(err, &pe) || pe.Stage != StageAPI {
		t.Fatalf("Run: %v, want a PassError in the cometchat stage", err)
	}
	cp, err := cs.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pos source.Position
	if err := json.Unmarshal(cp, &pos); err != nil {
		t.Fatal(err)
	}
	if pos.Key.Int != 100 {
		t.Errorf("checkpoint at key %d after the batch 101..150 failed; want 100", pos.Key.Int)
	}
	if total, _, _ := cs.FailedRows(context.Background()); total != 0 {
		t.Errorf("a failed request put %d rows in the error store; they must stay before the checkpoint instead", total)
	}
	// The next pass re-reads from the checkpoint; batches acknowledged after
	// the failed one are recognised as unchanged, not sent again.
	sink.fail = ""
	before := len(sink.acked)
	rep, err := s.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 500-before {
		t.Errorf("second pass imported %d, want the %d never acknowledged", rep.Imported, 500-before)
	}
	if rep.Unchanged != before-100 {
		t.Errorf("second pass found %d unchanged, want %d (acknowledged after the failed batch)", rep.Unchanged, before-100)
	}
}
