package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// Run executes one pass. Cancelling ctx asks the pass to stop: no new batch
// is taken, in-flight requests get up to ShutdownTimeout to finish, and what
// was acknowledged is recorded. The returned error is a *PassError, or
// ErrInterrupted.
func (s *Syncer) Run(ctx context.Context, opts Options) (rep Report, err error) {
	rep.StartedAt = s.now()
	rep.CursorLag = -1 // unknown until the database clock is read
	defer func() { rep.Duration = s.now().Sub(rep.StartedAt) }()
	fail := func(stage Stage, err error) (Report, error) {
		if ctx.Err() != nil {
			return rep, ErrInterrupted
		}
		return rep, &PassError{Stage: stage, Err: err}
	}

	// Where to start: the checkpoint, unless a full pass starts now. One
	// that started earlier and did not complete goes on from the checkpoint.
	mode, err := s.store.FullPass(ctx)
	if err != nil {
		return fail(StageState, err)
	}
	starting := ""
	switch {
	case opts.Resync:
		starting = state.FullResync
	case opts.Rescan && mode == state.FullResync:
		s.log.Info("a resync is in progress and carries on: it sends every group, which covers the rescan")
	case opts.Rescan:
		starting = state.FullRescan
	}
	if starting != "" {
		mode = starting
	}
	rep.Resync, rep.Rescan = mode == state.FullResync, mode == state.FullRescan
	if err := s.checkFingerprint(ctx, &rep); err != nil {
		return fail(StageState, err)
	}
	var after *source.Position
	if starting == "" {
		cp, err := s.store.Checkpoint(ctx)
		if err != nil {
			return fail(StageState, err)
		}
		rep.Checkpoint = cp
		if cp != nil {
			after = new(source.Position)
			if err := json.Unmarshal(cp, after); err != nil {
				return fail(StageState, fmt.Errorf("checkpoint %s is unreadable: %w (run `cometsync once --resync` to start over)", cp, err))
			}
		}
	}
	if after == nil && s.cfg.Start != nil {
		after = &source.Position{Cursor: *s.cfg.Start}
	}
	upper, err := s.src.UpperBound(ctx)
	if err != nil {
		return fail(StageSource, err)
	}
	beyond := s.checkRange(ctx, upper, &rep)
	// until is the upper bound of the last pass that completed, for the
	// cursor lag of this one if it does not.
	var until *source.Value
	if raw, err := s.store.SyncedUntil(ctx); err != nil {
		return fail(StageState, err)
	} else if raw != nil {
		until = new(source.Value)
		if json.Unmarshal(raw, until) != nil {
			until = nil
		}
	}
	// A pass with nothing to send would never learn that the key was
	// revoked or the app is gone, and report success forever: ask first.
	if err := s.sink.Ping(ctx); err != nil {
		rep.CursorLag = s.cursorLag(rep, false, upper, until)
		return fail(StageAPI, err)
	}
	// A full pass forgets the checkpoint only once the source and the API
	// answered: one that cannot start leaves the state as it was.
	if starting != "" {
		if err := s.store.StartFullPass(ctx, starting); err != nil {
			return fail(StageState, err)
		}
	}
	p, err := s.newPass(ctx, opts, &rep)
	if err != nil {
		return fail(StageState, err)
	}
	p.resync, p.until = rep.Resync, until

	rep.ToGo = -1
	if c, ok := s.src.(counter); ok && s.Progress != nil {
		if n, err := c.Count(ctx, after, upper); err == nil {
			rep.ToGo = n
		} else {
			s.log.Warn("could not count the rows to go; progress will show no ETA", zap.Error(err))
		}
	}

	// A first backfill (nothing delivered yet) lets the state append and
	// index once at the end; see state.Store.BeginBulkLoad. The index is
	// built even when the pass fails or is interrupted.
	// The rows to go are the rows up to upper when there is no checkpoint.
	counted := int64(-1)
	if after == nil {
		counted = rep.ToGo
	}
	bulk, bulkErr := s.beginBulkLoad(ctx, upper, counted)
	if bulkErr != nil {
		return fail(StageState, bulkErr)
	}
	if bulk {
		defer func() {
			if endErr := s.store.EndBulkLoad(context.WithoutCancel(ctx)); endErr != nil && err == nil {
				rep, err = fail(StageState, endErr)
			}
		}()
	}

	if s.bulkDups != nil {
		p.dupGUIDs, p.bulk, p.keepClaims = s.bulkDups, true, true
		s.bulkDups = nil
	}
	runErr := p.finish(ctx, p.run(ctx, after, upper))
	rep.CursorLag = s.cursorLag(rep, runErr == nil, upper, until)
	if runErr != nil {
		return rep, runErr
	}
	raw, err := json.Marshal(upper)
	if err == nil {
		err = s.store.SetSyncedUntil(ctx, raw)
	}
	if err != nil {
		return fail(StageState, err)
	}
	if mode != "" {
		// Every group now follows the current query and mapping: a resync
		// sent them all, a rescan every one whose object differs.
		if err := s.store.FinishFullPass(ctx); err != nil {
			return fail(StageState, err)
		}
		if err := s.store.SetFingerprint(ctx, s.cfg.Fingerprint); err != nil {
			return fail(StageState, err)
		}
		rep.FingerprintChanged = false
	}
	if ie := p.tooManyInvalid(); ie != nil {
		s.log.Error("most rows of this pass are invalid: check the query and the mapping", zap.Error(ie))
		return rep, &PassError{Stage: StageMapping, Err: ie}
	}
	if beyond != nil && p.cursorRead == 0 {
		// Nothing read, and most of the table is out of reach: a pass
		// that "succeeds" like this would do so forever.
		return rep, &PassError{Stage: StageCursor, Err: beyond}
	}
	return rep, nil
}

