package syncer

import (
	"context"

	"github.com/cometsync/cometsync/internal/source"
)

// RunKeys is a pass over the rows with these keys (tiebreaker values), as
// a feed of changes names them (the binlog: each row event gives a key).
// Each row is re-read through the stream's query, so joins and the
// mapping apply as in a cursor pass, then diffed and delivered the same
// way; a row the query no longer returns was deleted, and what it
// delivered is deleted, under the brake. With retry, the rows of the error
// store are read again first. The checkpoint does not move: the feed keeps
// its own position, and moves it once RunKeys returns nil.
func (s *Syncer) RunKeys(ctx context.Context, keys []source.Value, retry bool, opts Options) (rep Report, err error) {
	rep.StartedAt = s.now()
	rep.CursorLag = -1
	defer func() { rep.Duration = s.now().Sub(rep.StartedAt) }()
	fail := func(stage Stage, err error) (Report, error) {
		if ctx.Err() != nil {
			return rep, ErrInterrupted
		}
		return rep, &PassError{Stage: stage, Err: err}
	}
	p, err := s.newPass(ctx, opts, &rep)
	if err != nil {
		return fail(StageState, err)
	}
	if keys == nil {
		keys = []source.Value{}
	}
	p.keys, p.retryFirst = keys, retry
	return rep, p.finish(ctx, p.run(ctx, nil, source.Value{}))
}
