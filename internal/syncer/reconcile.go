package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/state"
)

// keyLister is what a Source offers for a reconcile: every key of its
// query, in byte order (source.Source.Keys).
type keyLister interface {
	Keys(ctx context.Context, columns []string, sep string, fn func(parts []string) error) error
}

// keyStore is what a Store offers for a reconcile: every key it holds as
// delivered, in byte order (state.Stream.Keys), and those kept
// deactivated.
type keyStore interface {
	Keys(ctx context.Context, fn func(key string) error) error
	KeptKeys(ctx context.Context) (map[string]bool, error)
}

// ErrEmptySource is a reconcile whose query returned no row at all: far
// more often a broken query than an empty product, so nothing is deleted.
var ErrEmptySource = errors.New("the query returned no rows at all, so the reconcile deleted nothing " +
	"(an empty result is far more often a broken query or an emptied database than an empty product); " +
	"if every object really is gone, delete them in CometChat directly")

// Reconcile finds the objects the state delivered that the source no longer
// has (rows deleted from the table) and deletes them from CometChat, under
// the same brake as soft deletes. It merges two sorted key lists (the
// query's keys and the state's), so its memory does not grow with the
// table; only the keys to delete are held, up to what the brake allows.
// Only keys cometsync itself delivered are ever deleted.
func (s *Syncer) Reconcile(ctx context.Context, opts Options) (rep Report, err error) {
	rep.StartedAt = s.now()
	rep.CursorLag = -1
	defer func() { rep.Duration = s.now().Sub(rep.StartedAt) }()
	fail := func(stage Stage, err error) (Report, error) {
		if ctx.Err() != nil {
			return rep, ErrInterrupted
		}
		return rep, &PassError{Stage: stage, Err: err}
	}
	kl, ok1 := s.src.(keyLister)
	ks, ok2 := s.store.(keyStore)
	if !ok1 || !ok2 {
		return fail(StageSource, errors.New("this source or state cannot list its keys for a reconcile"))
	}
	if err := s.sink.Ping(ctx); err != nil {
		return fail(StageAPI, err)
	}
	// The separator of a key of several columns, as JoinKey puts it.
	sep := ""
	if n := len(s.entity.KeyColumns()); n > 1 {
		sep = s.entity.JoinKey(make([]string, 2))
	}
	p := &pass{s: s, opts: opts, rep: &rep, updates: s.updateSlots()}
	p.holdSeq.Store(noHold)

	// The merge: the state's keys are read in one statement while the
	// source's arrive in order; each state key the source does not reach
	// is gone.
	type srcKey struct {
		key  string
		done bool
	}
	srcKeys := make(chan srcKey, 1024)
	listCtx, stopList := context.WithCancel(ctx)
	defer stopList()
	var listErr error
	rows := 0
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		defer close(srcKeys)
		prev := ""
		listErr = kl.Keys(listCtx, s.entity.KeyColumns(), sep, func(parts []string) error {
			for i, p := range parts {
				parts[i] = strings.ToLower(strings.TrimSpace(p))
			}
			k := s.entity.JoinKey(parts)
			if rows > 0 && k < prev {
				return fmt.Errorf("the database returned key %q after %q: its order is not the byte order of the keys, so a merge would delete live objects; nothing was deleted", k, prev)
			}
			rows++
			prev = k
			select {
			case srcKeys <- srcKey{key: k}:
				return nil
			case <-listCtx.Done():
				return listCtx.Err()
			}
		})
	}()
	kept, err := ks.KeptKeys(ctx)
	if err != nil {
		stopList()
		for range srcKeys {
		}
		<-listed
		return fail(StageState, err)
	}
	var cur srcKey
	have := false
	next := func() {
		cur, have = <-srcKeys
	}
	next()
	stateErr := ks.Keys(ctx, func(key string) error {
		for have && cur.key < key {
			next()
		}
		if have && cur.key == key {
			return nil
		}
		if kept[key] {
			return nil // deactivated already
		}
		p.addDelete(deleteItem{key: key})
		return nil
	})
	stopList()
	for range srcKeys {
	}
	<-listed
	if stateErr != nil {
		return fail(StageState, stateErr)
	}
	if listErr != nil && !errors.Is(listErr, context.Canceled) {
		return fail(StageSource, listErr)
	}
	if err := p.ownersOfDeletes(ctx); err != nil {
		return fail(StageState, err)
	}
	if rows == 0 {
		if p.deleteN > 0 {
			s.log.Warn("reconcile: the query returned no rows", zap.Int("deletes_not_made", p.deleteN))
		}
		return fail(StageSource, ErrEmptySource)
	}
	if err := p.finishReconcile(ctx); err != nil {
		var pe *PassError
		if errors.As(err, &pe) {
			return rep, pe
		}
		return fail(StageState, err)
	}
	return rep, nil
}

// ownersOfDeletes fills in the row that delivered each delete kept in
// memory (at most what the brake lets through), once the merge is done:
// a deactivated user remembers its row, to be reactivated if it returns.
func (p *pass) ownersOfDeletes(ctx context.Context) error {
	if len(p.deletes) == 0 {
		return nil
	}
	keys := make([]string, len(p.deletes))
	for i, d := range p.deletes {
		keys[i] = d.key
	}
	known, err := p.s.store.Known(ctx, keys)
	if err != nil {
		return err
	}
	for i := range p.deletes {
		p.deletes[i].rowKey = known[p.deletes[i].key].RowKey
	}
	return nil
}

// finishReconcile makes a reconcile's deletes under the brake. The rows
// they came from are gone, so a delete that CometChat refuses stays in the
// state (and the error store) for the next reconcile.
func (p *pass) finishReconcile(ctx context.Context) error {
	if p.deleteN == 0 {
		return nil
	}
	s := p.s
	delivered, err := s.store.DeliveredCount(ctx)
	if err != nil {
		return &PassError{Stage: StageState, Err: err}
	}
	if !p.opts.AllowMassDelete && tooManyDeletes(p.deleteN, delivered, s.cfg.Deletes) {
		return p.holdDeletes(delivered)
	}
	// In chunks, so that an allowed mass delete records as it goes.
	const chunk = 500
	for start := 0; start < len(p.deletes); start += chunk {
		items := p.deletes[start:min(start+chunk, len(p.deletes))]
		for i := range items {
			if items[i].rowKey == "" {
				items[i].rowKey = "reconcile:" + items[i].key
			}
		}
		var ch state.Changes
		var done Report
		if err := p.sendDeletes(ctx, items, &ch, &done); err != nil {
			return err
		}
		if err := s.store.Apply(ctx, ch); err != nil {
			return &PassError{Stage: StageState, Err: err}
		}
		p.rep.add(done)
	}
	return nil
}

// ReconcileStreams reconciles each stream, in the order deletes must go:
// members first, then groups, then users (so that a group is not deleted
// under members being added, nor a user deactivated while still being
// added somewhere). streams is in pass order, as for RunStreams.
func ReconcileStreams(ctx context.Context, streams []Stream, opts Options) (GraphReport, error) {
	g := GraphReport{Streams: map[string]StreamReport{}}
	var first error
	for i := len(streams) - 1; i >= 0; i-- {
		st := streams[i]
		g.Names = append(g.Names, st.Name)
		if first != nil && (errors.Is(first, ErrInterrupted) || ctx.Err() != nil) {
			g.Streams[st.Name] = StreamReport{Report: Report{CursorLag: -1, StartedAt: time.Now()}}
			continue
		}
		rep, err := st.Reconcile(ctx, opts)
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
