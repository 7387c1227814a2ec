package syncer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// Stream is one stream's engine, named: users, groups or members.
type Stream struct {
	Name string
	*Syncer
}

// StreamReport is what a pass did for one stream.
type StreamReport struct {
	Report
	// Error is why the stream's pass did not complete; "" when it did.
	Error string `json:"error,omitempty"`
	// Ran is false for a stream the pass did not reach (it stopped first).
	Ran bool `json:"ran"`
}

// GraphReport is what a pass over the streams did: each stream's report,
// in pass order.
type GraphReport struct {
	Names   []string                `json:"-"`
	Streams map[string]StreamReport `json:"streams"`
}

// Total sums the streams' figures (row counts and the rows beyond the
// bound); the pass's start is the first stream's, its duration the sum.
func (g GraphReport) Total() Report {
	var t Report
	for i, name := range g.Names {
		r := g.Streams[name].Report
		if i == 0 {
			t.StartedAt = r.StartedAt
			t.CursorLag = r.CursorLag
		}
		t.add(r)
		t.Duration += r.Duration
		t.Beyond += r.Beyond
		t.MostlyBeyond = t.MostlyBeyond || r.MostlyBeyond
		t.Resync = t.Resync || r.Resync
		t.Rescan = t.Rescan || r.Rescan
		t.FingerprintChanged = t.FingerprintChanged || r.FingerprintChanged
		t.CursorLag = max(t.CursorLag, r.CursorLag)
	}
	return t
}

// StreamError is a stream's pass that did not complete.
type StreamError struct {
	Stream string
	Err    error
}

func (e *StreamError) Error() string { return fmt.Sprintf("%s: %v", e.Stream, e.Err) }

// Unwrap returns the stream's error (a *PassError or ErrInterrupted).
func (e *StreamError) Unwrap() error { return e.Err }

// RunStreams runs one pass of each stream, in order (users, then groups,
// then members: a member needs its user and its group), each moving its own
// checkpoint. The streams' deletes wait until every stream's upserts are
// done and go in the reverse order, members, then groups, then users: a
// group is not deleted under members being added, nor a user deactivated
// while it is still being added somewhere. A stream that fails does not
// stop the ones after it (a member of a user that did not arrive is a row
// error, retried later), except when the pass is interrupted or CometChat
// refused the credentials. The error is the first stream's that failed,
// in pass order, as a *StreamError.
func RunStreams(ctx context.Context, streams []Stream, opts Options) (GraphReport, error) {
	return RunGated(ctx, streams, opts, func(ctx context.Context, st Stream, o Options) (Report, error) { return st.Run(ctx, o) })
}

// RunGated runs a pass of each stream with run (Syncer.Run, or RunKeys for
// a feed's batch) as RunStreams does: upserts in pass order, then the
// deletes in reverse order.
func RunGated(ctx context.Context, streams []Stream, opts Options, run func(context.Context, Stream, Options) (Report, error)) (GraphReport, error) {
	type running struct {
		name string
		gate *deleteGate
		done chan struct{}
		rep  Report
		err  error
	}
	g := GraphReport{Streams: map[string]StreamReport{}}
	var runs []*running
	stopped := false
	for _, st := range streams {
		g.Names = append(g.Names, st.Name)
		if stopped || ctx.Err() != nil {
			g.Streams[st.Name] = StreamReport{Report: Report{CursorLag: -1, StartedAt: time.Now()}}
			continue
		}
		r := &running{name: st.Name, gate: newDeleteGate(), done: make(chan struct{})}
		o := opts
		o.gate = r.gate
		go func() {
			defer close(r.done)
			defer o.gate.upsertsDone() // a run that never reaches its deletes
			r.rep, r.err = run(ctx, st, o)
		}()
		<-r.gate.upserted
		select {
		case <-r.done:
			// It ended before its deletes: its error may stop the rest.
			stopped = r.err != nil && (errors.Is(r.err, ErrInterrupted) || cometchat.IsAuth(r.err))
		default:
		}
		runs = append(runs, r)
	}
	for i := len(runs) - 1; i >= 0; i-- {
		close(runs[i].gate.release)
		<-runs[i].done
	}
	var first error
	for _, r := range runs {
		sr := StreamReport{Report: r.rep, Ran: true}
		if r.err != nil {
			sr.Error = r.err.Error()
			if first == nil {
				first = &StreamError{Stream: r.name, Err: r.err}
			}
		}
		g.Streams[r.name] = sr
	}
	return g, first
}

// deleteGate holds a stream's deletes until RunStreams lets them go.
type deleteGate struct {
	once     sync.Once
	upserted chan struct{} // closed once the pass's upserts are done (or it ended)
	release  chan struct{} // closed when the pass may make its deletes
}

func newDeleteGate() *deleteGate {
	return &deleteGate{upserted: make(chan struct{}), release: make(chan struct{})}
}

func (g *deleteGate) upsertsDone() { g.once.Do(func() { close(g.upserted) }) }

// wait tells RunGated that the pass's upserts are done (runErr is how they
// ended) and, when they succeeded, waits for the turn of its deletes. A
// nil gate (a pass run on its own) does not wait.
func (g *deleteGate) wait(ctx context.Context, runErr error) error {
	if g == nil {
		return runErr
	}
	g.upsertsDone()
	if runErr != nil {
		return runErr
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
