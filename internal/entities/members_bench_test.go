package entities

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/syncer"
)

// benchOtherPerMinute is the plan limit of other REST calls that the test
// double enforces and the client is configured with (other_per_minute).
const benchOtherPerMinute = 6000

// BenchmarkMembersViaREST delivers memberships with via: rest against the
// test double enforcing benchOtherPerMinute, as the engine does: 4 batches
// of 50 in flight, each one group's (two calls of 25 uids). It reports the
// calls a minute reached as a share of the limit (goal: at least 90%), the
// memberships a second, and the 429s the double answered. Run it for a
// short window, e.g. -benchtime=10s.
func BenchmarkMembersViaREST(b *testing.B) {
	d := newDouble(b, cometchattest.Config{OtherPerMinute: benchOtherPerMinute},
		cometchat.Config{OtherPerMinute: benchOtherPerMinute, MaxAttempts: 10, Concurrency: 8})
	var uids []string
	for i := range cometchat.MaxBatch {
		uids = append(uids, fmt.Sprintf("u%02d", i))
	}
	seed(d, nil, uids...)
	e := newMembers(b, d, ViaREST)
	ctx := context.Background()
	const workers = 4
	next := 0
	// batch is the next group's 50 memberships, the group created.
	batch := func() []syncer.Object {
		guid := fmt.Sprintf("g%d", next)
		next++
		d.emu.Put(cometchat.Group{GUID: guid, Name: guid, Type: "public"})
		rows := make([][]any, len(uids))
		for i, uid := range uids {
			rows[i] = []any{guid, uid, nil, nil}
		}
		return mapAll(b, e, rows...)
	}
	round := func() {
		batches := make([][]syncer.Object, workers)
		for w := range batches {
			batches[w] = batch()
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, objs := range batches {
			g.Go(func() error {
				res, err := e.Import(gctx, objs)
				if err != nil {
					return err
				}
				for k, r := range res {
					if !r.OK {
						return fmt.Errorf("%s: %s %s", k, r.Code, r.Message)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	// Spend the pacers' initial burst (one second's share) before the
	// clock starts: the figure is the steady rate.
	for range 2 * benchOtherPerMinute / 60 / (2 * workers) {
		round()
	}
	before := d.emu.Stats()
	start := time.Now()
	for b.Loop() {
		round()
	}
	elapsed := time.Since(start)
	after := d.emu.Stats()
	calls := after.Requests["POST members 200"] - before.Requests["POST members 200"]
	perMinute := float64(calls) / elapsed.Minutes()
	b.ReportMetric(perMinute, "calls/min")
	b.ReportMetric(100*perMinute/benchOtherPerMinute, "%_of_limit")
	b.ReportMetric(float64(after.MembersAdded-before.MembersAdded)/elapsed.Seconds(), "members/s")
	b.ReportMetric(float64(after.TooManyRequests-before.TooManyRequests), "429s")
}
