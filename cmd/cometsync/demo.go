package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

func newDemoCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR]",
		Short: "Run a backfill and an incremental pass on a sample SQLite database and an in-process CometChat emulator",
		Long: `Run cometsync end to end with nothing to set up: it creates a sample SQLite database
of users, groups (a few of them bad) and memberships (one of a user the users table
lacks), serves a CometChat emulator on loopback that follows the documented API (50
objects a request, per-row results, "already exists", update, a member needs its user
and its group, auth), syncs the three streams, changes some rows (a scope among them,
and the missing user's row), runs an incremental pass and a rescan, and shows what the
error store holds. Nothing leaves this machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keep := dir != ""
			if !keep {
				d, err := os.MkdirTemp("", "cometsync-demo-")
				if err != nil {
					return failedErr(err)
				}
				defer os.RemoveAll(d)
				dir = d
			} else if err := os.MkdirAll(dir, 0o755); err != nil {
				return failedErr(err)
			}
			out := cmd.OutOrStdout()
			if err := runDemo(cmd.Context(), dir, keep, out); err != nil {
				return failedErr(err)
			}
			if keep {
				fmt.Fprintf(out, "\nThe sample database, config and state are in %s.\n", dir)
				return nil
			}
			if err := os.RemoveAll(dir); err != nil {
				return failedErr(fmt.Errorf("remove the demo's temporary folder %s: %w", dir, err))
			}
			fmt.Fprintf(out, "\nRemoved the temporary folder %s and the files above; run 'cometsync demo --dir DIR' to keep them.\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "keep the sample database, config and state in DIR (default: a temporary directory, removed at the end)")
	return cmd
}

// demoRun is one run of the demo: the sample database, the emulator standing
// in for CometChat, the config over both, and where it all is printed.
type demoRun struct {
	ctx context.Context
	db  *sql.DB
	emu *cometchattest.Emulator
	cfg *config.Config
	log *zap.Logger
	out io.Writer
}

// runDemo runs the demo in dir; kept says whether dir outlives it, for
// the output to say where the files it names will be.
func runDemo(ctx context.Context, dir string, kept bool, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dbPath := filepath.Join(dir, "chat.db")
	os.Remove(dbPath)
	os.Remove(filepath.Join(dir, "state.db"))
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := createDemoData(ctx, db); err != nil {
		return fmt.Errorf("create the sample database: %w", err)
	}

	// One group is refused once by the emulator, as a transient per-row
	// error: the next pass retries it.
	var refused atomic.Bool
	emu := cometchattest.New(cometchattest.Config{APIKey: "demo-key"})
	emu.SetFaults(cometchattest.Faults{RejectRow: func(key string) (string, string, bool) {
		if key == "launch-room-7" && refused.CompareAndSwap(false, true) {
			return "ERR_EXCEPTION", "temporary failure importing this group", true
		}
		return "", "", false
	}})
	srv := httptest.NewServer(emu)
	defer srv.Close()

	cfgPath := filepath.Join(dir, "cometsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(demoConfig(dbPath, srv.URL, filepath.Join(dir, "state.db"))), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cometsync demo\n==============\nsample database: %s (%d users; %d groups, 4 of them bad; %d memberships, 1 of them of a user the users table lacks)\n"+
		"CometChat emulator: %s\nconfig: %s (three streams: users, groups, members)\n", dbPath, demoUsers, demoGroups, demoMemberships, srv.URL, cfgPath)
	if kept {
		fmt.Fprintf(out, "These files, and the state beside them, stay in %s after the demo; the emulator stops with it.\n\n", dir)
	} else {
		fmt.Fprintf(out, "These files are in a temporary folder that is removed when the demo exits; run 'cometsync demo --dir DIR' to keep them.\n\n")
	}
	d := &demoRun{ctx: ctx, db: db, emu: emu, cfg: cfg, log: zap.NewNop(), out: out}
	for _, step := range []func() error{d.backfill, d.incremental, d.rescan, d.errorStore} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// backfill is step 1: the whole graph in one pass, and the membership of
// the user CometChat does not have yet in the error store.
func (d *demoRun) backfill() error {
	fmt.Fprintf(d.out, "1. Backfill: the first pass reads the whole graph: users, then groups, then members (a member needs both).\n")
	if err := d.pass(syncer.Options{}); err != nil {
		return err
	}
	st := d.emu.Stats()
	fmt.Fprintf(d.out, "   CometChat now has %s,\n   from %d import requests of at most 50 (users %d, groups %d, members %d).\n",
		d.census(true), st.UserImportRequests+st.ImportRequests+st.MemberImportRequests, st.UserImportRequests, st.ImportRequests, st.MemberImportRequests)
	rows, err := d.rowErrors(config.StreamMembers)
	if err != nil {
		return err
	}
	for _, r := range rows {
		fmt.Fprintf(d.out, "   members: row %s (%s) is in the error store: %s, %s.\n", r.RowKey, r.GUID, r.Code, r.Message)
	}
	fmt.Fprintln(d.out)
	return nil
}

// incremental is steps 2 and 3: changes to all three tables, and the pass
// that sends just them, clearing the late user's membership.
func (d *demoRun) incremental() error {
	scoped := demoMember(demoScopeGroup, 2)
	guid := fmt.Sprintf("team-%04d", demoScopeGroup)
	fmt.Fprintf(d.out, "2. Changes in the database: 5 groups renamed (one of them the group refused in step 1), 10 touched without\n"+
		"   a change, 1 bad row fixed without touching its timestamp, 3 groups added; 1 user renamed; %s's users row\n"+
		"   added at last; %s made a moderator of %s.\n", demoLateUser, scoped, guid)
	before, _ := d.emu.Member(guid, scoped)
	if err := changeDemoData(d.ctx, d.db); err != nil {
		return fmt.Errorf("change the sample database: %w", err)
	}
	d.emu.ResetStats()
	fmt.Fprintf(d.out, "3. Incremental pass: only the changed rows and the failed ones are read again; unchanged objects are not sent.\n")
	if err := d.pass(syncer.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   CometChat now has %s;\n   %s\n", d.census(false), d.requests())
	if g, ok := d.emu.Group("team-0003"); ok {
		fmt.Fprintf(d.out, "   team-0003 is now named %q.\n", g.Name)
	}
	if u, ok := d.emu.User("user-33"); ok {
		fmt.Fprintf(d.out, "   user-33 is now named %q.\n", u.Name)
	}
	if after, ok := d.emu.Member(guid, scoped); ok {
		fmt.Fprintf(d.out, "   %s's scope in %s: %s, now %s (PUT /groups/%s/members/%s).\n", scoped, guid, before.Scope, after.Scope, guid, scoped)
	}
	rows, err := d.rowErrors(config.StreamMembers)
	if err != nil {
		return err
	}
	if m, ok := d.emu.Member(demoLateGroup, demoLateUser); ok {
		fmt.Fprintf(d.out, "   %s arrived before its membership in this pass: it is a %s of %s now, and the error store holds %d members rows.\n",
			demoLateUser, m.Scope, demoLateGroup, len(rows))
	}
	return nil
}

// rescan is step 4: a change the cursor cannot see, found by a rescan
// that sends only it.
func (d *demoRun) rescan() error {
	fmt.Fprintf(d.out, "\n4. A bulk fix the cursor cannot see: 3 titles corrected without touching updated_at. A rescan\n"+
		"   (cometsync once --rescan) re-reads every row and sends only the objects that changed.\n")
	if _, err := d.db.ExecContext(d.ctx, `UPDATE chat_groups SET title = title || ' (fixed)' WHERE id IN (20, 21, 22)`); err != nil {
		return fmt.Errorf("change the sample database: %w", err)
	}
	d.emu.ResetStats()
	if err := d.pass(syncer.Options{Rescan: true}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   %s\n", d.requests())
	return nil
}

// errorStore is step 5: what `cometsync errors` shows.
func (d *demoRun) errorStore() error {
	fmt.Fprintf(d.out, "\n5. The error store (cometsync errors): invalid rows are never sent, and are retried on every pass until fixed or parked.\n")
	var rows []state.RowError
	for _, ns := range d.cfg.Streams() {
		r, err := d.rowErrors(ns.Name)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	return writeErrors(d.out, rows, false, true)
}

// pass runs one pass of every stream and prints its summaries.
func (d *demoRun) pass(opts syncer.Options) error {
	eng, err := openEngine(d.ctx, d.cfg, d.log, nil, nil)
	if err != nil {
		return err
	}
	defer eng.Close()
	g, err := syncer.RunStreams(d.ctx, eng.graph, opts)
	recordPass(eng, g, err)
	var b strings.Builder
	printGraph(&b, eng, g)
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		fmt.Fprintf(d.out, "   %s\n", line)
	}
	return passFailure(d.cfg, err)
}

// rowErrors reads a stream's error store.
func (d *demoRun) rowErrors(stream string) ([]state.RowError, error) {
	st, err := openStateReadOnly(d.cfg)
	if err != nil || st == nil {
		return nil, err
	}
	defer st.Close()
	return st.Stream(stream).RowErrors(d.ctx)
}

// census is what the emulator holds, with the members' scopes when
// scopes is set.
func (d *demoRun) census(scopes bool) string {
	members := d.emu.AllMembers()
	s := fmt.Sprintf("%d users, %d groups and %d memberships", len(d.emu.Users()), len(d.emu.Groups()), len(members))
	if !scopes {
		return s
	}
	count := map[string]int{}
	for _, m := range members {
		count[m.Scope]++
	}
	return fmt.Sprintf("%s (%d admins, %d moderators, %d participants)", s,
		count[cometchat.ScopeAdmin], count[cometchat.ScopeModerator], count[cometchat.ScopeParticipant])
}

// requests is what the pass asked of the emulator, by stream.
func (d *demoRun) requests() string {
	st := d.emu.Stats()
	return fmt.Sprintf("this pass made %d import requests (users %d, groups %d, members %d) and %d updates (users %d, groups %d, member scopes %d).",
		st.UserImportRequests+st.ImportRequests+st.MemberImportRequests, st.UserImportRequests, st.ImportRequests, st.MemberImportRequests,
		st.UserUpdates+st.Updates+st.ScopeChanges, st.UserUpdates, st.Updates, st.ScopeChanges)
}

func demoConfig(dbPath, baseURL, statePath string) string {
	return fmt.Sprintf(`# Written by 'cometsync demo'.
