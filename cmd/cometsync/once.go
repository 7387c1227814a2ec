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
	var resync, rescan, dryRun bool
	cmd := &cobra.Command{
		Use:   "once --config FILE [--resync | --rescan] [--dry-run]",
		Short: "Run one pass, then exit (for CronJobs and by hand)",
		Long: `Run one pass: read the rows changed since the checkpoint (and the rows that failed
before), upsert them into CometChat, record the outcome, exit.

--rescan re-reads every row from the start and sends only the groups whose
object changed since it was last delivered: for changes the cursor column did
not see (a bulk fix, a joined table, a new query or mapping). It costs a read
of the table, not a backfill. --resync re-reads every row and sends every
group: for a new or emptied CometChat app, or one changed outside cometsync.
Either one, if interrupted, is carried on by the next pass.

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
			return runOnce(ctx, cfg, log, syncer.Options{Resync: resync, Rescan: rescan}, dryRun, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().BoolVar(&resync, "resync", false, "re-read every row from the start and send every group, whatever the hashes say")
	cmd.Flags().BoolVar(&rescan, "rescan", false, "re-read every row from the start and send only the groups whose object changed")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the objects that would be sent, as JSON lines, and change nothing")
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

// runOnce runs one pass and reports it.
func runOnce(ctx context.Context, cfg *config.Config, log *zap.Logger, opts syncer.Options, dryRun bool, stdout, stderr io.Writer) error {
	var m *metrics.Metrics
	if cfg.Metrics.Pushgateway != "" && !dryRun {
		m = metrics.New(version, false)
	}
	eng, err := openEngine(ctx, cfg, log, dryRun, m)
	if err != nil {
		return err
	}
	defer eng.Close()
	if dryRun {
		opts.DryRun = stdout
		rep, runErr := eng.syncer.Run(ctx, opts)
		fmt.Fprintf(stderr, "dry run: %d objects would be sent; %d rows unchanged, %d invalid, %d duplicate keys, %d parked; nothing was sent or recorded\n",
			rep.DryRun, rep.Unchanged, rep.Invalid, rep.Duplicate, rep.Parked)
		return passFailure(cfg, runErr)
	}
	prog := newProgress(log, stderr, isTerminal(stderr))
	eng.syncer.Progress, eng.syncer.ProgressEvery = prog.report, prog.every
	rep, runErr := eng.syncer.Run(ctx, opts)
	prog.done()
	recordPass(eng, rep, runErr)
	eng.observePass(rep, runErr)
	if m != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := m.Push(pctx, cfg.Metrics.Pushgateway, "cometsync"); err != nil {
			log.Warn("could not push metrics; the pass itself is unaffected", zap.Error(err))
		}
		cancel()
	}
	printReport(stdout, rep, runErr == nil)
	if rep.MostlyBeyond {
		fmt.Fprintf(stdout, "WARNING: %d rows have a cursor after this pass's upper bound and were not read: see the log, and run 'cometsync check'\n", rep.Beyond)
	}
	if rep.FingerprintChanged {
		fmt.Fprintln(stdout, "note: source.query or the mapping changed since the last full sync; groups that did not change since then still follow the old mapping. Run 'cometsync once --rescan' to send the groups whose object changed ('--resync' sends every group).")
	}
	if total, _, err := eng.store.Stream("groups").FailedRows(ctx); err == nil && total > 0 {
		fmt.Fprintf(stdout, "%d rows are in the error store: see 'cometsync errors --config FILE'\n", total)
	}
	return passFailure(cfg, runErr)
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
		return failedErr(fmt.Errorf("CometChat refused the credentials: %v. Check cometchat.api_key (a REST API key with fullAccess scope), cometchat.app_id %q and cometchat.region %q", err, cfg.CometChat.AppID, cfg.CometChat.Region))
	}
	var pe *syncer.PassError
	if errors.As(err, &pe) {
		switch pe.Stage {
		case syncer.StageSource:
			return failedErr(fmt.Errorf("reading the source failed: %v. The checkpoint stays after the last acknowledged batch; run again once the database is reachable", pe.Err))
		case syncer.StageAPI:
			return failedErr(fmt.Errorf("CometChat did not answer: %v. Nothing was lost: the checkpoint stays after the last acknowledged batch; run again later", pe.Err))
		case syncer.StageState:
			return failedErr(fmt.Errorf("the state file failed: %v. Check state.path %q (disk space, permissions)", pe.Err, cfg.State.Path))
		case syncer.StageCursor:
			return failedErr(fmt.Errorf("%v. Nothing was read; run 'cometsync check' to see the cursor's range", pe.Err))
		case syncer.StageMapping:
			return failedErr(fmt.Errorf("%v. The rows are in the error store ('cometsync errors'); fix source.query or the mapping "+
				"(run 'cometsync check' to see sampled rows as they would be sent), and they are retried on the next pass. "+
				"If the data really is this bad, raise source.max_invalid_percent (now %d)", pe.Err, cfg.Source.MaxInvalidPercent))
		}
	}
	return failedErr(err)
}

// lastPass is what `status` shows of the most recent pass.
type lastPass struct {
	syncer.Report
	FinishedAt time.Time `json:"finished_at"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
}

func recordPass(eng *engine, rep syncer.Report, runErr error) {
	lp := lastPass{Report: rep, FinishedAt: passEnd(rep), OK: runErr == nil}
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
	fields := []zap.Field{
		zap.Bool("ok", runErr == nil), zap.Int("read", rep.Read), zap.Int("imported", rep.Imported), zap.Int("updated", rep.Updated),
		zap.Int("unchanged", rep.Unchanged), zap.Int("invalid", rep.Invalid), zap.Int("rejected", rep.Rejected), zap.Int("duplicate", rep.Duplicate),
		zap.Int("new_failed", rep.NewFailed()), zap.Int("parked", rep.Parked),
		zap.Int("retried", rep.Retried), zap.Duration("duration", rep.Duration), zap.String("checkpoint", string(rep.Checkpoint)),
	}
	if kind := passKind(rep); kind != "pass" {
		fields = append(fields, zap.String("full_pass", strings.TrimSuffix(kind, " pass")))
	}
	if runErr != nil {
		fields = append(fields, zap.String("error", runErr.Error()))
	}
	eng.log.Info("pass summary", fields...)
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

func printReport(w io.Writer, rep syncer.Report, ok bool) {
	verdict := passKind(rep) + " complete"
	if !ok {
		verdict = passKind(rep) + " did not complete"
	}
	fmt.Fprintf(w, "%s in %s: read %d rows (%d retried from the error store): %d imported, %d updated, %d unchanged, %d failed (%d invalid, %d rejected, %d duplicate keys; %d of them new in the error store), %d parked skipped\n",
		verdict, rep.Duration.Round(time.Millisecond), rep.Read, rep.Retried, rep.Imported, rep.Updated, rep.Unchanged,
		rep.Failed(), rep.Invalid, rep.Rejected, rep.Duplicate, rep.NewFailed(), rep.Parked)
	cp := "none yet"
	if rep.Checkpoint != nil {
		// The unit is told from the magnitude, as the source detects it.
		cp = readableCheckpoint(rep.Checkpoint, "")
	}
	fmt.Fprintf(w, "checkpoint: %s\n", cp)
}
