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
	"github.com/cometsync/cometsync/internal/entities"
	"github.com/cometsync/cometsync/internal/mapping"
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

// groupsStream is the groups stream's settings: the only stream this
// build wires (openEngine refuses the others rather than ignore them).
func groupsStream(cfg *config.Config) *config.Stream {
	if cfg.Groups == nil {
		return &config.Stream{}
	}
	return cfg.Groups
}

// unwiredStreams refuses a config with users or members: this build syncs
// the groups stream only, and a stream silently ignored would be a sync
// that reports success having sent nothing of it.
func unwiredStreams(cfg *config.Config) error {
	var names []string
	for _, st := range cfg.Streams() {
		if st.Name != config.StreamGroups {
			names = append(names, st.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return usageErr(fmt.Errorf("config: %s: this build syncs the groups stream only; the users and members streams "+
		"are not wired into a pass yet, so they are refused rather than ignored", strings.Join(names, ", ")))
}

// engine is every part a pass needs, wired together.
type engine struct {
	cfg    *config.Config
	log    *zap.Logger
	src    *source.Source
	mapper *mapping.Mapper
	client *cometchat.Client
	store  *state.Store
	syncer *syncer.Syncer
	// metrics, when set, is told about every request and pass.
	metrics *metrics.Metrics
	tmpDir  string // a throwaway state for a dry run before the first pass
}

func (e *engine) Close() {
	if e.src != nil {
		e.src.Close()
	}
	if e.store != nil {
		e.store.Close()
	}
	if e.tmpDir != "" {
		os.RemoveAll(e.tmpDir)
	}
}

// openEngine opens the state (taking its lock first, so a second process
// fails before touching anything), connects to the source, checks the
// query's columns against the mapping, and builds the client and syncer.
//
// A dry run opens the state read-only (no lock, no writes), or a throwaway
// one when there is no state yet.
func openEngine(ctx context.Context, cfg *config.Config, log *zap.Logger, dry bool, m *metrics.Metrics) (_ *engine, err error) {
	if err := unwiredStreams(cfg); err != nil {
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
	sc, gs := cfg.Source, groupsStream(cfg)
	e.src, err = source.Open(ctx, source.Config{
		Driver: sc.Driver, DSN: sc.DSN, Query: gs.Query,
		Cursor: gs.Cursor.Column, Tiebreaker: gs.Cursor.Tiebreaker,
		Lag: gs.Cursor.Lag.Duration(), IntegerUnit: gs.Cursor.IntegerUnit,
	}, log.Named("source"))
	if err != nil {
		return nil, failedErr(fmt.Errorf("source: %w (check source.dsn and that the database is reachable)", err))
	}
	cols, err := e.src.Columns(ctx)
	if err != nil {
		return nil, classifySourceErr(err)
	}
	e.mapper, err = mapping.New(cols, gs.Cursor.Column, gs.Cursor.Tiebreaker, time.UTC)
	if err != nil {
		return nil, usageErr(err)
	}
	// The integer cursor's unit, configured or detected from the data; a
	// configured one the data contradicts stops here, as a config error.
	unit, err := e.src.Unit(ctx)
	if err != nil {
		return nil, classifySourceErr(err)
	}
	var start *source.Value
	if gs.Cursor.Start != "" {
		kind, err := e.src.CursorKind(ctx)
		if err != nil {
			return nil, classifySourceErr(err)
		}
		v, err := source.ParseStart(gs.Cursor.Start, kind == source.KindInt)
		if err != nil {
			return nil, usageErr(fmt.Errorf("config: source.cursor.start: %w", err))
		}
		start = &v
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
	e.syncer = syncer.New(e.src, entities.Groups{Mapper: e.mapper, API: e.client}, e.client, e.store.Stream("groups"), syncer.Config{
		PageSize: sc.PageSize, BatchSize: cc.BatchSize, Concurrency: cc.Concurrency, Start: start,
		// unit.Unit is "seconds" where the old default was: a state synced
		// with it keeps its fingerprint.
		Fingerprint:       e.mapper.Fingerprint(gs.Query, gs.Cursor.Column, gs.Cursor.Tiebreaker, unit.Unit),
		ShutdownTimeout:   cfg.ShutdownTimeout.Duration(),
		Lag:               gs.Cursor.Lag.Duration(),
		IntegerUnit:       unit.Unit,
		MaxInvalidPercent: sc.MaxInvalidPercent,
	}, log.Named("syncer"), time.Now)
	return e, nil
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

// observePass tells the metrics what a pass did.
func (e *engine) observePass(rep syncer.Report, runErr error) {
	if e.metrics == nil {
		return
	}
	m := e.metrics
	m.Rows(metrics.OutcomeImported, rep.Imported)
	m.Rows(metrics.OutcomeUpdated, rep.Updated)
	m.Rows(metrics.OutcomeUnchanged, rep.Unchanged)
	m.Rows(metrics.OutcomeRejected, rep.NewRejected)
	m.Rows(metrics.OutcomeInvalid, rep.NewInvalid)
	m.Rows(metrics.OutcomeDuplicate, rep.NewDuplicate)
	m.Retries(metrics.RetryFailed, rep.Failed()-rep.NewFailed())
	m.Retries(metrics.RetryCleared, rep.Cleared)
	p := metrics.Pass{OK: runErr == nil, Duration: rep.Duration, End: passEnd(rep), CursorLag: rep.CursorLag, Beyond: rep.Beyond}
	if total, parked, err := e.store.Stream("groups").FailedRows(context.Background()); err == nil {
		p.FailedRows, p.ParkedRows = total, parked
	}
	m.ObservePass(p)
}

// passEnd is when a pass ended, as the state and the metrics record it.
func passEnd(rep syncer.Report) time.Time { return rep.StartedAt.Add(rep.Duration).UTC() }
