package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/daemon"
	"github.com/cometsync/cometsync/internal/metrics"
	"github.com/cometsync/cometsync/internal/server"
	"github.com/cometsync/cometsync/internal/syncer"
)

// reconcileDue returns a func telling whether a reconcile is due at a
// time: the first call at or after each tick of the schedule (counted from
// start) says yes. An empty schedule is never due.
func reconcileDue(schedule string, start time.Time) (func(time.Time) bool, error) {
	if schedule == "" {
		return func(time.Time) bool { return false }, nil
	}
	sched, err := cron.ParseStandard(schedule)
	if err != nil {
		return nil, fmt.Errorf("config: reconcile_schedule: %q is not a schedule: %w", schedule, err)
	}
	next := sched.Next(start)
	return func(now time.Time) bool {
		if now.Before(next) {
			return false
		}
		next = sched.Next(now)
		return true
	}, nil
}

func newRunCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run as a daemon: a pass at start, then on `schedule`, with /healthz, /readyz and /metrics",
		Long: `Run as a long-running process: one pass at start, then one on every tick of
'schedule' (five cron fields or @every 5m). A pass that is still running when
the next tick comes is not doubled: the tick is skipped. SIGTERM or SIGINT stops
the running pass gracefully (no new batch; requests in flight get
shutdown_timeout to finish) and exits 0.

http.listen serves /healthz (alive), /readyz (200 once a pass succeeded within
the last 3 schedule intervals, else 503 with the reason) and /metrics.

With source.mode: binlog there is no schedule: run backfills if one is due, then
follows the binary log until SIGTERM, reconnecting when the connection drops;
/readyz is 200 while it streams.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, ctx, stop, err := prepare(cmd, path)
			if err != nil {
				return err
			}
			defer stop()

			m := metrics.New(version, true)
			eng, err := openEngine(ctx, cfg, log, nil, m)
			if err != nil {
				return err
			}
			defer eng.Close()
			m.Streams(eng.streamNames()...)
			prog := newProgress(log.Named("progress"), cmd.ErrOrStderr(), false)
			eng.setProgress(prog.every, func(stream string, r syncer.Report) {
				prog.report(stream, r)
				m.SetCursorLag(stream, r.CursorLag)
			})
			if cfg.Source.Mode == config.ModeBinlog {
				return runBinlog(ctx, cmd, eng, m)
			}
			due, err := reconcileDue(cfg.ReconcileSchedule, time.Now())
			if err != nil {
				return usageErr(err)
			}
			pass := func(ctx context.Context) error {
				g, err := syncer.RunStreams(ctx, eng.graph, syncer.Options{})
				recordPass(eng, g, err)
				eng.observePass(g, err)
				if err == nil && due(time.Now()) {
					// reconcile_schedule: the first pass at or after a tick
					// also finds and deletes what vanished from the source.
					g, err = syncer.ReconcileStreams(ctx, eng.graph, syncer.Options{})
					recordPass(eng, g, err)
					eng.observePass(g, err)
				}
				if err != nil && ctx.Err() == nil {
					log.Error("pass failed; the next one runs as scheduled", zap.Error(passFailure(cfg, err)))
				}
				return err
			}
			d, err := daemon.New(cfg.Schedule, pass, cfg.ShutdownTimeout.Duration()+5*time.Second, log.Named("daemon"), time.Now)
			if err != nil {
				return usageErr(err)
			}
			// Refused credentials do not fix themselves: not ready at once.
			d.FailsReadiness = cometchat.IsAuth
			if cfg.HTTP.Listen != "" {
				srv := server.New(cfg.HTTP.Listen, m.Registry, d.Ready, log.Named("http"))
				if err := srv.Start(); err != nil {
					return failedErr(err)
				}
				defer func() {
					sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = srv.Shutdown(sctx)
				}()
			}
			if err := d.Run(ctx); err != nil {
				return failedErr(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	return cmd
}

// runBinlog is `run` in binlog mode: no schedule, the feed streams until
// SIGTERM; /readyz is ready while it streams.
func runBinlog(ctx context.Context, cmd *cobra.Command, eng *engine, m *metrics.Metrics) error {
	cfg, log := eng.cfg, eng.log
	f, err := newFeed(eng, syncer.Options{})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	ready, why := false, "the binlog feed has not started streaming yet"
	setReady := func(ok bool, reason string) {
		mu.Lock()
		defer mu.Unlock()
		ready, why = ok, reason
	}
	if cfg.HTTP.Listen != "" {
		srv := server.New(cfg.HTTP.Listen, m.Registry, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return ready, why
		}, log.Named("http"))
		if err := srv.Start(); err != nil {
			return failedErr(err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	due, err := reconcileDue(cfg.ReconcileSchedule, time.Now())
	if err != nil {
		return usageErr(err)
	}
	f.reconcileDue = due
	if err := f.follow(ctx, cmd.OutOrStdout(), setReady); err != nil {
		return failedErr(err)
	}
	return nil
}