source:
  driver: sqlite
  dsn: %q
  page_size: 100
users:
  query: |
    SELECT u.id, u.updated_at, u.uid, u.display_name AS name, u.avatar_url AS avatar,
           u.profile AS metadata, u.tags, u.created_at
    FROM users u
  cursor: {column: updated_at, tiebreaker: id, lag: 0s}   # the demo writes and reads in one process; use seconds in production
groups:
  query: |
    SELECT g.id, g.updated_at, g.guid, g.title AS name, g.kind AS type,
           g.join_password AS password, g.icon_url AS icon, g.created_at,
           g.meta AS metadata, g.tags, g.owner_uid, u.display_name AS owner_name
    FROM chat_groups g LEFT JOIN users u ON u.uid = g.owner_uid
  cursor: {column: updated_at, tiebreaker: id, lag: 0s}
members:
  query: |
    SELECT m.id, m.updated_at, g.guid, m.user_uid AS uid, m.role AS scope, m.joined_at
    FROM memberships m JOIN chat_groups g ON g.id = m.group_id
  cursor: {column: updated_at, tiebreaker: id, lag: 0s}
  via: import
cometchat:
  app_id: demo
  region: us
  api_key: demo-key
  base_url: %q
  batch_size: 50
  concurrency: 4
  rate_limits:
    import_per_minute: 6000   # the emulator has no limit; CometChat allows 60
state:
  path: %q
log:
  level: warn
  format: console
`, dbPath, baseURL, statePath)
}
