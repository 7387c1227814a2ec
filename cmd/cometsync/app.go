package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/metrics"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

// loadConfig reads the config; any problem is a usage error (exit 2).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usageErr(errors.New("--config is required (see config.example.yaml)"))
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageErr(err)
	}
	return cfg, nil
}

// prepare is what every command that runs against the config starts with:
// the config, the logger, and a context that SIGINT/SIGTERM cancels. stop
// releases the signal handler and flushes the logger.
func prepare(cmd *cobra.Command, path string) (*config.Config, *zap.Logger, context.Context, func(), error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	log, err := newLogger(cfg, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := signalContext(cmd.Context(), log)
	return cfg, log, ctx, func() { cancel(); _ = log.Sync() }, nil
}

// newLogger builds the process logger: JSON on stderr, or console when
// asked or when stderr is a terminal.
func newLogger(cfg *config.Config, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Log.Level)
	if err != nil {
		return nil, usageErr(fmt.Errorf("config: log.level: %q is not a level (debug, info, warn, error)", cfg.Log.Level))
	}
	var enc zapcore.Encoder
	if cfg.Log.Format == "console" || (cfg.Log.Format == "auto" && isTerminal(w)) {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// statePathError names state.path and its value for a state file that
// cannot be opened (the state package's errors start with "state: ").
func statePathError(path string, err error) error {
	return fmt.Errorf("state.path %q: %v (the file and its directory must be writable by this user; a directory path is not a file)",
		path, strings.TrimPrefix(err.Error(), "state: "))
}

// groupsStream is the groups stream's settings, or empty ones when the
// config has none.
func groupsStream(cfg *config.Config) *config.Stream {
	if cfg.Groups == nil {
		return &config.Stream{}
	}
	return cfg.Groups
}

// engine is every part a pass needs, wired together.
type engine struct {
	cfg     *config.Config
	log     *zap.Logger
	client  *cometchat.Client
	store   *state.Store
	streams []*streamParts
	// graph is the streams' engines, in pass order.
	graph []syncer.Stream
	// metrics, when set, is told about every request and pass.
	metrics *metrics.Metrics
	tmpDir  string // a throwaway state for a dry run before the first pass
}

func (e *engine) Close() {
	for _, sp := range e.streams {
		sp.src.Close()
	}
	if e.store != nil {
		e.store.Close()
	}
	if e.tmpDir != "" {
		os.RemoveAll(e.tmpDir)
	}
}

// selectStreams returns the configured streams named in only (all of them
// when only is empty), in pass order; a name that is not configured is a
// usage error.
func selectStreams(cfg *config.Config, only []string) ([]config.NamedStream, error) {
	all := cfg.Streams()
	if len(only) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range only {
		found := false
		for _, st := range all {
			found = found || st.Name == n
		}
		if !found {
			var names []string
			for _, st := range all {
				names = append(names, st.Name)
			}
			return nil, usageErr(fmt.Errorf("--stream %s: not a configured stream (configured: %s)", n, strings.Join(names, ", ")))
		}
		want[n] = true
	}
	var out []config.NamedStream
	for _, st := range all {
		if want[st.Name] {
			out = append(out, st)
		}
	}
	return out, nil
}

// openEngine opens the state (taking its lock first, so a second process
// fails before touching anything), builds the client, connects to the
// source for each selected stream (all when only is empty), checks each
// query's columns against its mapping, and builds the streams' syncers.
//
// A dry run (dryOut not nil) opens the state read-only (no lock, no
// writes), or a throwaway one when there is no state yet, and wires every
// stream to syncer.DryRun: the objects go to dryOut, nothing to CometChat.
func openEngine(ctx context.Context, cfg *config.Config, log *zap.Logger, dryOut io.Writer, m *metrics.Metrics, only ...string) (_ *engine, err error) {
	dry := dryOut != nil
	selected, err := selectStreams(cfg, only)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, log: log, metrics: m}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.store, err = state.Open(cfg.State.Path, state.Options{ParkAfter: cfg.State.ParkAfter, ReadOnly: dry})
	if errors.Is(err, state.ErrNoState) {
		if e.tmpDir, err = os.MkdirTemp("", "cometsync-dry-run-"); err == nil {
			e.store, err = state.Open(filepath.Join(e.tmpDir, "state.db"), state.Options{ParkAfter: cfg.State.ParkAfter})
		}
	}
	var locked *state.LockedError
	if err != nil && !errors.As(err, &locked) {
		return nil, failedErr(statePathError(cfg.State.Path, err))
	}
	if err != nil {
		return nil, failedErr(err)
	}
	if m != nil {
		// The last success survives restarts and failed CronJob runs.
		if last, err := e.store.LastSuccess(ctx); err == nil {
			m.SetLastSuccess(last)
		}
	}
	cc := cfg.CometChat
	var observe func(string, int, string, time.Duration)
	if m != nil {
		observe = m.ObserveRequest
	}
	e.client = cometchat.New(cometchat.Config{
		Observe: observe,
		BaseURL: cfg.APIBaseURL(), APIKey: cc.APIKey, Timeout: cc.Timeout.Duration(),
		MaxAttempts: cc.Retry.MaxAttempts, InitialBackoff: cc.Retry.InitialBackoff.Duration(), MaxBackoff: cc.Retry.MaxBackoff.Duration(),
		MaxElapsed:      cc.Retry.MaxElapsed.Duration(),
		ImportPerMinute: float64(cc.RateLimits.ImportPerMinute), OtherPerMinute: float64(cc.RateLimits.OtherPerMinute),
		Concurrency: cc.Concurrency,
	}, log.Named("cometchat"))
	for _, ns := range selected {
		sp, err := openStream(ctx, cfg, ns, e.client, log)
		if err != nil {
			return nil, err
		}
		e.streams = append(e.streams, sp)
		var entity syncer.Entity = sp.entity
		var sink syncer.Sink = e.client
		var store syncer.Store = e.store.Stream(ns.Name)
		if dry {
			entity, sink, store = syncer.DryRun(entity, store, dryOut, log.Named("dry-run").With(zap.String("stream", ns.Name)))
		}
		s := syncer.New(sp.src, entity, sink, store, syncer.Config{
			PageSize: cfg.Source.PageSize, BatchSize: cc.BatchSize, Concurrency: cc.Concurrency, Start: sp.start,
			Fingerprint:       sp.fingerprint,
			ShutdownTimeout:   cfg.ShutdownTimeout.Duration(),
			Lag:               ns.Cursor.Lag.Duration(),
			IntegerUnit:       sp.unit.Unit,
			MaxInvalidPercent: cfg.Source.MaxInvalidPercent,
			Deletes:           syncer.DeleteLimits{MaxPerPass: cfg.Deletes.MaxPerPass, MaxPercent: cfg.Deletes.MaxPercent, AlwaysAllow: cfg.Deletes.AlwaysAllow},
		}, log.Named("syncer").With(zap.String("stream", ns.Name)), time.Now)
		e.graph = append(e.graph, syncer.Stream{Name: ns.Name, Syncer: s})
	}
	return e, nil
}

// setProgress makes every stream's syncer report its progress to f.
func (e *engine) setProgress(every time.Duration, f func(stream string, r syncer.Report)) {
	for _, st := range e.graph {
		name := st.Name
		st.ProgressEvery = every
		st.Progress = func(r syncer.Report) { f(name, r) }
	}
}

// failedRows counts the rows in the error store, and the parked ones, of
// the stream named.
func (e *engine) failedRows(name string) (total, parked int, err error) {
	return e.store.Stream(name).FailedRows(context.Background())
}

// classifySourceErr makes a column problem, or an integer unit the data
// contradicts, a config error, and anything else a failure.
func classifySourceErr(err error) error {
	var ce *source.ColumnError
	var ue *source.UnitError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return usageErr(err)
	}
	return failedErr(fmt.Errorf("source: %w", err))
}

