package benchmark

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// The table sizes of the requirements.
const (
	rows100k = 100_000
	rows1M   = 1_000_000
	changed  = 100 // rows an incremental pass finds changed
)

// BenchmarkBackfill100k times `cometsync once` from an empty state over
// 100,000 rows: throughput end to end, peak RSS (goal: under 64 MiB), and
// the ratio to a bare read of the same pages.
func BenchmarkBackfill100k(b *testing.B) { benchBackfill(b, rows100k) }

// BenchmarkBackfill1M is BenchmarkBackfill100k over 1,000,000 rows: its
// peak RSS should be no higher (memory stays flat as the table grows).
func BenchmarkBackfill1M(b *testing.B) { benchBackfill(b, rows1M) }

func benchBackfill(b *testing.B, n int) { benchBackfillOf(b, tableOf(b, n)) }

// benchBackfillOf is a backfill benchmark over t (of MariaDB or PostgreSQL).
func benchBackfillOf(b *testing.B, t *table) {
	n := t.rows
	binary(b)
	var runs []run
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w, seeding := backfillWorld(b, t)
		b.StartTimer()
		r := w.once(b, n)
		b.StopTimer()
		if got := w.emu.Stats().ImportedRows; got != n {
			b.Fatalf("the emulator holds %d new groups, want %d", got, n)
		}
		if seeding {
			setSeed(w)
		}
		runs = append(runs, r)
	}
	report(b, n, runs)

	// The same keyset pages, read and dropped: the ceiling of a pass.
	read, took := bareRead(b, t)
	if read != n {
		b.Fatalf("the bare read read %d rows, want %d", read, n)
	}
	var wall time.Duration
	for _, r := range runs {
		wall += r.wall
	}
	endToEnd := float64(n*len(runs)) / wall.Seconds()
	bare := float64(read) / took.Seconds()
	b.ReportMetric(bare, "bare_read_rows/s")
	b.ReportMetric(endToEnd/bare, "ratio_to_bare_read")
}

// seeds are the state and app of a completed 1M backfill by driver, which
// the incremental benchmark starts from. The first 1M backfill of a run
// leaves its own; the incremental benchmark makes one when it runs alone.
var seeds = map[string]*world{}

// backfillWorld returns an empty app and state for a backfill of t; for the
// first 1M backfill of the run it lives as long as the run, to become the
// seed.
func backfillWorld(b *testing.B, t *table) (w *world, seeding bool) {
	if t.rows == rows1M && seeds[t.driver] == nil {
		dir, err := os.MkdirTemp(scratch, "seed-")
		if err != nil {
			b.Fatal(err)
		}
		return newWorld(b, t, dir, true), true
	}
	return newWorld(b, t, b.TempDir(), false), false
}

func setSeed(w *world) { seeds[w.table.driver] = w }

// seeded returns the 1M app and state after a full backfill.
func seeded(b *testing.B) *world { return seededOf(b, func() *table { return tableOf(b, rows1M) }) }

// seededOf is seeded for the 1M table that table1M returns.
func seededOf(b *testing.B, table1M func() *table) *world {
	b.Helper()
	t := table1M()
	if seeds[t.driver] == nil {
		w, _ := backfillWorld(b, t)
		start := time.Now()
		w.once(b, rows1M)
		b.Logf("seeded the 1M state and app in %s", time.Since(start).Round(time.Millisecond))
		setSeed(w)
	}
	return seeds[t.driver]
}

// BenchmarkIncremental100Of1M times the whole `cometsync once` process when
// 100 rows of a 1,000,000-row table changed since the last pass (goal:
// under 0.5 s). Each iteration renames 100 random groups first.
func BenchmarkIncremental100Of1M(b *testing.B) {
	w := seeded(b)
	binary(b)
	rng := rand.New(rand.NewPCG(1, 2))
	var runs []run
	b.ResetTimer()
	for i := range b.N {
		runs = append(runs, renameAndRun(b, w, rng, fmt.Sprint("Renamed ", i), "NOW(6)", changed))
	}
	report(b, changed, runs)
}

// BenchmarkRescan1M times `cometsync once --rescan` over the 1,000,000-row
// table after a bulk fix renamed 100 random groups without touching
// updated_at: every row is read and hashed, and only the 100 are sent.
func BenchmarkRescan1M(b *testing.B) {
	w := seeded(b)
	binary(b)
	rng := rand.New(rand.NewPCG(5, 6))
	var runs []run
	b.ResetTimer()
	for i := range b.N {
		runs = append(runs, renameAndRun(b, w, rng, fmt.Sprint("Fixed ", i), "updated_at", rows1M, "--rescan"))
	}
	report(b, rows1M, runs)
}

// renameAndRun renames `changed` random groups of the seeded table (their
// titles start with prefix, and updated_at is set to updatedAt: NOW(6) for
// a change the cursor sees, updated_at for one it does not), then times
// `cometsync once` with flags, which must read `read` rows and update
// exactly the renamed groups. The timer runs only around the process (the
// figures come from the run, see report).
func renameAndRun(b *testing.B, w *world, rng *rand.Rand, prefix, updatedAt string, read int, flags ...string) run {
	b.Helper()
	b.StopTimer()
	ids := pick(rng, rows1M)
	first, _, _ := strings.Cut(ids, ",")
	tag := fmt.Sprint(time.Now().UnixNano())
	if _, err := w.table.root.Exec(`UPDATE chat_groups SET title = CONCAT(`+w.table.ph(1)+`, ' ', id, ' ', `+w.table.ph(2)+`), updated_at = `+updatedAt+`
		WHERE id IN (`+ids+`)`, prefix, tag); err != nil {
		b.Fatal(err)
	}
	before := w.emu.Stats().Updates
	b.StartTimer()
	r := w.onceWith(b, read, changed, flags...)
	b.StopTimer()
	if got := w.emu.Stats().Updates - before; got != changed {
		b.Fatalf("the emulator took %d updates, want %d", got, changed)
	}
	if g, _ := w.emu.Group("grp-" + first); g.Name != prefix+" "+first+" "+tag {
		b.Fatalf("group grp-%s is named %q after the pass", first, g.Name)
	}
	return r
}

