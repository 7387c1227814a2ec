package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// noHold is pass.holdSeq when no batch holds a delete.
const noHold = math.MaxInt64

// deletedRowHash is the content hash of a row marked deleted whose delete
// failed: every such row is the same content (a key to delete).
const deletedRowHash = "\x00deleted"

// heldShown is how many keys of held-back deletes a pass names.
const heldShown = 20

// deleteItem is an object to delete from CometChat.
type deleteItem struct {
	key      string       // the object's key in CometChat
	rowKey   string       // the source row that said so, "" for none
	keyValue source.Value // the row's tiebreaker as read, to retry it
	hadErr   bool         // the row is in the error store
	// oldKey marks the key a row owned before its key changed: the row
	// lives on under its new key, so the delete answers for the row only
	// when it fails.
	oldKey bool
}

// classifyDeleted decides what a row marked deleted does: delete the
// object this row delivered, or nothing (never delivered, already
// deactivated, or owned by another row: only what this row delivered is
// ever deleted).
func (p *pass) classifyDeleted(b *batch, m *mappedRow, known map[string]state.Delivered, hadErr bool) {
	key := m.obj.Key
	d, isKnown := known[key]
	owner := p.owner(key, d)
	if !isKnown || d.Hash == "" || (owner != "" && owner != m.key) {
		if hadErr {
			b.changes.Cleared = append(b.changes.Cleared, m.key)
			b.done.Cleared++
		}
		return
	}
	b.holdsDelete = true
	p.addDelete(deleteItem{key: key, rowKey: m.key, keyValue: m.keyValue, hadErr: hadErr})
}

// addDelete records a delete for the end of the pass. Past what the brake
// allows by count, only the count grows (the pass will not make them).
// Without a limit by count (MaxPerPass 0) every delete is kept: the share
// alone may let them all through.
func (p *pass) addDelete(d deleteItem) {
	p.deleteN++
	if l := p.s.cfg.Deletes.MaxPerPass; p.opts.AllowMassDelete || l == 0 || len(p.deletes) <= max(l, heldShown) {
		p.deletes = append(p.deletes, d)
	}
}

// tooManyDeletes is the brake: more than MaxPerPass deletes, or more than
// MaxPercent of the delivered objects when that is more than AlwaysAllow.
func tooManyDeletes(n, delivered int, l DeleteLimits) bool {
	if l.MaxPerPass > 0 && n > l.MaxPerPass {
		return true
	}
	return l.MaxPercent > 0 && n > l.AlwaysAllow && n*100 > l.MaxPercent*delivered
}

// finishDeletes makes the pass's deletes, once its upserts are recorded,
// and moves the checkpoint to where they held it. The brake holds every
// delete of the stream back when there are too many: the pass then fails
// with a *DeletesHeldError and the checkpoint stays before the first, so
// the next pass sees them again.
func (p *pass) finishDeletes(ctx context.Context) error {
	s := p.s
	if p.deleteN == 0 {
		if p.wasHeld {
			if err := s.store.SetHeldDeletes(ctx, false); err != nil {
				return &PassError{Stage: StageState, Err: err}
			}
		}
		return nil
	}
	delivered, err := s.store.DeliveredCount(ctx)
	if err != nil {
		return &PassError{Stage: StageState, Err: err}
	}
	if !p.opts.AllowMassDelete && tooManyDeletes(p.deleteN, delivered, s.cfg.Deletes) {
		if err := s.store.SetHeldDeletes(ctx, true); err != nil {
			return &PassError{Stage: StageState, Err: err}
		}
		return p.holdDeletes(delivered)
	}
	var ch state.Changes
	var done Report
	if err := p.sendDeletes(ctx, p.deletes, &ch, &done); err != nil {
		return err
	}
	if p.lastEnd != nil {
		raw, err := json.Marshal(p.lastEnd)
		if err != nil {
			return fmt.Errorf("encode checkpoint: %w", err)
		}
		ch.Checkpoint = raw
	}
	if err := s.store.Apply(ctx, ch); err != nil {
		return &PassError{Stage: StageState, Err: err}
	}
	if p.wasHeld {
		if err := s.store.SetHeldDeletes(ctx, false); err != nil {
			return &PassError{Stage: StageState, Err: err}
		}
	}
	p.rep.add(done)
	if ch.Checkpoint != nil {
		p.rep.Checkpoint = ch.Checkpoint
	}
	return nil
}

// holdDeletes reports the pass's deletes as held back by the brake.
func (p *pass) holdDeletes(delivered int) error {
	first := make([]string, 0, heldShown)
	for _, d := range p.deletes[:min(len(p.deletes), heldShown)] {
		first = append(first, d.key)
	}
	p.rep.DeletesHeld, p.rep.HeldKeys = p.deleteN, first
	he := &DeletesHeldError{N: p.deleteN, Delivered: delivered, Limits: p.s.cfg.Deletes, First: first}
	p.s.log.Error("deletes held back by the brake", zap.Error(he))
	return &PassError{Stage: StageDeletes, Err: he}
}

// sendDeletes deletes the objects, a few at a time, and writes what the
// state must change into ch and the figures into done. An answer that the
// object does not exist is success; another refusal is a row error,
// retried on later passes; an error that leaves the delete unaccounted for
// (retries exhausted, refused credentials) fails the pass.
func (p *pass) sendDeletes(ctx context.Context, items []deleteItem, ch *state.Changes, done *Report) error {
	type outcome struct {
		kept bool
		err  error
	}
	out := make([]outcome, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(p.s.cfg.Concurrency, 1) * 2)
	for i, d := range items {
		g.Go(func() error {
			kept, err := p.s.entity.Delete(gctx, d.key)
			var ae *cometchat.APIError
			if err != nil && (!errors.As(err, &ae) || ae.Retryable() || ae.Auth()) {
				return err
			}
			out[i] = outcome{kept: kept, err: err}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return &PassError{Stage: StageAPI, Err: err}
	}
	for i, d := range items {
		var ae *cometchat.APIError
		switch {
		case out[i].err != nil && !(errors.As(out[i].err, &ae) && ae.NotFound()):
			errors.As(out[i].err, &ae)
			done.Rejected++
			done.DeleteFails++
			if !d.hadErr {
				done.NewRejected++
			}
			msg := "delete: " + ae.Error()
			if d.oldKey {
				msg = fmt.Sprintf("delete of %q, this row's key before it changed: %s", d.key, ae.Error())
			}
			ch.Failed = append(ch.Failed, state.Failure{RowKey: d.rowKey, KeyJSON: keyJSON(d.keyValue), GUID: d.key,
				Code: ae.Code, Message: msg, RowHash: deletedRowHash})
			continue
		case out[i].kept && out[i].err == nil:
			// Deactivated, not erased: remembered without a hash, so that
			// the row coming back reactivates it.
			ch.Delivered = append(ch.Delivered, state.Delivered{Key: d.key, RowKey: d.rowKey})
		default:
			ch.Forgotten = append(ch.Forgotten, d.key)
		}
		done.Deleted++
		if d.hadErr {
			ch.Cleared = append(ch.Cleared, d.rowKey)
			done.Cleared++
		}
	}
	return nil
}
