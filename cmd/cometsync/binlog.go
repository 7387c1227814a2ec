package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/binlog"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// summaryEvery is how often `run` in binlog mode records and logs what the
// feed did.
const summaryEvery = time.Minute

// retryEvery is how often the binlog feed re-reads the rows of the error
// store (a poll pass does it every pass), events or not; after a batch
// that deleted something (a row whose key another row was waiting for may
// have gone), within retrySoonEvery.
const (
	retryEvery     = time.Minute
	retrySoonEvery = time.Second
)

// feed is binlog mode: a keyset backfill from a recorded binlog position,
// then the row events from that position, each batch's keys re-read
// through the streams' queries by syncer.RunKeys; the position moves at
// transaction boundaries over acknowledged work only.
type feed struct {
	eng  *engine
	cfg  binlog.Config
	opts syncer.Options
	log  *zap.Logger
	// streamOf is the stream of each table name the feed reads.
	streamOf  map[string]string
	lastRetry time.Time
	retrySoon bool
	// mu makes the batches and the retries between them one pass at a
	// time: a Syncer runs one pass at once.
	mu sync.Mutex
	// sum is what the batches since the last summary did, by stream.
	sum     syncer.GraphReport
	batches int
	events  map[string]int // action -> row events since the last summary
	pos     binlog.Position
	// state is the feed's recorded state.
	state state.Feed
	// reconcileDue, when set, tells when to reconcile (reconcile_schedule):
	// between two batches, so that the streams run one pass at a time.
	reconcileDue func(time.Time) bool
}

// newFeed wires the engine's streams to the binlog of source.dsn.
func newFeed(eng *engine, opts syncer.Options) (*feed, error) {
	f := &feed{eng: eng, opts: opts, log: eng.log.Named("binlog"), events: map[string]int{}}
	var streams []config.NamedStream
	for _, sp := range eng.streams {
		streams = append(streams, sp.NamedStream)
	}
	var err error
	if f.cfg, f.streamOf, err = binlogConfig(eng.cfg, streams, f.log); err != nil {
		return nil, err
	}
	f.resetSum()
	return f, nil
}

// binlogConfig is the feed's config for these streams, and the stream of
// each table name.
func binlogConfig(cfg *config.Config, streams []config.NamedStream, log *zap.Logger) (binlog.Config, map[string]string, error) {
	dsn, err := mysql.ParseDSN(cfg.Source.DSN)
	if err != nil {
		return binlog.Config{}, nil, usageErr(fmt.Errorf("config: source.dsn: %w", err))
	}
	bc := binlog.Config{DSN: cfg.Source.DSN, ServerID: uint32(cfg.Source.Binlog.ServerID), Flavor: cfg.Source.Binlog.Flavor, Log: log}
	streamOf := map[string]string{}
	for _, ns := range streams {
		schema, table := dsn.DBName, ns.Table
		if i := strings.IndexByte(table, '.'); i >= 0 {
			schema, table = table[:i], table[i+1:]
		}
		schema, table = strings.Trim(schema, "`"), strings.Trim(table, "`")
		if other, ok := streamOf[table]; ok {
			return binlog.Config{}, nil, usageErr(fmt.Errorf("config: %s.table and %s.table both name %q: each stream needs a table of its own", other, ns.Name, table))
		}
		if schema == "" {
			return binlog.Config{}, nil, usageErr(fmt.Errorf("config: %s.table: %q names no database, and source.dsn has none: write it as database.table", ns.Key, ns.Table))
		}
		streamOf[table] = ns.Name
		bc.Tables = append(bc.Tables, binlog.Table{Schema: schema, Name: table, KeyColumn: ns.Cursor.Tiebreaker})
	}
	return bc, streamOf, nil
}

func (f *feed) resetSum() {
	f.sum = syncer.GraphReport{Streams: map[string]syncer.StreamReport{}}
	for _, st := range f.eng.graph {
		f.sum.Names = append(f.sum.Names, st.Name)
	}
	f.batches = 0
	clear(f.events)
}