// observePass tells the metrics what a pass did, stream by stream.
func (e *engine) observePass(g syncer.GraphReport, runErr error) {
	if e.metrics == nil {
		return
	}
	e.observeStreams(g)
	total := g.Total()
	e.metrics.ObservePass(metrics.Pass{OK: runErr == nil, Duration: total.Duration, End: passEnd(total)})
}

// observeStreams tells the metrics what each stream of g did.
func (e *engine) observeStreams(g syncer.GraphReport) {
	if e.metrics == nil {
		return
	}
	m := e.metrics
	for _, name := range g.Names {
		sr := g.Streams[name]
		if !sr.Ran {
			continue
		}
		rep := sr.Report
		m.Rows(name, metrics.OutcomeImported, rep.Imported)
		m.Rows(name, metrics.OutcomeUpdated, rep.Updated)
		m.Rows(name, metrics.OutcomeUnchanged, rep.Unchanged)
		m.Rows(name, metrics.OutcomeRejected, rep.NewRejected)
		m.Rows(name, metrics.OutcomeInvalid, rep.NewInvalid)
		m.Rows(name, metrics.OutcomeDuplicate, rep.NewDuplicate)
		m.Retries(name, metrics.RetryFailed, rep.Failed()-rep.NewFailed())
		m.Retries(name, metrics.RetryCleared, rep.Cleared)
		m.Deletes(name, metrics.DeleteDone, rep.Deleted)
		m.Deletes(name, metrics.DeleteHeld, rep.DeletesHeld)
		m.Deletes(name, metrics.DeleteFailed, rep.DeleteFails)
		sp := metrics.StreamPass{CursorLag: rep.CursorLag, Beyond: rep.Beyond, DeletesHeld: rep.DeletesHeld}
		if total, parked, err := e.failedRows(name); err == nil {
			sp.FailedRows, sp.ParkedRows = total, parked
		}
		m.ObserveStream(name, sp)
	}
}

// passEnd is when a pass ended, as the state and the metrics record it.
func passEnd(rep syncer.Report) time.Time { return rep.StartedAt.Add(rep.Duration).UTC() }
