package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
the config itself cannot be read). Warnings (a pass works, but not as it
should: rows with a NULL cursor it will never read, no index for its keyset
reads, a state held by a running cometsync) do not change the exit code.
Run it first against your real database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, ctx, stop, err := prepare(cmd, path)
			if err != nil {
				return err
			}
			defer stop()
			c := runCheck(ctx, cfg, log, sample, cmd.OutOrStdout())
			if c.problems > 0 {
				return failedErr(fmt.Errorf("check found %d problem(s); see above", c.problems))
			}
			passed := "all checks passed"
			if c.warnings > 0 {
				passed += fmt.Sprintf(", with %d warning(s) above", c.warnings)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\n"+passed+": next, 'cometsync once --config FILE --dry-run', then 'cometsync once --config FILE'")
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "config file (YAML)")
	cmd.Flags().IntVar(&sample, "sample", 5, "rows to map and print")
	return cmd
}

// checker prints check's lines and counts the problems (FAIL: a pass
// cannot work) and the warnings (a pass works, but not as it should).
type checker struct {
	w                  io.Writer
	problems, warnings int
}

func (c *checker) ok(format string, args ...any)   { c.line("ok    ", format, args...) }
func (c *checker) note(format string, args ...any) { c.line("note  ", format, args...) }
func (c *checker) warn(format string, args ...any) { c.warnings++; c.line("warn  ", format, args...) }
func (c *checker) bad(format string, args ...any)  { c.problems++; c.line("FAIL  ", format, args...) }

func (c *checker) line(prefix, format string, args ...any) {
	fmt.Fprintf(c.w, prefix+format+"\n", args...)
}

// runCheck prints one line per check and returns the counts.
func runCheck(ctx context.Context, cfg *config.Config, log *zap.Logger, sample int, w io.Writer) *checker {
	c := &checker{w: w}
	sc := cfg.Source
	c.ok("config: valid (source %s %s; CometChat %s)", sc.Driver, config.RedactDSN(sc.Driver, sc.DSN), cfg.RedactedAPIBaseURL())

	src, err := source.Open(ctx, source.Config{
		Driver: sc.Driver, DSN: sc.DSN, Query: sc.Query, Cursor: sc.Cursor.Column, Tiebreaker: sc.Cursor.Tiebreaker,
		Lag: sc.Cursor.Lag.Duration(), IntegerUnit: sc.Cursor.IntegerUnit, ConnectTimeout: 5 * time.Second,
	}, log.Named("source"))
	if err != nil {
		c.bad("source: %v (check source.dsn and that the database is reachable from here)", err)
	} else {
		defer src.Close()
		c.ok("source: connected")
		checkQuery(ctx, cfg, src, sample, c)
	}

	client := cometchat.New(cometchat.Config{
		BaseURL: cfg.APIBaseURL(), APIKey: cfg.CometChat.APIKey, Timeout: cfg.CometChat.Timeout.Duration(),
		MaxAttempts: 2, MaxElapsed: 20 * time.Second, OtherPerMinute: float64(cfg.CometChat.RateLimits.OtherPerMinute),
	}, log.Named("cometchat"))
	// With base_url set, app_id and region are not used: name the URL.
	where := fmt.Sprintf("app %q in region %q", cfg.CometChat.AppID, cfg.CometChat.Region)
	if cfg.CometChat.BaseURL != "" {
		where = "cometchat.base_url " + cfg.RedactedAPIBaseURL()
	}
	switch err := client.Ping(ctx); {
	case err == nil:
		c.ok("cometchat: the API key works for %s", where)
	case cometchat.IsAuth(err):
		c.bad("cometchat: %v: check cometchat.api_key (a REST API key with fullAccess scope) for %s", err, where)
	default:
		c.bad("cometchat: %v (check cometchat.base_url / app_id / region and the network)", err)
	}

	switch st, err := state.Open(cfg.State.Path, state.Options{}); {
	case err == nil:
		st.Close()
		c.ok("state: %s is writable", cfg.State.Path)
	case errors.As(err, new(*state.LockedError)):
		// Normal while a daemon runs, but a pass started now would not
		// wait for it: it stops with exit 1.
		c.warn("state: %s is in use by another cometsync process (fine if it is your daemon); "+
			"while it runs, 'once' with this config exits at once with exit 1, as would a second 'run'; "+
			"'once --dry-run', 'status' and 'errors' still work", cfg.State.Path)
	default:
		c.bad("%v", statePathError(cfg.State.Path, err))
	}
	return c
}

