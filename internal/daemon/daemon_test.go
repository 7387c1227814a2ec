package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// start runs d until the returned stop is called; stop returns Run's error.
func start(d *Daemon) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// counting is a daemon on spec whose passes only count themselves.
func counting(t *testing.T, spec string) (*Daemon, *atomic.Int32) {
	t.Helper()
	var passes atomic.Int32
	d, err := New(spec, func(context.Context) error { passes.Add(1); return nil }, 5*time.Second, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, &passes
}

// With an hourly schedule, the only pass in the first seconds is the one at
// start: it must come at once, and only once.
func TestPassAtStart(t *testing.T) {
	d, passes := counting(t, "@every 1h")
	stop := start(d)
	if !waitFor(t, 5*time.Second, func() bool { return passes.Load() >= 1 }) {
		t.Fatal("no pass at start within 5 s")
	}
	if ok, why := d.Ready(); !ok {
		t.Errorf("not ready after the pass at start succeeded: %s", why)
	}
	time.Sleep(500 * time.Millisecond)
	if n := passes.Load(); n != 1 {
		t.Errorf("passes in the first half second on an hourly schedule: %d, want 1", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// On "@every 1s" the passes keep coming after the one at start. The count
// is a range, not an exact figure: cron rounds the first tick to a whole
// second, so it can come within milliseconds of the start pass.
func TestPassesOnSchedule(t *testing.T) {
	d, passes := counting(t, "@every 1s")
	stop := start(d)
	if !waitFor(t, 10*time.Second, func() bool { return passes.Load() >= 3 }) {
		t.Errorf("passes within 10 s on @every 1s: %d, want at least 3", passes.Load())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	stopped := passes.Load()
	time.Sleep(1500 * time.Millisecond)
	if n := passes.Load(); n != stopped {
		t.Errorf("passes ran after Run returned: %d then %d", stopped, n)
	}
}

func TestNeverTwoPassesAtOnce(t *testing.T) {
	var running, most, total atomic.Int32
	slow := func(context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		total.Add(1)
		time.Sleep(1500 * time.Millisecond)
		return nil
	}
	d, err := New("@every 1s", slow, 5*time.Second, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if most.Load() != 1 {
		t.Errorf("%d passes ran at once", most.Load())
	}
	if total.Load() < 2 {
		t.Errorf("only %d passes ran in 3.5 s", total.Load())
	}
}

func TestPanicIsRecoveredAndReported(t *testing.T) {
	var calls atomic.Int32
	d, err := New("@every 2s", func(context.Context) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}, 5*time.Second, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(d)
	var pe *PanicError
	if !waitFor(t, 5*time.Second, func() bool { return errors.As(d.LastError(), &pe) }) {
		t.Fatalf("the panicking pass at start was not recorded: last error %v", d.LastError())
	}
	if ok, why := d.Ready(); ok || !strings.Contains(why, "panicked: boom") {
		t.Errorf("after a panicking pass: ready=%v %q", ok, why)
	}
	if !waitFor(t, 10*time.Second, func() bool { ok, _ := d.Ready(); return ok }) {
		ok, why := d.Ready()
		t.Errorf("the pass after a panic did not run or did not count: ready=%v %q calls=%d", ok, why, calls.Load())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStopWaitsForTheRunningPass(t *testing.T) {
	var finished atomic.Bool
	started := make(chan struct{})
	d, err := New("@every 1h", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond) // in-flight requests finishing
		finished.Store(true)
		return ctx.Err()
	}, 5*time.Second, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(d)
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Error("Run returned before the running pass finished")
	}
	if d.LastError() != nil {
		t.Errorf("a pass stopped on shutdown was recorded as a failure: %v", d.LastError())
	}
}

func TestStopGivesUpOnAStuckPass(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	var once sync.Once
	d, err := New("@every 1h", func(context.Context) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}, 200*time.Millisecond, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not stop") {
			t.Errorf("Run with a stuck pass: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run waited forever for a stuck pass")
	}
}

func TestReadinessGoesStale(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, err := New("*/5 * * * *", func(context.Context) error { return nil }, time.Second, zaptest.NewLogger(t), clock)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := d.Ready(); ok || !strings.Contains(why, "no pass has completed yet") {
		t.Errorf("before any pass: %v %q", ok, why)
	}
	d.runPass(context.Background())
	if ok, why := d.Ready(); !ok {
		t.Errorf("right after a success: not ready: %s", why)
	}
	mu.Lock()
	now = now.Add(14 * time.Minute)
	mu.Unlock()
	if ok, _ := d.Ready(); !ok {
		t.Error("14 minutes after a success on a 5-minute schedule: not ready, want ready (3 intervals = 15m)")
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if ok, why := d.Ready(); ok || !strings.Contains(why, "more than 3 schedule intervals (15m0s)") {
		t.Errorf("16 minutes after a success: ready=%v %q", ok, why)
	}
}

func TestBadSchedule(t *testing.T) {
	if _, err := New("every five minutes", nil, time.Second, zaptest.NewLogger(t), nil); err == nil ||
		!strings.Contains(err.Error(), `schedule "every five minutes"`) {
		t.Errorf("bad schedule: %v", err)
	}
}

// A failure that will not fix itself (refused credentials) makes the
// daemon not ready at once; others only after StaleAfter intervals.
func TestFailuresThatFailReadinessAtOnce(t *testing.T) {
	errRevoked := errors.New("the key was revoked")
	var failWith error // the passes run in this goroutine (runPass)
	d, err := New("*/5 * * * *", func(context.Context) error { return failWith }, time.Second, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.FailsReadiness = func(err error) bool { return errors.Is(err, errRevoked) }
	d.runPass(context.Background())
	failWith = errors.New("CometChat answered 503")
	d.runPass(context.Background())
	if ok, why := d.Ready(); !ok {
		t.Errorf("one transient failure after a success: not ready (%s); want ready until 3 intervals pass", why)
	}
	failWith = fmt.Errorf("pass failed: %w", errRevoked)
	d.runPass(context.Background())
	if ok, why := d.Ready(); ok || !strings.Contains(why, "the key was revoked") {
		t.Errorf("after a revoked key: ready=%v %q; want not ready, with the reason", ok, why)
	}
	failWith = nil
	d.runPass(context.Background())
	if ok, why := d.Ready(); !ok {
		t.Errorf("after the key was fixed and a pass succeeded: not ready (%s)", why)
	}
}
