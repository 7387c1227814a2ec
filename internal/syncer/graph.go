package syncer

import (
	"context"
	"errors"
	"fmt"
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
// checkpoint. A stream that fails does not stop the ones after it (a
// member of a user that did not arrive is a row error, retried later),
// except when the pass is interrupted or CometChat refused the credentials.
// The error is the first stream's that failed, as a *StreamError.
func RunStreams(ctx context.Context, streams []Stream, opts Options) (GraphReport, error) {
	g := GraphReport{Streams: map[string]StreamReport{}}
	var first error
	for _, st := range streams {
		g.Names = append(g.Names, st.Name)
		if first != nil && (errors.Is(first, ErrInterrupted) || cometchat.IsAuth(first) || ctx.Err() != nil) {
			g.Streams[st.Name] = StreamReport{Report: Report{CursorLag: -1, StartedAt: time.Now()}}
			continue
		}
		rep, err := st.Run(ctx, opts)
		sr := StreamReport{Report: rep, Ran: true}
		if err != nil {
			sr.Error = err.Error()
			if first == nil {
				first = &StreamError{Stream: st.Name, Err: err}
			}
		}
		g.Streams[st.Name] = sr
	}
	return g, first
}