// pick is `changed` distinct random ids of 1..n, comma-separated.
func pick(rng *rand.Rand, n int) string {
	ids := make([]string, 0, changed)
	picked := map[int]bool{}
	for len(ids) < changed {
		id := 1 + rng.IntN(n)
		if !picked[id] {
			picked[id] = true
			ids = append(ids, fmt.Sprint(id))
		}
	}
	return strings.Join(ids, ",")
}

// BenchmarkBareRead reads the whole table with source.Source.ReadPage in
// 1,000-row keyset pages, in this process, and drops the rows: the same
// query a pass runs, with no mapping, state or sending.
func BenchmarkBareRead(b *testing.B) {
	for _, n := range []int{rows100k, rows1M} {
		b.Run(sizeName(n), func(b *testing.B) {
			t := tableOf(b, n)
			var took time.Duration
			b.ResetTimer()
			for range b.N {
				read, d := bareRead(b, t)
				if read != n {
					b.Fatalf("read %d rows, want %d", read, n)
				}
				took += d
			}
			b.ReportMetric(float64(n*b.N)/took.Seconds(), "rows/s")
			b.ReportMetric(took.Seconds()/float64(b.N), "wall_s")
		})
	}
}

// BenchmarkPassInProcess100k is the 100k backfill with the pass wired in
// this process, emulator included, for a CPU profile:
//
//	go test -run '^$' -bench PassInProcess -benchtime 1x -cpuprofile cpu.out ./internal/benchmark
func BenchmarkPassInProcess100k(b *testing.B) {
	t := tableOf(b, rows100k)
	var took time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w := newWorld(b, t, b.TempDir(), false)
		s, _ := w.inProcess(b)
		b.StartTimer()
		start := time.Now()
		rep, err := s.Run(context.Background(), syncer.Options{})
		took += time.Since(start)
		b.StopTimer()
		if err != nil || rep.Imported != rows100k {
			b.Fatalf("pass: %v; imported %d of %d", err, rep.Imported, rows100k)
		}
	}
	b.ReportMetric(float64(rows100k*b.N)/took.Seconds(), "rows/s")
	b.ReportMetric(took.Seconds()/float64(b.N), "wall_s")
}

func sizeName(n int) string {
	if n%1_000_000 == 0 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}

// TestHarness checks, quickly, what the benchmarks take for granted: the
// fixture's rows are all valid groups, and a pass delivers every one of
// them to the emulator as the row says.
func TestHarness(t *testing.T) {
	const n = 2_000
	tab := tableOf(t, n)
	w := newWorld(t, tab, t.TempDir(), false)
	s, _ := w.inProcess(t)
	rep, err := s.Run(context.Background(), syncer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != n || rep.Imported != n || rep.Failed() != 0 {
		t.Fatalf("pass over %d rows: %+v", n, rep)
	}
	if got := len(w.emu.Groups()); got != n {
		t.Fatalf("the emulator holds %d groups, want %d", got, n)
	}
	// Row 18 is a password group with an owner, tags and metadata.
	g, ok := w.emu.Group("grp-18")
	if !ok || g.Type != "password" || g.Owner != "u19" || len(g.Tags) != 2 || len(g.Metadata) == 0 || g.GroupOwnerDetails == nil {
		t.Fatalf("grp-18 is %+v", g)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "state.db")); err != nil {
		t.Fatalf("no state written: %v", err)
	}
}

// BenchmarkStateApply records 100,000 deliveries in batches of 50, in
// random guid order as a backfill does, each batch moving the checkpoint:
// the collector's work, which is serial in a pass.
func BenchmarkStateApply(b *testing.B) {
	const total = rows100k
	rng := rand.New(rand.NewPCG(3, 4))
	guids := make([]string, total)
	for i, id := range rng.Perm(total) {
		guids[i] = fmt.Sprintf("grp-%d", id+1)
	}
	var took, cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		st, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		// Cancellable, as the pass's context is.
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		start, cpu0 := time.Now(), selfCPU()
		for from := 0; from < total; from += batchSize {
			c := state.Changes{Checkpoint: []byte(fmt.Sprintf(`{"cursor":%d,"key":%d}`, from, from))}
			for _, g := range guids[from:min(from+batchSize, total)] {
				c.Delivered = append(c.Delivered, state.Delivered{Key: g, Hash: "0123456789abcdef", Present: 5})
			}
			if err := st.Stream("groups").Apply(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		took += time.Since(start)
		cpu += selfCPU() - cpu0
		b.StopTimer()
		known, err := st.Stream("groups").Known(ctx, guids[:1000])
		if err != nil || len(known) != 1000 {
			b.Fatalf("Known: %d of 1000, %v", len(known), err)
		}
		st.Close()
		cancel()
	}
	b.ReportMetric(float64(total*b.N)/took.Seconds(), "rows/s")
	b.ReportMetric(took.Seconds()/float64(b.N)/total*1e6, "us/row")
	b.ReportMetric(cpu.Seconds()/float64(b.N)/total*1e6, "cpu_us/row")
}
