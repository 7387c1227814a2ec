package benchmark

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchmarkReconcile100k times `cometsync once --reconcile` over the
// groups stream of 100,000 rows after a full backfill, when 100 random
// rows were deleted from the table: the whole process (goal: under 15 s
// at 1M; peak RSS under 64 MiB and flat from 100k to 1M).
func BenchmarkReconcile100k(b *testing.B) {
	t := tableOf(b, rows100k)
	binary(b)
	w := newWorld(b, t, b.TempDir(), false)
	w.once(b, rows100k)
	benchReconcile(b, w)
}

// BenchmarkReconcile1M is BenchmarkReconcile100k over 1,000,000 rows, from
// the seed of the incremental benchmark (whose state and app it leaves as
// it found them: see benchReconcile).
func BenchmarkReconcile1M(b *testing.B) {
	w := seeded(b)
	binary(b)
	benchReconcile(b, w)
}

// benchReconcile deletes 100 random groups of w's table and times
// `once --reconcile`, which must delete exactly them from the app. Then,
// untimed, it puts the rows back (with a new updated_at) and runs a pass
// that imports them again, so that the table, the state and the app are
// whole for the next iteration and the next benchmark.
func benchReconcile(b *testing.B, w *world) {
	b.Helper()
	n := w.table.rows
	rng := rand.New(rand.NewPCG(9, 10))
	root := w.table.root
	exec := func(q string) {
		b.Helper()
		if _, err := root.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var runs []run
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ids := pick(rng, n)
		exec(`CREATE TABLE vanished AS SELECT * FROM chat_groups WHERE id IN (` + ids + `)`)
		exec(`DELETE FROM chat_groups WHERE id IN (` + ids + `)`)
		before := w.emu.Stats().Deletes
		b.StartTimer()
		r := w.onceWith(b, 0, 0, "--reconcile")
		b.StopTimer()
		if got := w.emu.Stats().Deletes - before; got != changed || r.pass.Deleted != changed {
			b.Fatalf("the reconcile deleted %d groups (%d by its report), want %d", got, r.pass.Deleted, changed)
		}
		first, _, _ := strings.Cut(ids, ",")
		if _, ok := w.emu.Group("grp-" + first); ok {
			b.Fatalf("grp-%s is still in the app after the reconcile", first)
		}
		if got := len(w.emu.Groups()); got != n-changed {
			b.Fatalf("the app holds %d groups after the reconcile, want %d", got, n-changed)
		}
		runs = append(runs, r)

		exec(`UPDATE vanished SET updated_at = NOW(6)`)
		exec(`INSERT INTO chat_groups SELECT * FROM vanished`)
		exec(`DROP TABLE vanished`)
		w.onceWith(b, changed, changed)
	}
	report(b, n, runs)
}