// start settles where the feed streams from: the recorded position, after
// the backfill that follows it when that did not complete; with none, the
// server's position now, recorded before the backfill reads anything, so
// that a change made during the backfill is not lost. A recorded position
// the server no longer has is never skipped silently: a rescan of every
// stream (which sends only what differs) covers the gap, then the feed
// streams from the server's position at its start.
func (f *feed) start(ctx context.Context, out io.Writer) (binlog.Position, error) {
	store := f.eng.store
	fs, ok, err := store.Feed(ctx)
	if err != nil {
		return binlog.Position{}, failedErr(err)
	}
	opts := f.opts
	purged := false
	var pos binlog.Position
	if ok {
		if err := json.Unmarshal(fs.Position, &pos); err != nil {
			return binlog.Position{}, failedErr(fmt.Errorf("state: the binlog position %s is unreadable: %w", fs.Position, err))
		}
		exists, err := binlog.Exists(ctx, f.cfg, pos)
		if err != nil {
			return binlog.Position{}, failedErr(fmt.Errorf("binlog: %w", err))
		}
		if !exists {
			f.log.Warn("the server no longer has the binary log from the recorded position (purged): rescanning every stream, then streaming from the server's position now",
				zap.String("position", pos.String()))
			fmt.Fprintf(out, "binlog: the server no longer has the binary log from %s (purged): every stream is rescanned, which sends only what changed, and reconciled, which deletes what vanished\n", pos)
			ok = false
			opts.Rescan = true
			purged = true
		}
	}
	if !ok {
		if pos, err = binlog.Current(ctx, f.cfg); err != nil {
			return binlog.Position{}, failedErr(fmt.Errorf("binlog: %w", err))
		}
		raw, _ := json.Marshal(pos)
		fs = state.Feed{Position: raw, ReconcileDue: purged}
		if err := store.SetFeed(ctx, fs); err != nil {
			return binlog.Position{}, failedErr(err)
		}
	}
	f.pos, f.state = pos, fs
	if fs.Backfilled && !opts.Resync && !opts.Rescan {
		return pos, nil
	}
	f.log.Info("backfill before streaming", zap.String("from", pos.String()), zap.Bool("rescan", opts.Rescan))
	g, runErr := syncer.RunStreams(ctx, f.eng.graph, opts)
	recordPass(f.eng, g, runErr)
	f.eng.observePass(g, runErr)
	printGraph(out, f.eng, g)
	if runErr == nil && fs.ReconcileDue {
		// The deletes in the purged stretch are seen only by comparing keys.
		g, runErr = syncer.ReconcileStreams(ctx, f.eng.graph, opts)
		recordPass(f.eng, g, runErr)
		f.eng.observePass(g, runErr)
		printGraph(out, f.eng, g)
	}
	if runErr != nil {
		return binlog.Position{}, runErr
	}
	f.state.Backfilled, f.state.ReconcileDue = true, false
	if err := store.SetFeed(ctx, f.state); err != nil {
		return binlog.Position{}, failedErr(err)
	}
	return pos, nil
}

// handle delivers one batch of the binlog: each stream's keys, in pass
// order, then the position once CometChat acknowledged all of it.
func (f *feed) handle(ctx context.Context, b binlog.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	retry := f.retryDue()
	keysOf := map[string][]source.Value{}
	var streams []syncer.Stream
	for _, st := range f.eng.graph {
		table := f.tableOf(st.Name)
		raw := b.Keys[table]
		for action, n := range b.Events[table] {
			f.events[action] += n
			if f.eng.metrics != nil {
				f.eng.metrics.BinlogEvents(st.Name, action, n)
			}
		}
		if len(raw) == 0 && !retry {
			continue
		}
		keys := make([]source.Value, 0, len(raw))
		for _, k := range raw {
			v, err := source.ValueOf(k)
			if err != nil {
				f.log.Warn("a row event's key cannot be read; the row is left for the next rescan", zap.String("stream", st.Name), zap.Error(err))
				continue
			}
			keys = append(keys, v)
		}
		keysOf[st.Name] = keys
		streams = append(streams, st)
	}
	// Upserts in pass order, deletes in reverse, as in a pass.
	g, err := syncer.RunGated(ctx, streams, f.opts, func(ctx context.Context, st syncer.Stream, o syncer.Options) (syncer.Report, error) {
		return st.RunKeys(ctx, keysOf[st.Name], retry, o)
	})
	for _, name := range g.Names {
		got := g.Streams[name]
		sr := f.sum.Streams[name]
		sr.Ran = true
		sr.Report.Add(got.Report)
		sr.Duration += got.Duration
		if sr.StartedAt.IsZero() {
			sr.StartedAt = got.StartedAt
		}
		if got.Error != "" {
			sr.Error = got.Error
		}
		f.sum.Streams[name] = sr
		f.retrySoon = f.retrySoon || got.Deleted > 0
	}
	f.eng.observeStreams(g)
	if err != nil {
		return err
	}
	if retry {
		f.lastRetry, f.retrySoon = time.Now(), false
	}
	f.batches++
	if !b.Commit {
		return nil // a slice of a big transaction: the position stays
	}
	raw, err := json.Marshal(b.Position)
	if err != nil {
		return fmt.Errorf("encode the binlog position: %w", err)
	}
	f.pos = b.Position
	f.state.Position = raw
	now := time.Now()
	if !b.EventTime.IsZero() {
		f.state.EventTime, f.state.AckedAt = b.EventTime, now
	}
	if err := f.eng.store.SetFeed(ctx, f.state); err != nil {
		return err
	}
	if f.eng.metrics != nil {
		lag := time.Duration(0)
		if !b.EventTime.IsZero() {
			lag = now.Sub(b.EventTime)
		}
		f.eng.metrics.SetBinlog(b.Position.String(), lag)
	}
	return nil
}

