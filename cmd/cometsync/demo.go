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
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/syncer"
)

const demoGroups = 240

func newDemoCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR]",
		Short: "Run a backfill and an incremental pass on a sample SQLite database and an in-process CometChat emulator",
		Long: `Run cometsync end to end with nothing to set up: it creates a sample SQLite database
of groups (a few of them bad), serves a CometChat emulator on loopback that follows the
documented API (50 groups a request, per-row results, "already exists", update, auth),
runs a backfill, changes some rows, runs an incremental pass, and shows what the error
store holds. Nothing leaves this machine.`,
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

// runDemo runs the demo in dir; kept says whether dir outlives it, for
// the output to say where the files it names will be.
func runDemo(ctx context.Context, dir string, kept bool, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dbPath := filepath.Join(dir, "groups.db")
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
	emu.SetFaults(cometchattest.Faults{RejectRow: func(guid string) (string, string, bool) {
		if guid == "launch-room-7" && refused.CompareAndSwap(false, true) {
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
	log := zap.NewNop()

	fmt.Fprintf(out, "cometsync demo\n==============\nsample database: %s (%d groups, 4 of them bad)\nCometChat emulator: %s\nconfig: %s\n",
		dbPath, demoGroups, srv.URL, cfgPath)
	if kept {
		fmt.Fprintf(out, "These files, and the state beside them, stay in %s after the demo; the emulator stops with it.\n\n", dir)
	} else {
		fmt.Fprintf(out, "These files are in a temporary folder that is removed when the demo exits; run 'cometsync demo --dir DIR' to keep them.\n\n")
	}

	fmt.Fprintf(out, "1. Backfill: the first pass reads every group.\n")
	if err := demoPass(ctx, cfg, log, out, syncer.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(out, "   CometChat now has %d groups (%d import requests of at most 50).\n\n", len(emu.Groups()), emu.Stats().ImportRequests)

	fmt.Fprintf(out, "2. Changes in the database: 5 groups renamed (one of them the group refused in step 1), 10 touched without\n   a change, 1 bad row fixed without touching its timestamp, 3 groups added.\n")
	if err := changeDemoData(ctx, db); err != nil {
		return fmt.Errorf("change the sample database: %w", err)
	}
	emu.ResetStats()
	fmt.Fprintf(out, "3. Incremental pass: only the changed rows and the failed ones are read again; unchanged objects are not sent.\n")
	if err := demoPass(ctx, cfg, log, out, syncer.Options{}); err != nil {
		return err
	}
	st := emu.Stats()
	fmt.Fprintf(out, "   CometChat now has %d groups; this pass made %d import and %d update requests.\n",
		len(emu.Groups()), st.ImportRequests, st.Updates)
	if g, ok := emu.Group("team-0003"); ok {
		fmt.Fprintf(out, "   team-0003 is now named %q.\n", g.Name)
	}

	fmt.Fprintf(out, "\n4. A bulk fix the cursor cannot see: 3 titles corrected without touching updated_at. A rescan\n"+
		"   (cometsync once --rescan) re-reads every row and sends only the objects that changed.\n")
	if _, err := db.ExecContext(ctx, `UPDATE chat_groups SET title = title || ' (fixed)' WHERE id IN (20, 21, 22)`); err != nil {
		return fmt.Errorf("change the sample database: %w", err)
	}
	emu.ResetStats()
	if err := demoPass(ctx, cfg, log, out, syncer.Options{Rescan: true}); err != nil {
		return err
	}
	fmt.Fprintf(out, "   this pass made %d import and %d update requests.\n", emu.Stats().ImportRequests, emu.Stats().Updates)

	fmt.Fprintf(out, "\n5. The error store (cometsync errors): invalid rows are never sent, and are retried on every pass until fixed or parked.\n")
	st2, err := openStateReadOnly(cfg)
	if err != nil {
		return err
	}
	defer st2.Close()
	rows, err := st2.Stream("groups").RowErrors(ctx)
	if err != nil {
		return err
	}
	return writeErrors(out, rows, false, false)
}

func demoPass(ctx context.Context, cfg *config.Config, log *zap.Logger, out io.Writer, opts syncer.Options) error {
	eng, err := openEngine(ctx, cfg, log, nil, nil)
	if err != nil {
		return err
	}
	defer eng.Close()
	g, err := syncer.RunStreams(ctx, eng.graph, opts)
	recordPass(eng, g, err)
	var b strings.Builder
	printGraph(&b, eng, g)
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		fmt.Fprintf(out, "   %s\n", line)
	}
	return passFailure(cfg, err)
}

func demoConfig(dbPath, baseURL, statePath string) string {
	return fmt.Sprintf(`# Written by 'cometsync demo'.
source:
  driver: sqlite
  dsn: %q
  query: |
    SELECT g.id, g.updated_at, g.guid, g.title AS name, g.kind AS type,
           g.join_password AS password, g.icon_url AS icon, g.created_at,
           g.meta AS metadata, g.tags, g.owner_uid, u.display_name AS owner_name
    FROM chat_groups g LEFT JOIN users u ON u.uid = g.owner_uid
  cursor:
    column: updated_at
    tiebreaker: id
    lag: 0s            # the demo writes and reads in one process; use seconds in production
  page_size: 100
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

// createDemoData writes the sample schema and groups: public, private and
// password groups, with and without owners, icons, metadata and tags, and
// four bad rows that break CometChat's constraints.
func createDemoData(ctx context.Context, db *sql.DB) error {
	stmts := []string{
		`CREATE TABLE users (uid TEXT PRIMARY KEY, display_name TEXT)`,
		`CREATE TABLE chat_groups (
			id INTEGER PRIMARY KEY, guid TEXT NOT NULL, title TEXT, kind TEXT, join_password TEXT,
			icon_url TEXT, created_at INTEGER, meta TEXT, tags TEXT, owner_uid TEXT, updated_at TEXT NOT NULL)`,
		`CREATE INDEX idx_groups_cursor ON chat_groups(updated_at, id)`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	for i := 1; i <= 20; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO users VALUES(?, ?)`, fmt.Sprintf("user-%02d", i), fmt.Sprintf("User %d", i)); err != nil {
			return err
		}
	}
	base := time.Now().UTC().Add(-48 * time.Hour)
	kinds := []string{"public", "private", "password"}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := 1; i <= demoGroups; i++ {
		kind := kinds[i%3]
		var pass, icon, meta, tags, owner any
		if kind == "password" {
			pass = fmt.Sprintf("secret-%d", i)
		}
		if i%4 == 0 {
			icon = fmt.Sprintf("https://example.com/icons/%d.png", i)
		}
		if i%5 == 0 {
			meta = fmt.Sprintf(`{"department": "dept-%d", "size": %d}`, i%7, i)
		}
		if i%2 == 0 {
			tags = "team,demo"
		}
		if i%3 != 0 {
			owner = fmt.Sprintf("user-%02d", i%20+1)
		}
		guid := fmt.Sprintf("team-%04d", i)
		name := fmt.Sprintf("Team %d", i)
		if i == 7 {
			guid = "launch-room-7"
		}
		// Four bad rows, each breaking one documented constraint.
		switch i {
		case 50:
			guid = "Bad Guid With Spaces!"
		case 100:
			name = strings.Repeat("very long name ", 10)
		case 150:
			kind, pass = "password", nil
		case 200:
			meta = `["not", "an", "object"]`
		}
		stamp := base.Add(time.Duration(i) * time.Minute).Format("2006-01-02 15:04:05.000")
		if _, err := tx.ExecContext(ctx, `INSERT INTO chat_groups VALUES(?,?,?,?,?,?,?,?,?,?,?)`,
			i, guid, name, kind, pass, icon, base.Unix()+int64(i), meta, tags, owner, stamp); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// changeDemoData renames five groups, touches ten without changing them,
// fixes one bad row without touching its timestamp (the error store's
// retry finds it anyway), and adds three groups.
func changeDemoData(ctx context.Context, db *sql.DB) error {
	now := func(i int) string {
		return time.Now().UTC().Add(-time.Duration(10-i) * time.Second).Format("2006-01-02 15:04:05.000")
	}
	for i := 1; i <= 5; i++ {
		if _, err := db.ExecContext(ctx, `UPDATE chat_groups SET title = ?, updated_at = ? WHERE id = ?`,
			fmt.Sprintf("Team %d (renamed)", i+2), now(i), i+2); err != nil {
			return err
		}
	}
	for i := 1; i <= 10; i++ {
		if _, err := db.ExecContext(ctx, `UPDATE chat_groups SET updated_at = ? WHERE id = ?`, now(i), 100+i); err != nil {
			return err
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE chat_groups SET guid = 'team-0050' WHERE id = 50`); err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		id := demoGroups + i
		if _, err := db.ExecContext(ctx, `INSERT INTO chat_groups(id, guid, title, kind, created_at, updated_at) VALUES(?,?,?,?,?,?)`,
			id, fmt.Sprintf("new-team-%d", i), fmt.Sprintf("New team %d", i), "public", time.Now().Unix(), now(i)); err != nil {
			return err
		}
	}
	return nil
}