// newPass starts a pass with what it needs of the state besides the rows:
// the row errors, and whether the brake held the last pass's deletes.
func (s *Syncer) newPass(ctx context.Context, opts Options, rep *Report) (*pass, error) {
	errKeys, err := s.store.ErrorKeys(ctx)
	if err != nil {
		return nil, err
	}
	wasHeld, err := s.store.HeldDeletes(ctx)
	if err != nil {
		return nil, err
	}
	p := &pass{s: s, opts: opts, rep: rep, errKeys: errKeys, wasHeld: wasHeld, retried: map[string]bool{},
		claims: map[string]string{}, invalidBy: map[string]int{}, invalidExample: map[string]map[string]int{},
		updates: s.updateSlots()}
	p.holdSeq.Store(noHold)
	return p, nil
}

// finish ends a pass whose reading and delivery ended with runErr: it waits
// for the turn of its deletes (RunStreams makes them after every stream's
// upserts, in reverse order), makes them, and returns nil, a *PassError or
// ErrInterrupted.
func (p *pass) finish(ctx context.Context, runErr error) error {
	runErr = p.opts.gate.wait(ctx, runErr)
	if runErr == nil {
		runErr = p.finishDeletes(ctx)
	}
	if runErr == nil {
		return nil
	}
	var pe *PassError
	switch {
	case errors.As(runErr, &pe) && ctx.Err() == nil:
		return pe
	case ctx.Err() != nil:
		return ErrInterrupted
	}
	return &PassError{Stage: StageState, Err: runErr}
}

// aheadMargin is how far past the database clock the newest cursor may be
// (clock skew, a write in flight) before rows count as out of reach.
const aheadMargin = time.Minute

// rangeChecker is what a Source offers to compare its cursor values with a
// pass's upper bound (source.Source.CursorRange).
type rangeChecker interface {
	CursorRange(ctx context.Context, upper source.Value) (source.CursorRange, error)
}

// checkRange counts the rows whose cursor lies beyond the pass's upper
// bound, which the pass never reads, into rep, and returns a
// *BeyondBoundError when they are all or most of the table.
func (s *Syncer) checkRange(ctx context.Context, upper source.Value, rep *Report) *BeyondBoundError {
	rc, ok := s.src.(rangeChecker)
	if !ok {
		return nil
	}
	r, err := rc.CursorRange(ctx, upper)
	if err != nil {
		s.log.Warn("could not compare the cursor's values with the upper bound", zap.Error(err))
		return nil
	}
	rep.Beyond = r.Beyond
	// Rows within the lag (after the bound, not after the clock) are a
	// normal young table; most rows past the clock itself are not.
	if !r.MostlyBeyond() {
		return nil
	}
	if d, ok := source.Behind(r.Max, upper, s.cfg.IntegerUnit); ok && -d <= s.cfg.Lag+aheadMargin {
		return nil
	}
	be := &BeyondBoundError{Range: r, Unit: s.cfg.IntegerUnit}
	rep.MostlyBeyond = true
	s.log.Error("most rows are beyond this pass's upper bound and are never read", zap.Error(be))
	return be
}

