package cometchat

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// clock is a manual clock for the pacer.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)} }
func (c *clock) pacer(perMinute float64) *pacer {
	p := newPacer(perMinute, 1)
	p.now = c.now
	return p
}

// recorder is a sleep that records what it was asked to wait and returns
// at once, as sleepCtx does for a finished context.
type recorder struct{ waits []time.Duration }

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		r.waits = append(r.waits, d)
	}
	return ctx.Err()
}

func TestPacerSpacesRequestsEvenly(t *testing.T) {
	clk := newClock()
	p := clk.pacer(600) // 10 a second
	var rec recorder
	for range 4 {
		if err := p.wait(context.Background(), rec.sleep); err != nil {
			t.Fatal(err)
		}
	}
	// The first request is free; the others queue 100 ms apart. A burst
	// (three at once) would run ahead of a server whose bucket is emptier
	// than ours.
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	if !slices.Equal(rec.waits, want) {
		t.Fatalf("waits = %v, want %v", rec.waits, want)
	}
}

func TestPacerHalvesOn429AndCreepsBack(t *testing.T) {
	clk := newClock()
	p := clk.pacer(600)
	base := rate.Limit(10)

	sent := clk.now()
	clk.advance(100 * time.Millisecond)
	p.limited(sent, 2*time.Second)
	if got := p.limiter.Limit(); got != base/2 {
		t.Fatalf("after a 429 the rate is %v, want half of %v", got, base)
	}
	// Other workers' requests sent before the cut get their 429s too: the
	// same overload, already answered.
	p.limited(sent, time.Second)
	p.limited(clk.now(), time.Second)
	if got := p.limiter.Limit(); got != base/2 {
		t.Fatalf("429s to requests sent before the cut halved the rate again: %v", got)
	}
	// A request sent after the cut that still gets a 429 halves it again,
	// down to a floor of a sixteenth.
	for range 10 {
		clk.advance(time.Second)
		p.limited(clk.now(), time.Second)
		clk.advance(time.Millisecond)
	}
	if got := p.limiter.Limit(); got != base/16 {
		t.Fatalf("after many 429s the rate is %v, want the floor %v", got, base/16)
	}
	// Successes creep back by a twentieth of the limit, never past it.
	for range 10 {
		p.succeeded()
	}
	if got, want := p.limiter.Limit(), base/16+10*base/20; got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("after 10 successes the rate is %v, want %v", got, want)
	}
	for range 100 {
		p.succeeded()
	}
	if got := p.limiter.Limit(); got != base {
		t.Fatalf("after many successes the rate is %v, want back at %v", got, base)
	}
}

func TestPacerPauseHoldsEveryWorker(t *testing.T) {
	clk := newClock()
	p := clk.pacer(6000) // 100 a second, so the token waits stay small
	p.limited(clk.now(), 3*time.Second)
	clk.advance(time.Second)
	// Any worker, not only the one that got the 429, waits out the pause.
	var rec recorder
	if err := p.wait(context.Background(), rec.sleep); err != nil {
		t.Fatal(err)
	}
	if len(rec.waits) == 0 || rec.waits[0] != 2*time.Second {
		t.Fatalf("waits = %v, want the 2s left of the pause first", rec.waits)
	}
}

func TestPacerWaitReturnsContextError(t *testing.T) {
	p := newPacer(600, 1)
	p.limited(time.Now(), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := p.wait(ctx, sleepCtx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("wait returned %s after the cancel, want promptly", took)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"retry-after seconds", http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{"retry-after fraction", http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{"retry-after http date", http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}}, 30 * time.Second},
		{"retry-after date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"retry-after huge", http.Header{"Retry-After": {"1e300"}}, maxRetryAfter},
		{"retry-after wins over reset", http.Header{"Retry-After": {"3"}, "X-Ratelimit-Reset": {"9"}}, 3 * time.Second},
		{"retry-after unreadable, reset used", http.Header{"Retry-After": {"soon"}, "X-Ratelimit-Reset": {"4"}}, 4 * time.Second},
		{"x-ratelimit-reset epoch", http.Header{"X-Ratelimit-Reset": {"1795766405"}}, 5 * time.Second},
		{"x-ratelimit-reset epoch millis", http.Header{"X-Ratelimit-Reset": {"1795766402500"}}, 2500 * time.Millisecond},
		{"x-ratelimit-reset epoch passed", http.Header{"X-Ratelimit-Reset": {"1795766300"}}, 0},
		{"x-ratelimit-reset seconds", http.Header{"X-Ratelimit-Reset": {"7"}}, 7 * time.Second},
		{"x-rate-limit-reset seconds", http.Header{"X-Rate-Limit-Reset": {"6"}}, 6 * time.Second},
		{"x-rate-limit-reset epoch", http.Header{"X-Rate-Limit-Reset": {"1795766410"}}, 10 * time.Second},
		{"reset unreadable", http.Header{"X-Ratelimit-Reset": {"-3"}, "X-Rate-Limit-Reset": {"later"}}, 0},
	}
	if now.Unix() != 1795766400 {
		t.Fatalf("the epoch cases assume now is 1795766400, it is %d", now.Unix())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.header, now); got != tt.want {
				t.Errorf("retryAfter(%v) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	tests := []struct {
		name             string
		initial, maxWait time.Duration
		n                int
		ceil             time.Duration
	}{
		{"first failure", 500 * time.Millisecond, 30 * time.Second, 1, 500 * time.Millisecond},
		{"third failure doubles twice", 500 * time.Millisecond, 30 * time.Second, 3, 2 * time.Second},
		{"capped", 500 * time.Millisecond, 30 * time.Second, 10, 30 * time.Second},
		{"no overflow", time.Hour, 2 * time.Hour, 200, 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{InitialBackoff: tt.initial, MaxBackoff: tt.maxWait}, nil)
			var top time.Duration
			for range 2000 {
				d := c.backoff(tt.n)
				if d < 0 || d > tt.ceil {
					t.Fatalf("backoff(%d) = %v, want within [0, %v]", tt.n, d, tt.ceil)
				}
				top = max(top, d)
			}
			// Full jitter spreads over the whole range, not just near 0.
			if top < tt.ceil/2 {
				t.Errorf("backoff(%d) never exceeded %v in 2000 draws; want spread up to %v", tt.n, top, tt.ceil)
			}
		})
	}
}
