package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/pgtest"
	"github.com/cometsync/cometsync/internal/state"
)

// srv is the MariaDB the package's tests share, and pgsrv the PostgreSQL
// (see postgres_test.go); every test gets its own database on them.
var (
	srv   *mariadbtest.Server
	pgsrv *pgtest.Server
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	pg, err := pgtest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pg.Stop()
	pgsrv = pg
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()
	return mariadbtest.RunMain(m, &srv)
}

// cleanups are run when the package's tests end: servers that some tests
// share, started by the first of them.
var cleanups []func()

const testAPIKey = "sk-test-9f8e7d6c5b4a"

// query is the source.query of a test's config until it sets another,
// often made by replacing part of this one.
const query = mariadbtest.GroupsQuery

// env is one test's world: a database, a CometChat emulator, a state
// directory and a config file.
type env struct {
	t      *testing.T
	root   *sql.DB
	reader string // the SELECT-only user's DSN
	emu    *cometchattest.Emulator
	http   *httptest.Server
	dir    string
	cfg    string
	opts   cfgOpts
	// outputs collects everything the command printed, to check for secrets.
	outputs []string
}

// cfgOpts are the knobs of the config file a test writes.
type cfgOpts struct {
	dsnParams string
	query     string
	lag       string
	pageSize  int
	batchSize int
	apiKey    string
	parkAfter int
	importPM  int    // cometchat.rate_limits.import_per_minute
	extra     string // appended YAML
	// sourceExtra is appended to the source section (two-space indented
	// keys, e.g. "  max_invalid_percent: 100\n"); cursorExtra to its cursor.
	sourceExtra, cursorExtra string
	// streams, when set, replaces source.query and source.cursor: the
	// top-level users/groups/members sections.
	streams string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, srv)
}

// newEnvOn is newEnv on another server than the package's.
func newEnvOn(t *testing.T, srv *mariadbtest.Server) *env {
	t.Helper()
	rootDSN := srv.CreateDatabase(t, t.Name())
	root, err := sql.Open("mysql", rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	if _, err := root.Exec(mariadbtest.GroupsSchema); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, root: root, reader: srv.CreateReader(t, rootDSN), dir: t.TempDir()}
	e.emu = cometchattest.New(cometchattest.Config{APIKey: testAPIKey})
	e.http = httptest.NewServer(e.emu)
	t.Cleanup(e.http.Close)
	e.cfg = filepath.Join(e.dir, "cometsync.yaml")
	e.opts = cfgOpts{query: query, lag: "0s", pageSize: 100, batchSize: 50, apiKey: testAPIKey, parkAfter: 10, importPM: 1000000}
	e.writeConfig()
	t.Cleanup(e.checkNoSecrets)
	return e
}

// configure changes the config file.
func (e *env) configure(f func(*cfgOpts)) {
	f(&e.opts)
	e.writeConfig()
}

func (e *env) writeConfig() {
	o := e.opts
	indented := "    " + strings.ReplaceAll(o.query, "\n", "\n    ")
	groups := fmt.Sprintf(`  query: |
%s
  cursor:
    column: updated_at
    tiebreaker: id
    lag: %s
%s`, indented, o.lag, o.cursorExtra)
	if o.streams != "" {
		groups = ""
	}
	yaml := fmt.Sprintf(`source:
  driver: mysql
  dsn: %q
%s  page_size: %d
%scometchat:
  app_id: testapp
  region: eu
  api_key: %q
  base_url: %q
  batch_size: %d
  concurrency: 4
  timeout: 5s
  retry:
    max_attempts: 2
    initial_backoff: 10ms
    max_backoff: 50ms
  rate_limits:
    import_per_minute: %d
    other_per_minute: 1000000
state:
  path: %q
  park_after: %d
log:
  level: info
  format: json
%s%s`, e.reader+o.dsnParams, groups, o.pageSize, o.sourceExtra, o.apiKey, e.http.URL, o.batchSize, o.importPM,
		filepath.Join(e.dir, "state.db"), o.parkAfter, o.extra, o.streams)
	if err := os.WriteFile(e.cfg, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// result is one run of the command line.
type result struct {
	code           int
	stdout, stderr string
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	e.outputs = append(e.outputs, r.stdout, r.stderr)
	return r
}

// once runs a pass and requires the exit code.
func (e *env) once(want int, flags ...string) result {
	e.t.Helper()
	r := e.run(append([]string{"once", "--config", e.cfg}, flags...)...)
	if r.code != want {
		e.t.Fatalf("once %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", flags, r.code, want, r.stdout, r.stderr)
	}
	return r
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.root.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// status runs `status --json`.
func (e *env) status() statusReport {
	e.t.Helper()
	r := e.run("status", "--config", e.cfg, "--json")
	if r.code != 0 {
		e.t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	var st statusReport
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	return st
}

// rowErrors runs `errors --json`.
func (e *env) rowErrors() []state.RowError {
	e.t.Helper()
	r := e.run("errors", "--config", e.cfg, "--json")
	if r.code != 0 {
		e.t.Fatalf("errors: exit %d: %s", r.code, r.stderr)
	}
	var rows []state.RowError
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		e.t.Fatalf("errors --json is not JSON: %v\n%s", err, r.stdout)
	}
	return rows
}

// requests is the number of requests the emulator answered since the last
// ResetStats.
// requests counts the requests that could write to CometChat: imports,
// updates, deletes. The read each pass starts with to check the key is not
// one.
func (e *env) requests() int {
	n := 0
	for k, c := range e.emu.Stats().Requests {
		if !strings.HasPrefix(k, "GET ") {
			n += c
		}
	}
	return n
}

// checkNoSecrets fails the test if any output showed the API key or the
// database password.
func (e *env) checkNoSecrets() {
	pass := ""
	if i, j := strings.Index(e.reader, ":"), strings.Index(e.reader, "@"); i > 0 && j > i {
		pass = e.reader[i+1 : j]
	}
	for _, out := range e.outputs {
		for _, secret := range []string{testAPIKey, pass} {
			if secret != "" && strings.Contains(out, secret) {
				e.t.Errorf("a secret appeared in the output:\n%s", out)
			}
		}
	}
}

// addGroups inserts n simple public groups named g-<id>, stamped an hour ago.
func (e *env) addGroups(n int) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "(CONCAT('g-', UUID_SHORT()), 'Group %d', 'public', NOW(6) - INTERVAL 1 HOUR + INTERVAL %d MICROSECOND)", i, i)
	}
	e.exec(b.String())
}