// beginBulkLoad starts the bulk load of a first backfill (see
// state.Store.BeginBulkLoad) when the source can say which guids more than
// one of its rows maps to: while the state bulk loads it knows no guid, so
// it cannot tell a second row of a guid from the first. Without that
// answer the pass keeps the state's index (slower, as correct). counted is
// how many rows the source has up to upper, when the pass counted them
// already (-1 when not): it sizes findSharedKeys's filter.
func (s *Syncer) beginBulkLoad(ctx context.Context, upper source.Value, counted int64) (bool, error) {
	kl, ok := s.src.(boundedKeyLister)
	if !ok {
		return false, nil
	}
	bulk, err := s.store.BeginBulkLoad(ctx)
	if err != nil || !bulk {
		return false, err
	}
	if counted < 0 {
		counted, err = kl.Count(ctx, nil, upper)
	}
	var dups *sharedKeys
	if err == nil {
		dups, err = findSharedKeys(ctx, kl, s.entity.KeyColumns(), upper, counted, s.entity.JoinKey)
	}
	if err != nil {
		s.log.Warn("could not list the source's keys to find the ones two rows share; the first backfill keeps the state's index (slower)", zap.Error(err))
		return false, s.store.EndBulkLoad(ctx)
	}
	s.bulkDups = dups
	return true, nil
}

// tooManyInvalid is the InvalidRowsError of a pass whose rows read by the
// cursor were mostly invalid, or nil.
func (p *pass) tooManyInvalid() *InvalidRowsError {
	max := p.s.cfg.MaxInvalidPercent
	if max >= 100 || p.cursorInvalid < MinInvalidRows || p.cursorInvalid*100 <= max*p.cursorRead {
		return nil
	}
	field, _ := mostCommon(p.invalidBy)
	example, _ := mostCommon(p.invalidExample[field])
	return &InvalidRowsError{Invalid: p.cursorInvalid, Read: p.cursorRead, Field: field, Example: example, MaxPercent: max}
}

// cursorLag is how far behind the database clock the synced data is. A
// complete pass has read everything up to the upper bound (clock - lag).
//
// After an incomplete pass everything is delivered up to the later of two
// points: the checkpoint, and the upper bound of the last pass that
// completed (on a quiet table the checkpoint's row may be days old although
// nothing is missing; during a resync the checkpoint starts again from the
// beginning). -1 when neither is known.
func (s *Syncer) cursorLag(rep Report, complete bool, upper source.Value, until *source.Value) time.Duration {
	if complete {
		return s.cfg.Lag
	}
	lag := time.Duration(-1)
	behind := func(v source.Value) {
		if d, ok := source.Behind(v, upper, s.cfg.IntegerUnit); ok {
			d = max(d, 0) + s.cfg.Lag
			if lag < 0 || d < lag {
				lag = d
			}
		}
	}
	var cp source.Position
	if rep.Checkpoint != nil && json.Unmarshal(rep.Checkpoint, &cp) == nil {
		behind(cp.Cursor)
	}
	if until != nil {
		behind(*until)
	}
	return lag
}

// checkFingerprint records the fingerprint on the first pass and reports
// a change afterwards (until a full pass brings every group up to date).
func (s *Syncer) checkFingerprint(ctx context.Context, rep *Report) error {
	if s.cfg.Fingerprint == "" {
		return nil
	}
	old, err := s.store.Fingerprint(ctx)
	if err != nil {
		return err
	}
	switch {
	case old == "":
		return s.store.SetFingerprint(ctx, s.cfg.Fingerprint)
	case old != "" && old != s.cfg.Fingerprint:
		rep.FingerprintChanged = true
		s.log.Warn("the query or the mapping changed since the last full sync: groups not changed since then still follow the old mapping; run `cometsync once --rescan` to send the groups whose object changed (or --resync to send every group)")
	}
	return nil
}
