package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// collector records each batch's outcome and moves the checkpoint over the
// contiguous prefix of finished batches. Outcomes that arrive close
// together are written in one transaction (a commit costs more than a
// batch's rows), never later than commitDelay after they came.
type collector struct {
	p     *pass
	ctx   context.Context // outlives the pass's by the shutdown timeout
	upper source.Value
	stop  func() // stops the reader and the workers taking new batches

	finished map[int]*batch // done, waiting for the batches before them
	next     int            // the sequence number the checkpoint waits for
	err      error          // the first batch or state error

	pending      state.Changes
	pendingDone  Report
	pendingClaim []string
	pendingN     int
	lastProgress time.Time
}

// run collects until results is closed; its error is one that leaves the
// pass unaccountable (the batch errors are in c.err).
func (c *collector) run(results <-chan result) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var r result
		var ok bool
		if c.pendingN == 0 {
			r, ok = <-results
		} else {
			timer.Reset(commitDelay)
			select {
			case r, ok = <-results:
			case <-timer.C:
				c.flush()
				continue
			}
		}
		if !ok {
			c.flush()
			return nil
		}
		if r.err != nil {
			c.fail(r.err)
			continue
		}
		if err := c.add(r.b); err != nil {
			return err
		}
		if c.pendingN >= commitEvery {
			c.flush()
		}
	}
}

func (c *collector) fail(err error) {
	if c.err == nil {
		c.err = err
		c.stop()
	}
}

// add takes a finished batch into the pending group commit, with the
// checkpoint of the contiguous prefix it completes.
func (c *collector) add(b *batch) error {
	c.finished[b.seq] = b
	var cp *source.Position
	for {
		d, ok := c.finished[c.next]
		if !ok {
			break
		}
		delete(c.finished, c.next)
		c.next++
		if d.end != nil {
			c.p.lastEnd = d.end
			if int64(d.seq) < c.p.holdSeq.Load() {
				cp = d.end
			}
		}
	}
	c.pending.Delivered = append(c.pending.Delivered, b.changes.Delivered...)
	c.pending.Failed = append(c.pending.Failed, b.changes.Failed...)
	c.pending.Cleared = append(c.pending.Cleared, b.changes.Cleared...)
	c.pendingClaim = append(c.pendingClaim, b.claimed...)
	if cp != nil {
		raw, err := json.Marshal(cp)
		if err != nil {
			return fmt.Errorf("encode checkpoint: %w", err)
		}
		c.pending.Checkpoint = raw
	}
	c.pendingDone.add(b.done)
	c.pendingN++
	return nil
}

// flush writes the pending outcomes in one transaction.
func (c *collector) flush() {
	if c.pendingN == 0 {
		return
	}
	p, s := c.p, c.p.s
	ch, done, claimed := c.pending, c.pendingDone, c.pendingClaim
	c.pending, c.pendingDone, c.pendingN, c.pendingClaim = state.Changes{}, Report{}, 0, nil
	// In key order the upserts walk the index instead of jumping around
	// it: fewer pages touched per transaction.
	slices.SortFunc(ch.Delivered, func(a, b state.Delivered) int { return strings.Compare(a.Key, b.Key) })
	p.claimMu.Lock()
	err := s.store.Apply(c.ctx, ch)
	if err == nil && !p.keepClaims {
		// The state knows these owners now (or the rows failed and own
		// nothing).
		for _, g := range claimed {
			delete(p.claims, g)
		}
	}
	p.claimMu.Unlock()
	if err != nil {
		c.fail(&PassError{Stage: StageState, Err: err})
		return
	}
	p.rep.add(done)
	if ch.Checkpoint != nil {
		p.rep.Checkpoint = ch.Checkpoint
	}
	if s.Progress != nil && s.now().Sub(c.lastProgress) >= s.ProgressEvery {
		c.lastProgress = s.now()
		p.rep.CursorLag = s.cursorLag(*p.rep, false, c.upper, p.until)
		s.Progress(*p.rep)
	}
}
