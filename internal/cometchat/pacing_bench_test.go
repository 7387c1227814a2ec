package cometchat_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
)

// BenchmarkPacedBackfill is the pacing requirement: a 6,000-group backfill
// (120 imports of 50 groups from 4 workers sharing one client) against an
// API that allows 10 imports a second and answers 429 with Retry-After above
// that, with 100 ms latency. The client is told the same limit (600 a
// minute). It must reach at least 95% of the limit's throughput
// (10 × 50 = 500 groups/s) with under 2% of the requests answered 429.
//
//	go test -run '^$' -bench BenchmarkPacedBackfill -benchtime 1x ./internal/cometchat
//
// Metrics: groups/s and pct_of_limit over the whole backfill (first request
// sent to last answer); steady_pct_of_limit over the answers after the
// first 20, which leaves out the start, where the emulator's full bucket
// lets a client with a burst run ahead of the limit; pct_429 is the share
// of import requests the emulator answered 429.
func BenchmarkPacedBackfill(b *testing.B) {
	const (
		workers   = 4
		requests  = 120
		perSecond = 10.0
		limit     = perSecond * cometchat.MaxBatch // groups/s the API allows
		skip      = 20                             // answers left out of the steady state
	)
	batches := make([][]cometchat.Group, requests)
	for i := range batches {
		for j := range cometchat.MaxBatch {
			guid := fmt.Sprintf("backfill-%03d-%02d", i, j)
			batches[i] = append(batches[i], cometchat.Group{GUID: guid, Name: "Group " + guid, Type: "public"})
		}
	}
	emu := cometchattest.New(cometchattest.Config{APIKey: testKey})
	srv := httptest.NewServer(emu)
	b.Cleanup(srv.Close)

	var total, steady, pct429 float64
	for b.Loop() {
		// A fresh app, bucket and client for every round: each starts cold.
		b.StopTimer()
		emu.Reset()
		emu.SetFaults(cometchattest.Faults{Latency: 100 * time.Millisecond, ImportPerSecond: perSecond, RetryAfter: true})
		emu.ResetStats()
		client := cometchat.New(cometchat.Config{
			BaseURL: srv.URL + "/v3", APIKey: testKey,
			ImportPerMinute: perSecond * 60, Concurrency: workers,
		}, zap.NewNop())
		work := make(chan []cometchat.Group)
		var (
			mu       sync.Mutex
			answered []time.Duration
			wg       sync.WaitGroup
			firstErr error
		)
		b.StartTimer()

		start := time.Now()
		for range workers {
			wg.Go(func() {
				for groups := range work {
					rows, err := client.Import(context.Background(), groups)
					took := time.Since(start)
					mu.Lock()
					answered = append(answered, took)
					if err == nil {
						for guid, r := range rows {
							if !r.OK {
								err = fmt.Errorf("row %s: %s %s", guid, r.Code, r.Message)
								break
							}
						}
					}
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		for _, groups := range batches {
			work <- groups
		}
		close(work)
		wg.Wait()
		wall := time.Since(start)

		b.StopTimer()
		if firstErr != nil {
			b.Fatalf("backfill: %v", firstErr)
		}
		st := emu.Stats()
		if st.ImportedRows != requests*cometchat.MaxBatch {
			b.Fatalf("%d groups imported, want %d", st.ImportedRows, requests*cometchat.MaxBatch)
		}
		slices.Sort(answered)
		total = requests * cometchat.MaxBatch / wall.Seconds()
		steady = (requests - skip) * cometchat.MaxBatch / (answered[requests-1] - answered[skip-1]).Seconds()
		pct429 = 100 * float64(st.TooManyRequests) / float64(st.ImportRequests)
		b.Logf("wall %s, %d import requests, %d answered 429, steady state %.0f groups/s",
			wall.Round(time.Millisecond), st.ImportRequests, st.TooManyRequests, steady)
		b.StartTimer()
	}
	b.ReportMetric(total, "groups/s")
	b.ReportMetric(100*total/limit, "pct_of_limit")
	b.ReportMetric(100*steady/limit, "steady_pct_of_limit")
	b.ReportMetric(pct429, "pct_429")
	if total < 0.95*limit || pct429 >= 2 {
		b.Errorf("pacing misses the requirement: %.0f groups/s (%.1f%% of %.0f, want ≥ 95%%), %.1f%% answered 429 (want < 2%%)",
			total, 100*total/limit, limit, pct429)
	}
}
