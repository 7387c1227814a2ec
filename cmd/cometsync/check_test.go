package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/state"
)

// checkRun runs check and requires its exit code.
func (e *env) checkRun(want int) result {
	e.t.Helper()
	r := e.run("check", "--config", e.cfg)
	if r.code != want {
		e.t.Fatalf("check: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
	}
	return r
}

var foundProblems = regexp.MustCompile(`check found (\d+) problem\(s\)`)

// The count check ends with is the number of FAIL lines it printed.
func TestCheckCountsEachProblemOnce(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	good := e.opts
	for _, tc := range []struct {
		name string
		edit func(*cfgOpts)
		fail []string
	}{
		{"extra column", func(o *cfgOpts) { o.query = strings.Replace(query, "g.tags,", "g.tags, g.created_ms,", 1) },
			[]string{`column "created_ms"`}},
		{"cursor column missing", func(o *cfgOpts) { o.query = strings.Replace(query, "g.updated_at,", "", 1) },
			[]string{`source.cursor.column: "updated_at" is not a column of source.query`}},
		{"extra column and a wrong key", func(o *cfgOpts) {
			o.query = strings.Replace(query, "g.tags,", "g.tags, g.created_ms,", 1)
			o.apiKey = "sk-wrong-111"
		}, []string{`column "created_ms"`, "cometchat:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.opts = good
			e.configure(tc.edit)
			r := e.checkRun(1)
			fails := strings.Count(r.stdout, "\nFAIL  ")
			if fails != len(tc.fail) {
				t.Errorf("%d FAIL lines, want %d:\n%s", fails, len(tc.fail), r.stdout)
			}
			for _, want := range tc.fail {
				if !strings.Contains(r.stdout, "FAIL  "+want) && !strings.Contains(r.stdout, "FAIL  source.query: "+want) {
					t.Errorf("no FAIL line with %q:\n%s", want, r.stdout)
				}
			}
			m := foundProblems.FindStringSubmatch(r.stderr)
			if m == nil {
				t.Fatalf("no problem count in stderr:\n%s", r.stderr)
			}
			if n, _ := strconv.Atoi(m[1]); n != fails {
				t.Errorf("check found %d problem(s), but listed %d:\n%s", n, fails, r.stdout)
			}
		})
	}
}

// A state held by a running cometsync is worth a warning, not a failure,
// and check says what a pass started now does: it stops, with exit 1.
func TestCheckLockedState(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	st, err := state.Open(e.dir+"/state.db", state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := e.checkRun(0)
	if !strings.Contains(r.stdout, "warn  state: ") || !strings.Contains(r.stdout, "'once' with this config exits at once with exit 1") {
		t.Errorf("check does not warn that once would exit 1:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "wait") {
		t.Errorf("check claims a pass would wait:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "all checks passed, with 1 warning(s) above") {
		t.Errorf("check's verdict does not count the warning:\n%s", r.stdout)
	}
	// What the warning says is what happens.
	if r := e.run("once", "--config", e.cfg); r.code != 1 || !strings.Contains(r.stderr, "in use by another cometsync process") {
		t.Errorf("once on a locked state: exit %d, want 1\n%s", r.code, r.stderr)
	}
}

// Without an index on (cursor, tiebreaker), check warns, naming the table
// and columns behind the query's aliases and the index to create.
func TestCheckKeysetIndex(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	r := e.checkRun(0)
	if !strings.Contains(r.stdout, "idx_cursor") || strings.Contains(r.stdout, "warn  ") {
		t.Errorf("check with the index:\n%s", r.stdout)
	}
	e.exec("ALTER TABLE chat_groups DROP INDEX idx_cursor")
	r = e.checkRun(0)
	for _, want := range []string{"warn  source: the keyset read is not in index order of (updated_at, id): no index is used, every page scans chat_groups",
		"(EXPLAIN: type ALL",
		"CREATE INDEX chat_groups_updated_at_id ON chat_groups (updated_at, id);", "all checks passed, with 1 warning(s) above"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check without the index lacks %q:\n%s", want, r.stdout)
		}
	}
	// Aliased columns: the index is on the table's own names.
	e.configure(func(o *cfgOpts) {
		o.query = strings.Replace(strings.Replace(query, "g.id,", "g.id AS gid,", 1), "g.updated_at,", "g.updated_at AS changed,", 1)
	})
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	aliased := strings.Replace(strings.Replace(string(cfg), "column: updated_at", "column: changed", 1), "tiebreaker: id", "tiebreaker: gid", 1)
	if err := os.WriteFile(e.cfg, []byte(aliased), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.checkRun(0)
	for _, want := range []string{"warn  source: the keyset read is not in index order of (changed, gid)", "CREATE INDEX chat_groups_updated_at_id ON chat_groups (updated_at, id);"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check with aliased columns lacks %q:\n%s", want, r.stdout)
		}
	}
}

// Rows with a NULL cursor are counted and explained: a pass never reads
// them.
func TestCheckNullCursors(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	e.exec("ALTER TABLE chat_groups MODIFY updated_at DATETIME(6) NULL")
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('n1', 'N1', 'public', NULL), ('n2', 'N2', 'public', NULL)`)
	r := e.checkRun(0)
	for _, want := range []string{"warn  source: 2 row(s) have a NULL updated_at: a pass never reads them",
		"COALESCE(updated_at, <another column that is never NULL>) AS updated_at", "3 rows to sync"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check lacks %q:\n%s", want, r.stdout)
		}
	}
}

// With base_url set, check names the URL, not the app_id and region it
// does not use.
func TestCheckNamesTheBaseURL(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	r := e.checkRun(0)
	if want := "ok    cometchat: the API key works for cometchat.base_url " + e.http.URL; !strings.Contains(r.stdout, want) {
		t.Errorf("check lacks %q:\n%s", want, r.stdout)
	}
	if strings.Contains(r.stdout, "region") {
		t.Errorf("check names a region it does not use:\n%s", r.stdout)
	}
}

// Every bad value of the config is listed, each with its key and value;
// the exit code stays 2.
func TestCheckConfigListsEveryBadValue(t *testing.T) {
	e := newEnv(t)
	e.configure(func(o *cfgOpts) {
		o.batchSize = 51
		o.extra = "schedule: \"every day\"\nshutdown_timeout: 0s\n"
	})
	r := e.run("check", "--config", e.cfg)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"config: 3 problems:", "\n  cometchat.batch_size: 51 is out of range", "\n  schedule: \"every day\" is not a schedule",
		"\n  shutdown_timeout: 0s must be more than 0"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// check's first-backfill estimate follows the configured rate.
func TestBackfillEstimateFollowsTheRate(t *testing.T) {
	for _, tc := range []struct {
		rows      int64
		perMinute int
		want      string
	}{
		{1_000_000, 3000, "about 5h33m0s"},
		{1_000_000, 60000, "about 17m0s"},
		{100, 3000, "under a minute"},
	} {
		if got := backfillTime(tc.rows, tc.perMinute); got != tc.want {
			t.Errorf("%d rows at %d a minute: %q, want %q", tc.rows, tc.perMinute, got, tc.want)
		}
	}
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands(1234567) = %q", got)
	}
}
