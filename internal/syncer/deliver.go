package syncer

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/state"
)

// deliver upserts one batch: import what the state does not know (or
// everything on a resync), update what already exists, import what an
// update did not find. Per-row outcomes land in b.changes; an error means
// the batch as a whole could not be delivered.
func (p *pass) deliver(ctx context.Context, b *batch) error {
	var toImport, toUpdate []*item
	for i := range b.items {
		it := &b.items[i]
		// The state is a hint: an update of a group CometChat does not
		// have is answered "not found" and imported. A resync too starts
		// with the update: one call per group it knows, not two.
		if it.known != nil {
			toUpdate = append(toUpdate, it)
		} else {
			toImport = append(toImport, it)
		}
	}
	exists, err := p.importItems(ctx, b, toImport)
	if err != nil {
		return err
	}
	toUpdate = append(toUpdate, exists...)
	missing, err := p.updateItems(ctx, b, toUpdate)
	if err != nil {
		return err
	}
	// Updated guids CometChat did not have: import them, once. A second
	// "already exists" means something else is changing the group.
	again, err := p.importItems(ctx, b, missing)
	if err != nil {
		return err
	}
	for _, it := range again {
		p.reject(b, it, "ERR_ALREADY_EXISTS", "CometChat answered not found to the update and already exists to the import; is something else changing it? retried next pass")
	}
	return nil
}

// importItems imports items and returns those CometChat already has. A
// request refused as a whole for a reason that is not transient is split
// in halves until the row at fault is alone, so one bad row never holds back
// the others.
func (p *pass) importItems(ctx context.Context, b *batch, items []*item) (exists []*item, err error) {
	if len(items) == 0 {
		return nil, nil
	}
	objs := make([]Object, len(items))
	for i, it := range items {
		objs[i] = it.obj
	}
	res, err := p.s.entity.Import(ctx, objs)
	if err != nil {
		var ae *cometchat.APIError
		if !errors.As(err, &ae) || ae.Retryable() || ae.Auth() {
			return nil, &PassError{Stage: StageAPI, Err: err}
		}
		if len(items) == 1 {
			p.reject(b, items[0], ae.Code, ae.Error())
			return nil, nil
		}
		half := len(items) / 2
		e1, err := p.importItems(ctx, b, items[:half])
		if err != nil {
			return nil, err
		}
		e2, err := p.importItems(ctx, b, items[half:])
		return append(e1, e2...), err
	}
	for _, it := range items {
		r := res[it.obj.Key]
		switch {
		case r.OK:
			p.delivered(b, it)
			b.done.Imported++
		case r.Exists():
			exists = append(exists, it)
		default:
			p.reject(b, it, r.Code, r.Message)
		}
	}
	return exists, nil
}

// updatesPerBatch is how many update calls (one per object) each of the
// concurrency batches in flight may have running: the pass runs up to
// concurrency × updatesPerBatch at once, across its batches. One small
// batch, as a binlog feed's are, may use them all; a full pass's
// batches share them.
const updatesPerBatch = 8

// updateSlots bounds a pass's update calls in flight.
func (s *Syncer) updateSlots() *semaphore.Weighted {
	return semaphore.NewWeighted(int64(max(s.cfg.Concurrency, 1) * updatesPerBatch))
}

// updateItems updates items in CometChat, as many at a time as the pass's
// updates allow, and returns those CometChat does not have.
func (p *pass) updateItems(ctx context.Context, b *batch, items []*item) (missing []*item, err error) {
	if len(items) == 0 {
		return nil, nil
	}
	outcome := make([]error, len(items))
	g, gctx := errgroup.WithContext(ctx)
	var waitErr error
	for i, it := range items {
		if waitErr = p.updates.Acquire(gctx, 1); waitErr != nil {
			break
		}
		g.Go(func() error {
			defer p.updates.Release(1)
			err := p.s.entity.Update(gctx, it.obj, it.known)
			var ae *cometchat.APIError
			if err != nil && (!errors.As(err, &ae) || ae.Retryable() || ae.Auth()) {
				return err // the batch cannot be accounted for
			}
			outcome[i] = err
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, &PassError{Stage: StageAPI, Err: err}
	}
	if waitErr != nil {
		return nil, waitErr // interrupted
	}
	for i, it := range items {
		var ae *cometchat.APIError
		switch {
		case outcome[i] == nil:
			p.delivered(b, it)
			b.done.Updated++
		case errors.As(outcome[i], &ae) && ae.NotFound():
			missing = append(missing, it)
		default:
			errors.As(outcome[i], &ae)
			p.reject(b, it, ae.Code, ae.Error())
		}
	}
	return missing, nil
}

func (p *pass) delivered(b *batch, it *item) {
	b.changes.Delivered = append(b.changes.Delivered, state.Delivered{Key: it.obj.Key, Hash: it.obj.Hash, Present: it.obj.Present, RowKey: it.key})
	if _, had := p.errKeys[it.key]; had {
		b.changes.Cleared = append(b.changes.Cleared, it.key)
		b.done.Cleared++
	}
}

func (p *pass) reject(b *batch, it *item, code, msg string) {
	if code == "" {
		code = "ERR_UNKNOWN"
	}
	b.done.Rejected++
	if _, had := p.errKeys[it.key]; !had {
		b.done.NewRejected++
	}
	b.changes.Failed = append(b.changes.Failed, state.Failure{
		RowKey: it.key, KeyJSON: keyJSON(it.keyValue), GUID: it.obj.Key, Code: code, Message: msg, RowHash: it.obj.Hash,
	})
}