// checkQuery checks the columns against the mapping, the rows a pass would
// never read, the keyset's index, and maps a sample.
func checkQuery(ctx context.Context, cfg *config.Config, src *source.Source, sample int, c *checker) {
	sc := cfg.Source
	cols, err := src.Columns(ctx)
	if err != nil {
		c.bad("source.query: %v", err)
		return
	}
	mapper, err := mapping.New(cols, sc.Cursor.Column, sc.Cursor.Tiebreaker, time.UTC)
	if err != nil {
		c.bad("%v", err)
		return
	}
	c.ok("source.query: columns %v map to import fields", cols)
	kind, err := src.CursorKind(ctx)
	if err != nil {
		c.bad("%v", err)
		return
	}
	upper, err := src.UpperBound(ctx)
	if err != nil {
		c.bad("source: read the database clock: %v", err)
		return
	}
	c.ok("source.cursor: %s is a %s cursor; this pass would read up to %s (database clock - %s lag)", sc.Cursor.Column, kind, upper, sc.Cursor.Lag)
	if n, err := src.Count(ctx, nil, upper); err == nil {
		perMinute := cfg.CometChat.RateLimits.ImportPerMinute * cfg.CometChat.BatchSize
		c.ok("source: %d rows to sync on a first pass (%s at %s groups a minute: cometchat.rate_limits.import_per_minute %d × batch_size %d)",
			n, backfillTime(n, perMinute), thousands(perMinute), cfg.CometChat.RateLimits.ImportPerMinute, cfg.CometChat.BatchSize)
	}
	switch n, err := src.NullCursors(ctx); {
	case err != nil:
		c.warn("source: could not count the rows whose %s is NULL: %v", sc.Cursor.Column, err)
	case n > 0:
		c.warn("source: %d row(s) have a NULL %s: a pass never reads them (NULL is not after any checkpoint), so they are never synced "+
			"until %s has a value: set it in the table (and make the column NOT NULL), or select e.g. "+
			"COALESCE(updated_at, created_at) AS updated_at in source.query (which the index cannot serve)", n, sc.Cursor.Column, sc.Cursor.Column)
	}
	rows, err := src.ReadPage(ctx, nil, upper, max(sample, 1))
	if err != nil {
		c.bad("source: read a sample: %v", err)
		return
	}
	checkIndex(ctx, cfg, src, upper, rows, c)
	fmt.Fprintf(c.w, "\nsample of %d rows, as they would be sent:\n", len(rows))
	invalid := 0
	for _, r := range rows {
		g, err := mapper.Map(r.Values)
		if err != nil {
			invalid++
			fmt.Fprintf(c.w, "  row %s: ROW ERROR %v (it would be recorded in the error store, not sent)\n", r.Key, err)
			continue
		}
		b, _ := json.Marshal(g)
		fmt.Fprintf(c.w, "  row %s: %s\n", r.Key, b)
	}
	fmt.Fprintln(c.w)
	if invalid > 0 {
		c.note("%d of %d sampled rows break CometChat's constraints; they are kept in the error store, the rest sync", invalid, len(rows))
	}
}

// checkIndex explains the page query of a pass that has caught up (after
// the upper bound) and warns when it is a full scan: the README's required
// index on (cursor, tiebreaker) is missing, or the query cannot be merged.
func checkIndex(ctx context.Context, cfg *config.Config, src *source.Source, upper source.Value, rows []source.Row, c *checker) {
	cur := cfg.Source.Cursor
	if len(rows) == 0 {
		c.note("source: the query has no rows yet, so its index on (%s, %s) was not checked", cur.Column, cur.Tiebreaker)
		return
	}
	plan, err := src.ExplainPage(ctx, source.Position{Cursor: upper, Key: rows[0].Key}, upper, cfg.Source.PageSize)
	switch {
	case errors.Is(err, source.ErrNoPlan):
		c.note("source: the index on (%s, %s) is checked for mysql only; make sure the table has one", cur.Column, cur.Tiebreaker)
	case err != nil:
		c.warn("source: could not check the index of the keyset read: %v", err)
	case plan.Materialized:
		c.warn("source.query: the database cannot merge the query into the keyset read (it has GROUP BY, DISTINCT, LIMIT, UNION " +
			"or an aggregate), so every page of a pass builds all of its rows first; keep source.query a plain SELECT with joins")
	case plan.FullScan():
		table, column, tiebreaker := plan.BaseTable, plan.CursorColumn, plan.TiebreakerColumn
		name, scanned := sqlName(table+"_"+column+"_"+tiebreaker), table
		if table == "" {
			scanned = plan.Table
			// The cursor or tiebreaker is an expression: say what to index.
			name, table = "cometsync_keyset", fmt.Sprintf("<the table the query calls %s>", plan.Table)
			column, tiebreaker = "<column behind "+cur.Column+">", "<column behind "+cur.Tiebreaker+">"
		}
		c.warn("source: no usable index on (%s, %s): every page of a pass reads all of %s (EXPLAIN: type %s, %s); add one: "+
			"CREATE INDEX %s ON %s (%s, %s);", cur.Column, cur.Tiebreaker, scanned, plan.Access, plan.Extra,
			name, sqlName(table), sqlName(column), sqlName(tiebreaker))
	default:
		c.ok("source: the keyset read uses the index %s of %s (EXPLAIN: type %s)", plan.Key, plan.Table, plan.Access)
	}
}

// sqlName backquotes a MySQL identifier unless it is a plain one (or a
// placeholder in angle brackets).
func sqlName(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if ch := s[i]; !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			plain = false
		}
	}
	if plain || strings.HasPrefix(s, "<") {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// backfillTime is how long a first pass of n groups takes at CometChat's
// data-import limit (60 requests of 50 a minute).
// thousands writes n with thousands separators: 3,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func backfillTime(n int64, perMinute int) string {
	d := time.Duration(n) * time.Minute / time.Duration(max(perMinute, 1))
	if d < time.Minute {
		return "under a minute"
	}
	return "about " + d.Round(time.Minute).String()
}
