package cometchat_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
)

// BenchmarkAddMembersAtOtherPerMinute is the pacing of `via: rest`: 4
// workers sharing one client add 25 uids a call to 50 groups against a test
// double whose plan allows 6,000 other calls a minute (Config.OtherPerMinute,
// 429 with Retry-After above it), the client told the same limit. The goal
// is at least 90% of the limit.
//
//	go test -run '^$' -bench BenchmarkAddMembersAtOtherPerMinute -benchtime 1x ./internal/cometchat
//
// Metrics: calls/min and pct_of_limit from the first call to the last
// answer (above 100% on a short run: both buckets start full, so the first
// second's share goes at once); members/s; pct_429, the share of calls
// answered 429.
func BenchmarkAddMembersAtOtherPerMinute(b *testing.B) {
	const (
		workers   = 4
		groups    = 50
		calls     = 600 // 12 a group
		perMinute = 6000.0
	)
	var pct, pct429, perMin float64
	for b.Loop() {
		b.StopTimer()
		emu := cometchattest.New(cometchattest.Config{APIKey: testKey, OtherPerMinute: perMinute})
		srv := httptest.NewServer(emu)
		for g := range groups {
			emu.Put(cometchat.Group{GUID: fmt.Sprintf("g%02d", g), Name: "G", Type: "public"})
		}
		work := make(chan [2]any, calls)
		for i := range calls {
			uids := make([]string, cometchat.MaxAddMembers)
			for j := range uids {
				uids[j] = fmt.Sprintf("u%03d-%02d", i/groups, j)
				emu.PutUser(cometchat.User{UID: uids[j], Name: "U"})
			}
			work <- [2]any{fmt.Sprintf("g%02d", i%groups), uids}
		}
		close(work)
		client := cometchat.New(cometchat.Config{BaseURL: srv.URL + "/v3", APIKey: testKey,
			OtherPerMinute: perMinute, Concurrency: workers}, zap.NewNop())
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for w := range work {
					rows, err := client.AddMembers(context.Background(), w[0].(string), map[string][]string{cometchat.ScopeParticipant: w[1].([]string)})
					if err != nil {
						b.Error(err)
						return
					}
					for uid, r := range rows {
						if !r.OK {
							b.Errorf("%s in %s: %+v", uid, w[0], r)
						}
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		b.StopTimer()
		st := emu.Stats()
		srv.Close()
		perMin = calls / took.Minutes()
		pct = 100 * perMin / perMinute
		pct429 = 100 * float64(st.TooManyRequests) / float64(st.Requests["POST members 200"]+st.TooManyRequests)
		if st.MembersAdded != calls*cometchat.MaxAddMembers {
			b.Errorf("%d members added, want %d", st.MembersAdded, calls*cometchat.MaxAddMembers)
		}
		b.StartTimer()
	}
	b.ReportMetric(perMin, "calls/min")
	b.ReportMetric(perMin*cometchat.MaxAddMembers/60, "members/s")
	b.ReportMetric(pct, "pct_of_limit")
	b.ReportMetric(pct429, "pct_429")
	if pct < 90 {
		b.Errorf("add-members calls reached %.1f%% of other_per_minute, want at least 90%%", pct)
	}
}
