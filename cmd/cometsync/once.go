package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/metrics"
	"github.com/cometsync/cometsync/internal/syncer"
)

func newOnceCmd() *cobra.Command {
	var path string
	var resync, rescan, reconcile, dryRun, allowMassDelete bool
	var streams []string
	cmd := &cobra.Command{
		Use:   "once --config FILE [--stream users,groups,members] [--resync | --rescan | --reconcile] [--allow-mass-delete] [--dry-run]",
		Short: "Run one pass, then exit (for CronJobs and by hand)",
		Long: `Run one pass: read the rows changed since the checkpoint (and the rows that failed
before), upsert them into CometChat, record the outcome, exit.

--rescan re-reads every row from the start and sends only the groups whose
object changed since it was last delivered: for changes the cursor column did
not see (a bulk fix, a joined table, a new query or mapping). It costs a read
of the table, not a backfill. --resync re-reads every row and sends every
group: for a new or emptied CometChat app, or one changed outside cometsync.
Either one, if interrupted, is carried on by the next pass.

The configured streams run in order: users, then groups, then members (a
member needs its user and its group), each with its own checkpoint; their
deletes come after, members first.

With source.mode: binlog, once runs the backfill if one is due, then reads the
binary log up to the server's position when the backfill ends, and exits.
--stream runs only the streams named; --resync and --rescan apply to them.

A row whose query selects a true 'deleted' column deletes what it delivered.
--reconcile instead reads every key of each stream's query and deletes, from
CometChat, what the state delivered and the source no longer has (hard
deletes), members first, then groups, then users. Either way, a stream's
deletes beyond deletes.max_per_pass or deletes.max_percent are held back and
the pass exits 1: --allow-mass-delete lets this pass make them.

Exit codes: 0 the pass completed (row errors allowed: see 'cometsync errors'),
1 the pass failed (the checkpoint stays after the last acknowledged batch),
2 bad config or usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if resync && rescan {
				return usageErr(errors.New("--resync and --rescan exclude each other: a resync sends every group, a rescan only the groups that changed"))
			}
			cfg, log, ctx, stop, err := prepare(cmd, path)
			if err != nil {
				return err
			}
			defer stop()
			if reconcile && (resync || rescan) {
				return usageErr(errors.New("--reconcile runs on its own: it deletes what vanished from the source; run --resync or --rescan as another pass"))
			}
			opts := syncer.Options{Resync: resync, Rescan: rescan, AllowMassDelete: allowMassDelete}
			return runOnce(ctx, cfg, log, opts, reconcile, dryRun, streams, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&resync, "resync", false, "re-read every row from the start and send every group, whatever the hashes say")
	cmd.Flags().BoolVar(&rescan, "rescan", false, "re-read every row from the start and send only the groups whose object changed")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the objects that would be sent, as JSON lines, and change nothing")
	cmd.Flags().BoolVar(&reconcile, "reconcile", false, "find the objects whose rows vanished from the source (hard deletes) and delete them from CometChat, members first, under the delete brake")
	cmd.Flags().BoolVar(&allowMassDelete, "allow-mass-delete", false, "let this pass make the deletes the brake (deletes.max_per_pass, deletes.max_percent) would hold back")
	cmd.Flags().StringSliceVar(&streams, "stream", nil, "run only these streams (users, groups, members; comma-separated or repeated)")
	return cmd
}

// signalContext is cancelled by the first SIGINT/SIGTERM, which asks the
// pass to stop gracefully; a second one ends the process at once.
func signalContext(parent context.Context, log *zap.Logger) (context.Context, func()) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			log.Info("stopping: taking no new batch, letting requests in flight finish", zap.String("signal", sig.String()))
			cancel()
		case <-ctx.Done():
			return
		}
		if sig, ok := <-ch; ok {
			log.Warn("second signal: exiting at once; the next pass re-sends what was in flight", zap.String("signal", sig.String()))
			os.Exit(exitFailed) //nolint:revive // the user asked twice; nothing left to clean up that the kernel won't
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// runOnce runs one pass of the selected streams and reports it.
func runOnce(ctx context.Context, cfg *config.Config, log *zap.Logger, opts syncer.Options, reconcile, dryRun bool, only []string, stdout, stderr io.Writer) error {
	var m *metrics.Metrics
	if cfg.Metrics.Pushgateway != "" && !dryRun {
		m = metrics.New(version, false)
	}
	var dryOut io.Writer
	if dryRun {
		dryOut = stdout
	}
	eng, err := openEngine(ctx, cfg, log, dryOut, m, only...)
	if err != nil {
		return err
	}
	defer eng.Close()
	if m != nil {
		m.Streams(eng.streamNames()...)
	}
	run := syncer.RunStreams
	if reconcile {
		run = syncer.ReconcileStreams
	}
	if dryRun {
		g, runErr := run(ctx, eng.graph, opts)
		rep := g.Total()
		fmt.Fprintf(stderr, "dry run: %d objects would be sent (%d new, %d updates of objects the state knows); %d rows unchanged, %d invalid, %d duplicate keys, %d parked; nothing was sent or recorded\n",
			rep.Imported+rep.Updated, rep.Imported, rep.Updated, rep.Unchanged, rep.Invalid, rep.Duplicate, rep.Parked)
		return passFailure(cfg, runErr)
	}
	prog := newProgress(log, stderr, isTerminal(stderr))
	eng.setProgress(prog.every, prog.report)
	if cfg.Source.Mode == config.ModeBinlog && !reconcile {
		return onceBinlog(ctx, eng, m, opts, stdout)
	}
	g, runErr := run(ctx, eng.graph, opts)
	prog.done()
	recordPass(eng, g, runErr)
	eng.observePass(g, runErr)
	eng.pushMetrics(ctx)
	printGraph(stdout, eng, g)
	if total := failedTotal(eng); total > 0 {
		fmt.Fprintf(stdout, "%d rows are in the error store: see 'cometsync errors --config FILE'\n", total)
	}
	return passFailure(cfg, runErr)
}

// onceBinlog is `once` in binlog mode: the backfill when one is due, then
// the binlog up to the position current at the start.
func onceBinlog(ctx context.Context, eng *engine, m *metrics.Metrics, opts syncer.Options, stdout io.Writer) error {
	f, err := newFeed(eng, opts)
	if err != nil {
		return err
	}
	runErr := f.catchUp(ctx, stdout)
	eng.pushMetrics(ctx)
	if total := failedTotal(eng); total > 0 {
		fmt.Fprintf(stdout, "%d rows are in the error store: see 'cometsync errors --config FILE'\n", total)
	}
	var ee *exitError
	if errors.As(runErr, &ee) {
		return runErr
	}
	return passFailure(eng.cfg, runErr)
}

// pushMetrics pushes the metrics to metrics.pushgateway, when set.
func (e *engine) pushMetrics(ctx context.Context) {
	if e.metrics == nil || e.cfg.Metrics.Pushgateway == "" {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.metrics.Push(pctx, e.cfg.Metrics.Pushgateway, "cometsync"); err != nil {
		e.log.Warn("could not push metrics; the pass itself is unaffected", zap.Error(err))
	}
}

// streamNames are the engine's streams, in pass order.
func (e *engine) streamNames() []string {
	names := make([]string, len(e.graph))
	for i, st := range e.graph {
		names[i] = st.Name
	}
	return names
}

// failedTotal counts the rows in the error store of the engine's streams.
func failedTotal(e *engine) int {
	n := 0
	for _, name := range e.streamNames() {
		if total, _, err := e.failedRows(name); err == nil {
			n += total
		}
	}
	return n
}

// printGraph prints each stream's summary (prefixed with its name when
// there are several) and the notes the pass calls for.
func printGraph(w io.Writer, e *engine, g syncer.GraphReport) {
	several := len(g.Names) > 1
	for _, name := range g.Names {
		sr := g.Streams[name]
		prefix := ""
		if several {
			prefix = name + ": "
		}
		if !sr.Ran {
			fmt.Fprintf(w, "%snot run: the pass stopped before it\n", prefix)
			continue
		}
		var b strings.Builder
		printReport(&b, sr.Report, sr.Error == "", e.unitOf(name))
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			fmt.Fprintf(w, "%s%s\n", prefix, line)
		}
		if sr.DeletesHeld > 0 {
			fmt.Fprintf(w, "%sHELD: %d deletes held back by the brake, none made; first keys: %s; run once with --allow-mass-delete if they are meant\n",
				prefix, sr.DeletesHeld, strings.Join(sr.HeldKeys, ", "))
		}
		if sr.MostlyBeyond {
			fmt.Fprintf(w, "%sWARNING: %d rows have a cursor after this pass's upper bound and were not read: see the log, and run 'cometsync check'\n", prefix, sr.Beyond)
		}
		if sr.FingerprintChanged {
			fmt.Fprintf(w, "%snote: the query or the mapping changed since the last full sync; objects that did not change since then still follow the old mapping. Run 'cometsync once --rescan' to send the objects whose content changed ('--resync' sends every object).\n", prefix)
		}
	}
}

// unitOf is the integer cursor unit in use for the named stream.
func (e *engine) unitOf(name string) string {
	for _, sp := range e.streams {
		if sp.Name == name {
			return sp.unit.Unit
		}
	}
	return ""
}

// passFailure turns a failed pass into an exit-1 error whose message says
// what failed and what to do next.
func passFailure(cfg *config.Config, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syncer.ErrInterrupted) {
		return failedErr(errors.New("interrupted: what CometChat acknowledged is recorded; the next pass goes on from there"))
	}
	if cometchat.IsAuth(err) {
		// The API's own answer says it all; the pass and stream around it
		// would only repeat that it failed.
		var ae *cometchat.APIError
		if errors.As(err, &ae) {
			err = ae
		}
		return failedErr(fmt.Errorf("CometChat refused the credentials: %v. Check cometchat.api_key (a REST API key with fullAccess scope), cometchat.app_id %q and cometchat.region %q", err, cfg.CometChat.AppID, cfg.CometChat.Region))
	}
	// Name the stream when the config has several.
	stream, key := "", "source.query"
	var se *syncer.StreamError
	if errors.As(err, &se) {
		for _, st := range cfg.Streams() {
			if st.Name == se.Stream {
				key = st.Key + ".query"
			}
		}
		if len(cfg.Streams()) > 1 {
			stream = se.Stream + ": "
		}
	}
	var pe *syncer.PassError
	if errors.As(err, &pe) {
		switch pe.Stage {
		case syncer.StageSource:
			return failedErr(fmt.Errorf("%sreading the source failed: %v. The checkpoint stays after the last acknowledged batch; run again once the database is reachable", stream, pe.Err))
		case syncer.StageAPI:
			return failedErr(fmt.Errorf("%sCometChat did not answer: %v. Nothing was lost: the checkpoint stays after the last acknowledged batch; run again later", stream, pe.Err))
		case syncer.StageState:
			return failedErr(fmt.Errorf("%sthe state file failed: %v. Check state.path %q (disk space, permissions)", stream, pe.Err, cfg.State.Path))
		case syncer.StageDeletes:
			return failedErr(fmt.Errorf("%s%v", stream, pe.Err))
		case syncer.StageCursor:
			return failedErr(fmt.Errorf("%s%v. Nothing was read; run 'cometsync check' to see the cursor's range", stream, pe.Err))
		case syncer.StageMapping:
			return failedErr(fmt.Errorf("%s%v. The rows are in the error store ('cometsync errors'); fix %s or the mapping "+
				"(run 'cometsync check' to see sampled rows as they would be sent), and they are retried on the next pass. "+
				"If the data really is this bad, raise source.max_invalid_percent (now %d)", stream, pe.Err, key, cfg.Source.MaxInvalidPercent))
		}
	}
	return failedErr(err)
}

// lastPass is what `status` shows of the most recent pass: the figures
// summed over its streams, and each stream's.
type lastPass struct {
	syncer.Report
	Streams    map[string]syncer.StreamReport `json:"streams,omitempty"`
	FinishedAt time.Time                      `json:"finished_at"`
	OK         bool                           `json:"ok"`
	Error      string                         `json:"error,omitempty"`
}

// recordPass stores the pass's figures in the state and logs a summary
// for each stream.
func recordPass(eng *engine, g syncer.GraphReport, runErr error) {
	total := g.Total()
	lp := lastPass{Report: total, Streams: g.Streams, FinishedAt: passEnd(total), OK: runErr == nil}
	if runErr != nil {
		lp.Error = runErr.Error()
	}
	raw, err := json.Marshal(lp)
	if err == nil {
		err = eng.store.SetLastPass(context.Background(), raw)
	}
	if err == nil && runErr == nil {
		err = eng.store.SetLastSuccess(context.Background(), lp.FinishedAt)
	}
	if err != nil {
		eng.log.Warn("could not record the pass summary", zap.Error(err))
	}
	for _, name := range g.Names {
		sr := g.Streams[name]
		if !sr.Ran {
			continue
		}
		rep := sr.Report
		fields := []zap.Field{
			zap.String("stream", name),
			zap.Bool("ok", sr.Error == ""), zap.Int("read", rep.Read), zap.Int("imported", rep.Imported), zap.Int("updated", rep.Updated),
			zap.Int("unchanged", rep.Unchanged), zap.Int("invalid", rep.Invalid), zap.Int("rejected", rep.Rejected), zap.Int("duplicate", rep.Duplicate),
			zap.Int("new_failed", rep.NewFailed()), zap.Int("parked", rep.Parked), zap.Int("deleted", rep.Deleted), zap.Int("deletes_held", rep.DeletesHeld),
			zap.Int("retried", rep.Retried), zap.Duration("duration", rep.Duration), zap.String("checkpoint", string(rep.Checkpoint)),
		}
		if kind := passKind(rep); kind != "pass" {
			fields = append(fields, zap.String("full_pass", strings.TrimSuffix(kind, " pass")))
		}
		if sr.Error != "" {
			fields = append(fields, zap.String("error", sr.Error))
		}
		eng.log.Info("pass summary", fields...)
	}
}

// passKind names a pass for its summary: "pass", "resync pass" or
// "rescan pass".
func passKind(rep syncer.Report) string {
	switch {
	case rep.Resync:
		return "resync pass"
	case rep.Rescan:
		return "rescan pass"
	}
	return "pass"
}

// printReport prints one stream's summary; unit is its integer cursor's
// unit ("" to tell it from the magnitude).
func printReport(w io.Writer, rep syncer.Report, ok bool, unit string) {
	verdict := passKind(rep) + " complete"
	if !ok {
		verdict = passKind(rep) + " did not complete"
	}
	fmt.Fprintf(w, "%s in %s: read %d rows (%d retried from the error store): %d imported, %d updated, %d unchanged, %d deleted, %d failed (%d invalid, %d rejected, %d duplicate keys; %d of them new in the error store), %d parked skipped\n",
		verdict, rep.Duration.Round(time.Millisecond), rep.Read, rep.Retried, rep.Imported, rep.Updated, rep.Unchanged, rep.Deleted,
		rep.Failed(), rep.Invalid, rep.Rejected, rep.Duplicate, rep.NewFailed(), rep.Parked)
	cp := "none yet"
	if rep.Checkpoint != nil {
		// The unit is told from the magnitude, as the source detects it.
		cp = readableCheckpoint(rep.Checkpoint, unit)
	}
	fmt.Fprintf(w, "checkpoint: %s\n", cp)
}
