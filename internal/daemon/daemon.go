// Package daemon runs passes on a schedule for `cometsync run`: one at
// start, then on the cron schedule, never two at once, a panic in a pass
// recovered and reported, and a graceful stop. It also decides readiness.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
)

// PassFunc runs one pass. Cancelling ctx asks it to stop gracefully.
type PassFunc func(ctx context.Context) error

// Parser is the schedule syntax: five fields (minute hour day month
// weekday) and descriptors such as @hourly and @every 5m.
var Parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// StaleAfter is how many schedule intervals may pass without a successful
// pass before the daemon reports itself not ready.
const StaleAfter = 3

// Daemon runs passes on a schedule.
type Daemon struct {
	spec     string
	schedule cron.Schedule
	pass     PassFunc
	stopWait time.Duration
	log      *zap.Logger
	now      func() time.Time

	// FailsReadiness, when set, picks the pass errors that make the daemon
	// not ready at once rather than after StaleAfter intervals: failures
	// that will not fix themselves, such as refused credentials.
	FailsReadiness func(error) bool

	passes sync.WaitGroup

	mu          sync.Mutex
	lastSuccess time.Time
	lastErr     error
}

// New parses the schedule. stopWait bounds how long Run waits for a
// running pass after it was asked to stop.
func New(spec string, pass PassFunc, stopWait time.Duration, log *zap.Logger, now func() time.Time) (*Daemon, error) {
	sched, err := Parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	if now == nil {
		now = time.Now
	}
	return &Daemon{spec: spec, schedule: sched, pass: pass, stopWait: stopWait, log: log, now: now}, nil
}

// Run runs a pass at once and then on the schedule until ctx is cancelled;
// it then lets the running pass stop (the pass itself bounds that by its
// shutdown timeout) and returns nil, or an error if it did not stop within
// stopWait.
func (d *Daemon) Run(ctx context.Context) error {
	clog := cronLogger{d.log.Sugar()}
	c := cron.New(cron.WithParser(Parser), cron.WithLogger(clog),
		cron.WithChain(cron.Recover(clog), cron.SkipIfStillRunning(clog)))
	id, err := c.AddFunc(d.spec, func() { d.runPass(ctx) })
	if err != nil {
		return fmt.Errorf("schedule %q: %w", d.spec, err)
	}
	c.Start()
	// The first pass goes through the same chain, so a scheduled run that
	// comes while it is still going is skipped, not doubled.
	d.passes.Add(1)
	go func() {
		defer d.passes.Done()
		c.Entry(id).WrappedJob.Run()
	}()
	d.log.Info("daemon started", zap.String("schedule", d.spec), zap.Time("next", c.Entry(id).Next))

	<-ctx.Done()
	stopped := make(chan struct{})
	go func() {
		<-c.Stop().Done()
		d.passes.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		d.log.Info("daemon stopped")
		return nil
	case <-time.After(d.stopWait):
		return fmt.Errorf("the running pass did not stop within %s", d.stopWait)
	}
}

// runPass runs one pass and records its outcome. A panic is recovered here
// so that it counts as a failed pass; the next scheduled pass runs as usual.
func (d *Daemon) runPass(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	d.passes.Add(1)
	defer d.passes.Done()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = &PanicError{Value: r}
				d.log.Error("a pass panicked; it is recorded as failed and the next pass runs as scheduled",
					zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			}
		}()
		return d.pass(ctx)
	}()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err == nil:
		d.lastSuccess, d.lastErr = d.now(), nil
	case ctx.Err() != nil:
		// Stopping: not a failure of the sync.
	default:
		d.lastErr = err
	}
}

// PanicError is a pass that panicked.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("the pass panicked: %v", e.Value) }

// Interval is the time between two scheduled passes from now.
func (d *Daemon) Interval() time.Duration {
	next := d.schedule.Next(d.now())
	return d.schedule.Next(next).Sub(next)
}

// Ready reports whether a pass has succeeded within StaleAfter schedule
// intervals, and why not.
func (d *Daemon) Ready() (bool, string) {
	d.mu.Lock()
	last, lastErr := d.lastSuccess, d.lastErr
	d.mu.Unlock()
	why := ""
	if lastErr != nil {
		why = "; last pass failed: " + lastErr.Error()
	}
	if last.IsZero() {
		return false, "no pass has completed yet" + why
	}
	if lastErr != nil && d.FailsReadiness != nil && d.FailsReadiness(lastErr) {
		return false, "not ready until a pass succeeds" + why
	}
	limit := max(StaleAfter*d.Interval(), time.Minute)
	age := d.now().Sub(last)
	if age > limit {
		return false, fmt.Sprintf("the last successful pass was %s ago, more than %d schedule intervals (%s)%s",
			age.Round(time.Second), StaleAfter, limit, why)
	}
	return true, fmt.Sprintf("the last successful pass was %s ago%s", age.Round(time.Second), why)
}

// LastError is the error of the last failed pass since the last success.
func (d *Daemon) LastError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// cronLogger hands cron's own messages to zap.
type cronLogger struct{ s *zap.SugaredLogger }

func (l cronLogger) Info(msg string, kv ...any) { l.s.Debugw("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	if errors.Is(err, context.Canceled) {
		return
	}
	l.s.Errorw("cron: "+msg, append(kv, "error", err)...)
}