// reconcile runs a reconcile when reconcile_schedule says one is due: it
// finds the rows deleted in ways the binlog does not show (a joined
// table, a change made before the feed's position). A failure is logged;
// the feed goes on.
func (f *feed) reconcile(ctx context.Context) {
	if f.reconcileDue == nil || !f.reconcileDue(time.Now()) {
		return
	}
	g, err := syncer.ReconcileStreams(ctx, f.eng.graph, f.opts)
	recordPass(f.eng, g, err)
	f.eng.observePass(g, err)
	if err != nil && ctx.Err() == nil {
		f.log.Error("reconcile failed; the next one runs as scheduled", zap.Error(passFailure(f.eng.cfg, err)))
	}
}

// retryDue says whether the error store's rows are due to be read again.
func (f *feed) retryDue() bool {
	since := time.Since(f.lastRetry)
	return since >= retryEvery || (f.retrySoon && since >= retrySoonEvery)
}

// retryIdle retries the error store's rows when they are due and no batch
// came to do it: with no events, a row error would wait forever.
func (f *feed) retryIdle(ctx context.Context) error {
	f.mu.Lock()
	due := f.retryDue()
	f.mu.Unlock()
	if !due {
		return nil
	}
	return f.handle(ctx, binlog.Batch{})
}

// tableOf is the table name the stream's events come under.
func (f *feed) tableOf(stream string) string {
	for t, s := range f.streamOf {
		if s == stream {
			return t
		}
	}
	return ""
}

// summary records and logs what the batches since the last summary did.
func (f *feed) summary(runErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.batches == 0 && runErr == nil {
		return
	}
	recordPass(f.eng, f.sum, runErr)
	f.log.Info("binlog summary", zap.Int("batches", f.batches), zap.Any("events", f.events), zap.String("position", f.pos.String()))
	f.resetSum()
}

// catchUp is `once` in binlog mode: the backfill if one is due, then the
// binlog up to the server's position once that is done (so the changes
// made during the backfill are in), then exit.
func (f *feed) catchUp(ctx context.Context, out io.Writer) error {
	from, err := f.start(ctx, out)
	if err != nil {
		return err
	}
	until, err := binlog.Current(ctx, f.cfg)
	if err != nil {
		return failedErr(fmt.Errorf("binlog: %w", err))
	}
	err = binlog.Stream(ctx, f.cfg, from, &until, f.handle)
	if err == nil && f.retrySoon {
		// Something was deleted: rows that waited for its key go now.
		f.lastRetry = time.Time{}
		err = f.handle(ctx, binlog.Batch{})
	}
	if errors.Is(err, binlog.ErrPurged) {
		// Purged while we read: the next run rescans (start sees it).
		err = failedErr(fmt.Errorf("binlog: %w; the next run rescans every stream", err))
	}
	g := f.sum
	f.summary(err)
	printGraph(out, f.eng, g)
	fmt.Fprintf(out, "binlog: caught up to %s (%d batches)\n", f.pos, max(f.batches, 0))
	return err
}

// follow is `run` in binlog mode: stream until ctx ends, reconnecting
// after a failure from the recorded position (what was acknowledged is not
// sent again: the hashes say it is unchanged). ready is told whether the
// feed is streaming.
func (f *feed) follow(ctx context.Context, out io.Writer, ready func(ok bool, why string)) error {
	backoff := time.Second
	for {
		from, err := f.start(ctx, out)
		if err == nil {
			ready(true, "")
			last := time.Now()
			sctx, stopIdle := context.WithCancel(ctx)
			idleDone := make(chan struct{})
			go func() {
				defer close(idleDone)
				tick := time.NewTicker(retrySoonEvery)
				defer tick.Stop()
				for {
					select {
					case <-sctx.Done():
						return
					case <-tick.C:
						if err := f.retryIdle(sctx); err != nil && sctx.Err() == nil {
							f.log.Warn("retrying the error store's rows failed; they are retried later", zap.Error(err))
						}
					}
				}
			}()
			err = binlog.Stream(sctx, f.cfg, from, nil, func(ctx context.Context, b binlog.Batch) error {
				f.reconcile(ctx)
				herr := f.handle(ctx, b)
				if herr == nil {
					backoff = time.Second
				}
				if time.Since(last) >= summaryEvery {
					f.summary(herr)
					last = time.Now()
				}
				return herr
			})
			stopIdle()
			<-idleDone
			f.summary(err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, binlog.ErrPurged) {
			f.log.Warn("the binary log from the feed's position was purged while streaming: rescanning", zap.Error(err))
			continue // start sees the purged position and rescans
		}
		ready(false, err.Error())
		f.log.Error("the binlog feed stopped; it starts again from the recorded position", zap.Error(err), zap.Duration("in", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}
