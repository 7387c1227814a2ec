package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/binlog"
	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/config"
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
the config itself cannot be read). Problems include what would make a pass
silently wrong: most rows' cursor after the pass's upper bound (an integer
unit or a time zone that is wrong), rows that map to one guid (DUPLICATE_KEY),
and a mapping that fails most sampled rows in one field. Warnings (a pass
works, but not as it should: rows with a NULL cursor it will never read, a
keyset read not in index order of (cursor, tiebreaker), a state held by a
running cometsync) do not change the exit code.
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

	several := len(cfg.Streams()) > 1
	for _, ns := range cfg.Streams() {
		if several {
			fmt.Fprintf(c.w, "\n%s:\n", ns.Name)
		}
		srcCfg := sourceConfig(cfg, ns)
		srcCfg.ConnectTimeout = 5 * time.Second
		src, err := source.Open(ctx, srcCfg, log.Named("source"))
		if err != nil {
			c.bad("source: %v (check source.dsn and that the database is reachable from here)", err)
			break
		}
		c.ok("source: connected")
		if ns.Name == config.StreamUsers && ns.Delete == "permanent" {
			c.warn("users.delete: permanent: a user row marked deleted erases the user in CometChat with its messages and " +
				"conversations, irreversibly; leave it out to deactivate instead (the user comes back if the row does)")
		}
		checkQuery(ctx, cfg, ns, src, sample, c)
		src.Close()
	}
	if cfg.Source.Mode == config.ModeBinlog {
		checkBinlog(ctx, cfg, log, c)
	}
	fmt.Fprintln(c.w)

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

// checkBinlog checks what the binlog feed needs of the server (format,
// row image, privileges) and that it still has the recorded position.
func checkBinlog(ctx context.Context, cfg *config.Config, log *zap.Logger, c *checker) {
	fmt.Fprintf(c.w, "\nbinlog:\n")
	bc, _, err := binlogConfig(cfg, cfg.Streams(), log.Named("binlog"))
	if err != nil {
		c.bad("%v", err)
		return
	}
	allOK := true
	for _, f := range binlog.Check(ctx, bc) {
		if f.OK {
			c.ok("binlog: %s: %s", f.What, f.Detail)
			continue
		}
		allOK = false
		msg := fmt.Sprintf("binlog: %s: %s", f.What, f.Detail)
		if f.Fix != "" {
			msg += "; fix: " + f.Fix
		}
		c.bad("%s", msg)
	}
	if !allOK {
		return
	}
	st, err := state.Open(cfg.State.Path, state.Options{ReadOnly: true})
	if err != nil {
		if errors.Is(err, state.ErrNoState) {
			c.note("binlog: no position recorded yet: the first run records the server's, backfills, then streams from it")
		}
		return
	}
	defer st.Close()
	fs, ok, err := st.Feed(ctx)
	switch {
	case err != nil:
		c.bad("%v", err)
		return
	case !ok:
		c.note("binlog: no position recorded yet: the first run records the server's, backfills, then streams from it")
		return
	}
	var pos binlog.Position
	if err := json.Unmarshal(fs.Position, &pos); err != nil {
		c.bad("binlog: the recorded position %s is unreadable: %v", fs.Position, err)
		return
	}
	switch exists, err := binlog.Exists(ctx, bc, pos); {
	case err != nil:
		c.bad("binlog: could not tell whether the server still has the recorded position %s: %v", pos, err)
	case !exists:
		c.warn("binlog: the server no longer has the binary log from the recorded position %s (purged): the next run rescans every stream "+
			"(sending only what differs), then streams from the server's position; keep binlogs longer (binlog_expire_logs_seconds) than cometsync may be stopped", pos)
	default:
		c.ok("binlog: the server still has the recorded position %s", pos)
	}
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
