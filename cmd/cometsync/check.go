package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

func newCheckCmd() *cobra.Command {
	var path string
	var sample int
	cmd := &cobra.Command{
		Use:   "check --config FILE [--sample N]",
		Short: "Check the config, the database, the query's columns, a sample of rows and the API key; send nothing",
		Long: `Check everything a pass depends on, without sending or recording anything: the
config, the connection to the source, the query's columns against the mapping, a
sample of rows mapped to the objects that would be sent (with any row errors),
the API key (with a harmless read: GET /groups), and the state file. Every
problem is listed; the exit code is 0 when there is none, 1 otherwise (2 when
the config itself cannot be read). Run it first against your real database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, ctx, stop, err := prepare(cmd, path)
			if err != nil {
				return err
			}
			defer stop()
			problems := runCheck(ctx, cfg, log, sample, cmd.OutOrStdout())
			if problems > 0 {
				return failedErr(fmt.Errorf("check found %d problem(s); see above", problems))
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nall checks passed: next, 'cometsync once --config FILE --dry-run', then 'cometsync once --config FILE'")
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().IntVar(&sample, "sample", 5, "rows to map and print")
	return cmd
}

// runCheck prints one line per check and returns the number of problems.
func runCheck(ctx context.Context, cfg *config.Config, log *zap.Logger, sample int, w io.Writer) int {
	problems := 0
	ok := func(format string, args ...any) { fmt.Fprintf(w, "ok    "+format+"\n", args...) }
	bad := func(format string, args ...any) { problems++; fmt.Fprintf(w, "FAIL  "+format+"\n", args...) }

	sc := cfg.Source
	ok("config: valid (source %s %s; CometChat %s)", sc.Driver, config.RedactDSN(sc.Driver, sc.DSN), cfg.APIBaseURL())

	src, err := source.Open(ctx, source.Config{
		Driver: sc.Driver, DSN: sc.DSN, Query: sc.Query, Cursor: sc.Cursor.Column, Tiebreaker: sc.Cursor.Tiebreaker,
		Lag: sc.Cursor.Lag.Duration(), IntegerUnit: sc.Cursor.IntegerUnit, ConnectTimeout: 5 * time.Second,
	}, log.Named("source"))
	if err != nil {
		bad("source: %v (check source.dsn and that the database is reachable from here)", err)
	} else {
		defer src.Close()
		ok("source: connected")
		problems += checkQuery(ctx, cfg, src, sample, w, ok, bad)
	}

	client := cometchat.New(cometchat.Config{
		BaseURL: cfg.APIBaseURL(), APIKey: cfg.CometChat.APIKey, Timeout: cfg.CometChat.Timeout.Duration(),
		MaxAttempts: 2, MaxElapsed: 20 * time.Second, OtherPerMinute: float64(cfg.CometChat.RateLimits.OtherPerMinute),
	}, log.Named("cometchat"))
	switch err := client.Ping(ctx); {
	case err == nil:
		ok("cometchat: the API key works for app %q in region %q", cfg.CometChat.AppID, cfg.CometChat.Region)
	case cometchat.IsAuth(err):
		bad("cometchat: %v: check cometchat.api_key (a REST API key with fullAccess scope), cometchat.app_id %q and cometchat.region %q", err, cfg.CometChat.AppID, cfg.CometChat.Region)
	default:
		bad("cometchat: %v (check cometchat.base_url / app_id / region and the network)", err)
	}

	switch st, err := state.Open(cfg.State.Path, state.Options{}); {
	case err == nil:
		st.Close()
		ok("state: %s is writable", cfg.State.Path)
	case errors.As(err, new(*state.LockedError)):
		ok("state: %s is in use by a running cometsync (fine while it runs; a pass from here would wait for it)", cfg.State.Path)
	default:
		bad("state: %v", err)
	}
	return problems
}

// checkQuery checks the columns against the mapping and maps a sample.
func checkQuery(ctx context.Context, cfg *config.Config, src *source.Source, sample int, w io.Writer, ok, bad func(string, ...any)) int {
	sc := cfg.Source
	problems := 0
	fail := func(format string, args ...any) { problems++; bad(format, args...) }
	cols, err := src.Columns(ctx)
	if err != nil {
		fail("source.query: %v", err)
		return problems
	}
	mapper, err := mapping.New(cols, sc.Cursor.Column, sc.Cursor.Tiebreaker, time.UTC)
	if err != nil {
		fail("%v", err)
		return problems
	}
	ok("source.query: columns %v map to import fields", cols)
	kind, err := src.CursorKind(ctx)
	if err != nil {
		fail("%v", err)
		return problems
	}
	upper, err := src.UpperBound(ctx)
	if err != nil {
		fail("source: read the database clock: %v", err)
		return problems
	}
	ok("source.cursor: %s is a %s cursor; this pass would read up to %s (database clock - %s lag)", sc.Cursor.Column, kind, upper, sc.Cursor.Lag)
	if n, err := src.Count(ctx, nil, upper); err == nil {
		ok("source: %d rows to sync on a first pass (%s at CometChat's 3,000 groups a minute)", n, backfillTime(n))
	}
	rows, err := src.ReadPage(ctx, nil, upper, max(sample, 1))
	if err != nil {
		fail("source: read a sample: %v", err)
		return problems
	}
	fmt.Fprintf(w, "\nsample of %d rows, as they would be sent:\n", len(rows))
	invalid := 0
	for _, r := range rows {
		g, err := mapper.Map(r.Values)
		if err != nil {
			invalid++
			fmt.Fprintf(w, "  row %s: ROW ERROR %v (it would be recorded in the error store, not sent)\n", r.Key, err)
			continue
		}
		b, _ := json.Marshal(g)
		fmt.Fprintf(w, "  row %s: %s\n", r.Key, b)
	}
	fmt.Fprintln(w)
	if invalid > 0 {
		fmt.Fprintf(w, "note  %d of %d sampled rows break CometChat's constraints; they are kept in the error store, the rest sync\n", invalid, len(rows))
	}
	return problems
}

// backfillTime is how long a first pass of n groups takes at CometChat's
// data-import limit (60 requests of 50 a minute).
func backfillTime(n int64) string {
	d := time.Duration(n) * time.Minute / 3000
	if d < time.Minute {
		return "under a minute"
	}
	return "about " + d.Round(time.Minute).String()
}
