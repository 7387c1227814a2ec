package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/state"
)

// DryRun makes a stream's parts send and record nothing: the entity prints
// every object it would import or update to w, as JSON lines, and answers
// as CometChat would on success; the sink's key check succeeds; the store
// reads the real state and keeps what the pass would write in memory, for
// the rest of the pass only (so that a key delivered twice is still told
// apart). A pass over them is a pass like any other.
func DryRun(e Entity, st Store, w io.Writer, log *zap.Logger) (Entity, Sink, Store) {
	out := &dryOut{enc: json.NewEncoder(w)}
	return &dryEntity{Entity: e, out: out}, drySink{}, &dryStore{Store: st, log: log, known: map[string]state.Delivered{}}
}

// dryOut serializes the lines the workers print.
type dryOut struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *dryOut) print(obj Object) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(obj.Value); err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	return nil
}

// dryEntity prints instead of sending; mapping and keys are the entity's.
type dryEntity struct {
	Entity
	out *dryOut
}

func (e *dryEntity) Import(_ context.Context, objs []Object) (map[string]cometchat.RowResult, error) {
	res := make(map[string]cometchat.RowResult, len(objs))
	for _, o := range objs {
		if err := e.out.print(o); err != nil {
			return nil, err
		}
		res[o.Key] = cometchat.RowResult{OK: true}
	}
	return res, nil
}

func (e *dryEntity) Update(_ context.Context, obj Object, _ *state.Delivered) error {
	return e.out.print(obj)
}

// Delete prints the delete it would make: {"delete": key}.
func (e *dryEntity) Delete(_ context.Context, key string) (bool, error) {
	return false, e.out.print(Object{Value: map[string]string{"delete": key}})
}

// drySink asks CometChat nothing: a dry run needs no key.
type drySink struct{}

func (drySink) Ping(context.Context) error { return nil }

// dryStore reads the state and writes nothing to it: the deliveries of
// the pass are kept in memory, the rest of its writes dropped.
type dryStore struct {
	Store
	log   *zap.Logger
	mu    sync.Mutex
	known map[string]state.Delivered
}

func (s *dryStore) Known(ctx context.Context, keys []string) (map[string]state.Delivered, error) {
	out, err := s.Store.Known(ctx, keys)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if d, ok := s.known[k]; ok {
			out[k] = d
		}
	}
	return out, nil
}

func (s *dryStore) Apply(_ context.Context, c state.Changes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range c.Delivered {
		s.known[d.Key] = d
	}
	for _, f := range c.Failed {
		s.log.Warn("row error", zap.String("key", f.RowKey), zap.String("id", f.GUID), zap.String("code", f.Code), zap.String("error", f.Message))
	}
	return nil
}

func (s *dryStore) SetFingerprint(context.Context, string) error          { return nil }
func (s *dryStore) StartFullPass(context.Context, string) error           { return nil }
func (s *dryStore) FinishFullPass(context.Context) error                  { return nil }
func (s *dryStore) SetSyncedUntil(context.Context, json.RawMessage) error { return nil }
func (s *dryStore) BeginBulkLoad(context.Context) (bool, error)           { return false, nil }
func (s *dryStore) EndBulkLoad(context.Context) error                     { return nil }
func (s *dryStore) SetHeldDeletes(context.Context, bool) error            { return nil }

// Keys and KeptKeys let a dry run reconcile: they read the real state.
func (s *dryStore) Keys(ctx context.Context, fn func(key string) error) error {
	ks, ok := s.Store.(keyStore)
	if !ok {
		return errors.New("this state cannot list its keys for a reconcile")
	}
	return ks.Keys(ctx, fn)
}

func (s *dryStore) KeptKeys(ctx context.Context) (map[string]bool, error) {
	ks, ok := s.Store.(keyStore)
	if !ok {
		return nil, errors.New("this state cannot list its keys for a reconcile")
	}
	return ks.KeptKeys(ctx)
}
