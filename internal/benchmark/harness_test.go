package benchmark

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/entities"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
	"github.com/cometsync/cometsync/internal/syncer"
)

const apiKey = "sk-bench-0a1b2c3d4e5f"

// dsnParams is what a production DSN carries (config.example.yaml).
const dsnParams = "?parseTime=true"

// The knobs of every pass: as fast as the emulator allows, as shipped
// otherwise.
const (
	pageSize    = 1000
	batchSize   = 50
	concurrency = 4
	users       = 10_000
	fillChunk   = 100_000
)

// table is a database holding a filled chat_groups table and, once graphOf
// filled them, app_users and memberships of as many rows.
type table struct {
	rows   int
	graph  bool // app_users and memberships are filled too
	root   *sql.DB
	reader string // the SELECT-only user's DSN, without parameters
	// driver is source.driver: "mysql" (MariaDB) or "postgres"; params
	// what its DSN carries in production.
	driver, params string
}

// ph is the n-th placeholder of the table's SQL, for a text argument.
func (t *table) ph(n int) string {
	if t.driver == source.DriverPostgres {
		return fmt.Sprint("$", n, "::text") // CONCAT's arguments have no type to infer
	}
	return "?"
}

var (
	sharedMu sync.Mutex
	tables   = map[string]*table{}
	closers  []func()
)

// closeShared releases what benchmarks share; TestMain calls it.
func closeShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	closers = nil
}

// tableOf returns a database whose chat_groups has n rows, filling it on
// first use; later benchmarks of the run reuse it.
func tableOf(tb testing.TB, n int) *table {
	tb.Helper()
	return databaseOf(tb, fmt.Sprintf("groups_%d", n), n)
}

// databaseOf returns the database name with chat_groups of n rows, creating
// and filling it on first use.
func databaseOf(tb testing.TB, name string, n int) *table {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if t, ok := tables[name]; ok {
		return t
	}
	start := time.Now()
	rootDSN := srv.CreateDatabase(tb, name)
	root, err := sql.Open("mysql", rootDSN)
	if err != nil {
		tb.Fatal(err)
	}
	closers = append(closers, func() { root.Close() })
	// One connection, so the session settings below hold for every statement.
	root.SetMaxOpenConns(1)
	fill(tb, root, n)
	t := &table{rows: n, root: root, reader: srv.CreateReader(tb, rootDSN), driver: source.DriverMySQL, params: dsnParams}
	tables[name] = t
	tb.Logf("filled %s.chat_groups with %d rows in %s", name, n, time.Since(start).Round(time.Millisecond))
	return t
}

// fill creates the schema and inserts n groups and their owners with
// INSERT ... SELECT from MariaDB's sequence engine, a chunk per statement.
//
// The rows look like a real application's: a tenth password groups, a
// fifth private, most with an icon, JSON metadata and tags (as a JSON array
// or a comma list), six in seven with an owner. updated_at is a permutation
// of the ids (two rows a second), so reading in cursor order visits the
// primary key in random order, as a table that has lived for a while does.
func fill(tb testing.TB, root *sql.DB, n int) {
	tb.Helper()
	exec := func(q string, args ...any) {
		tb.Helper()
		if _, err := root.Exec(q, args...); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	// The test server starts with a 64 MiB buffer pool; a production
	// server keeps a table like this one in memory.
	exec(`SET GLOBAL innodb_buffer_pool_size = 1024 * 1024 * 1024`)
	exec(mariadbtest.GroupsSchema)
	exec(`SET SESSION unique_checks = 0, foreign_key_checks = 0`)
	exec(fmt.Sprintf(`INSERT INTO users SELECT CONCAT('u', seq), CONCAT('User ', seq),
		CONCAT('https://cdn.example.com/avatars/u', seq, '.png') FROM seq_1_to_%d`, users))
	for from := 1; from <= n; from += fillChunk {
		to := min(from+fillChunk-1, n)
		exec(fmt.Sprintf(`INSERT INTO chat_groups
			(id, guid, title, kind, join_password, icon_url, created_at, meta, tags, owner_uid, updated_at)
			SELECT seq, CONCAT('grp-', seq), CONCAT('Group ', seq),
				ELT(1 + seq %% 10, 'public', 'public', 'public', 'public', 'public', 'public', 'private', 'private', 'password', 'public'),
				IF(seq %% 10 = 8, CONCAT('pw-', seq), NULL),
				IF(seq %% 4 = 0, NULL, CONCAT('https://cdn.example.com/groups/', seq, '.png')),
				'2023-01-01' + INTERVAL seq SECOND,
				IF(seq %% 5 = 0, NULL, JSON_OBJECT('region', ELT(1 + seq %% 4, 'eu', 'us', 'in', 'apac'), 'tier', seq %% 3, 'external_id', seq)),
				CASE seq %% 3 WHEN 0 THEN '["sales","emea"]' WHEN 1 THEN 'support,tier-2' ELSE NULL END,
				IF(seq %% 7 = 0, NULL, CONCAT('u', 1 + seq %% %d)),
				'2024-01-01' + INTERVAL ((seq * 48271) %% 1000003) DIV 2 SECOND
			FROM seq_%d_to_%d`, users, from, to))
	}
	exec(`ANALYZE TABLE chat_groups, users`)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/cometsync once per run, as scripts/build-static.sh does
// (CGO off, -trimpath) but with symbols, so that perf can read a profile.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		binPath = filepath.Join(scratch, "cometsync")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/cometsync")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cometsync: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// world is one CometChat app and one state: an emulator served over
// loopback by this process, a state directory and a config file.
type world struct {
	table  *table
	emu    *cometchattest.Emulator
	http   *httptest.Server
	dir    string
	config string
	state  string
}

// stream is one stream section of a world's config.
type stream struct {
	name  string // users, groups or members
	query string
	via   string // members only: import or rest; empty: the default (import)
}

var (
	usersStream   = stream{name: "users", query: mariadbtest.UsersQuery}
	groupsStream  = stream{name: "groups", query: mariadbtest.GroupsQuery}
	membersStream = stream{name: "members", query: mariadbtest.MembersQuery}
)

// worldOpts says what a world's config holds beyond the fixed knobs.
type worldOpts struct {
	streams []stream
	// otherPerMinute, when set, is rate_limits.other_per_minute and the
	// emulator's enforced limit of the same calls; otherwise neither
	// limits anything.
	otherPerMinute int
}

// newWorld makes an empty app and state in dir for t's groups stream,
// closed when the benchmark ends (or, with shared, when the run ends).
func newWorld(tb testing.TB, t *table, dir string, shared bool) *world {
	tb.Helper()
	return newWorldOf(tb, t, dir, shared, worldOpts{streams: []stream{groupsStream}})
}

// newWorldOf is newWorld for the streams and limits of opts; the config is
// in the streams form, one section a stream.
func newWorldOf(tb testing.TB, t *table, dir string, shared bool, opts worldOpts) *world {
	tb.Helper()
	other := 100_000_000
	emuCfg := cometchattest.Config{APIKey: apiKey}
	if opts.otherPerMinute > 0 {
		other = opts.otherPerMinute
		emuCfg.OtherPerMinute = float64(other)
	}
	w := &world{table: t, dir: dir, emu: cometchattest.New(emuCfg)}
	w.http = httptest.NewServer(w.emu)
	if shared {
		sharedMu.Lock()
		closers = append(closers, w.http.Close)
		sharedMu.Unlock()
	} else {
		tb.Cleanup(w.http.Close)
	}
	w.state = filepath.Join(dir, "state.db")
	w.config = filepath.Join(dir, "cometsync.yaml")
	var sections strings.Builder
	for _, st := range opts.streams {
		indented := "    " + strings.ReplaceAll(st.query, "\n", "\n    ")
		fmt.Fprintf(&sections, `%s:
  query: |
%s
  cursor:
    column: updated_at
    tiebreaker: id
    lag: 0s
`, st.name, indented)
		if st.via != "" {
			fmt.Fprintf(&sections, "  via: %s\n", st.via)
		}
	}
	yaml := fmt.Sprintf(`source:
  driver: %s
  dsn: %q
  page_size: %d
%s%sstate:
  path: %q
log:
  level: warn
  format: json
`, t.driver, t.reader+t.params, pageSize, sections.String(), cometchatSection(w.http.URL, concurrency, other), w.state)
	if err := os.WriteFile(w.config, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	return w
}

// cometchatSection is the cometchat: section of a benchmark's config: the
// emulator at baseURL, the benchmarks' batch size, concurrency batches in
// flight, no import limit to speak of, otherPerMinute other calls.
func cometchatSection(baseURL string, concurrency, otherPerMinute int) string {
	return fmt.Sprintf(`cometchat:
  app_id: benchapp
  region: eu
  api_key: %q
  base_url: %q
  batch_size: %d
  concurrency: %d
  timeout: 30s
  rate_limits:
    import_per_minute: 100000000
    other_per_minute: %d
`, apiKey, baseURL, batchSize, concurrency, otherPerMinute)
}

// perfEnv names a directory: when set, every `cometsync once` runs under
// `perf record -g` writing there (the RSS and CPU figures are then perf's).
const perfEnv = "COMETSYNC_BENCH_PERF"

// perfSeq numbers the profiles of a run.
var perfSeq atomic.Int64

// run is one `cometsync once` process and what it cost.
type run struct {
	wall     time.Duration // of the cometsync process, start to exit
	rssKiB   int64         // the child's peak resident set (see spawnEnv)
	childCPU time.Duration // user + system time of cometsync
	selfCPU  time.Duration // of this process: the emulator, mostly
	dbCPU    time.Duration // of mariadbd
	// machineCPU is the busy time of every CPU of the machine, whoever
	// used it: what it has beyond the three above went to other processes.
	machineCPU time.Duration
	pass       lastPass // what the pass recorded in its state
}

// lastPass is the part of the state's last-pass record the benchmarks read.
type lastPass struct {
	Read     int           `json:"read"`
	Imported int           `json:"imported"`
	Updated  int           `json:"updated"`
	Invalid  int           `json:"invalid"`
	Rejected int           `json:"rejected"`
	Deleted  int           `json:"deleted"`
	Duration time.Duration `json:"duration_ns"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error"`
}

// once runs `cometsync once` against w and fails unless it exits 0 having
// read and delivered want rows, none of them failed.
func (w *world) once(tb testing.TB, want int) run {
	tb.Helper()
	return w.onceWith(tb, want, want)
}

// onceWith runs `cometsync once` with extra flags and fails unless it exits
// 0 having read read rows and delivered sent of them, none failed.
func (w *world) onceWith(tb testing.TB, read, sent int, flags ...string) run {
	tb.Helper()
	bin := binary(tb)
	name, args := bin, append([]string{"once", "--config", w.config}, flags...)
	if dir := os.Getenv(perfEnv); dir != "" {
		// Profiling: the figures below are perf's, not cometsync's.
		// Numbered: a benchmark may run several processes (a seed, the
		// timed one, a restore), each its own profile.
		out := filepath.Join(dir, fmt.Sprintf("%s.%d.perf.data", strings.ReplaceAll(tb.Name(), "/", "_"), perfSeq.Add(1)))
		name, args = "perf", append([]string{"record", "-F", "499", "-g", "-o", out, "--", bin}, args...)
	}
	cmd, figures, err := spawned(w.dir, name, args...)
	if err != nil {
		tb.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	db := mariadbdPID()
	db0, self0, busy0 := procCPU(db), selfCPU(), machineBusy()
	runErr := cmd.Run()
	var r run
	r.dbCPU, r.selfCPU, r.machineCPU = procCPU(db)-db0, selfCPU()-self0, machineBusy()-busy0
	u, err := figures()
	if runErr != nil || err != nil {
		tb.Fatalf("cometsync once: %v, %v\nstdout:\n%s\nstderr:\n%s", runErr, err, stdout.String(), stderr.String())
	}
	r.wall, r.rssKiB, r.childCPU = u.Wall, u.MaxRSS, u.User+u.System

	st, err := state.Open(w.state, state.Options{ReadOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	raw, err := st.LastPass(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(raw, &r.pass); err != nil {
		tb.Fatalf("last pass %s: %v", raw, err)
	}
	p := r.pass
	if !p.OK || p.Read != read || p.Invalid+p.Rejected != 0 || p.Imported+p.Updated != sent {
		tb.Fatalf("the pass did not read %d rows and deliver %d: %+v\nstdout:\n%s\nstderr:\n%s", read, sent, p, stdout.String(), stderr.String())
	}
	return r
}

// report adds the figures of runs to the benchmark's output: rows/s is
// rows delivered per second of the whole process's wall time.
func report(b *testing.B, rows int, runs []run) {
	var wall, child, self, db, machine, pass time.Duration
	var rss int64
	for _, r := range runs {
		wall += r.wall
		child += r.childCPU
		self += r.selfCPU
		db += r.dbCPU
		machine += r.machineCPU
		pass += r.pass.Duration
		rss = max(rss, r.rssKiB)
	}
	n := float64(len(runs))
	b.ReportMetric(float64(rows)*n/wall.Seconds(), "rows/s")
	b.ReportMetric(wall.Seconds()/n, "wall_s")
	b.ReportMetric(pass.Seconds()/n, "pass_s")
	b.ReportMetric(float64(rss)/1024, "peak_rss_MiB")
	b.ReportMetric(child.Seconds()/n, "cometsync_cpu_s")
	b.ReportMetric(self.Seconds()/n, "emulator_cpu_s")
	b.ReportMetric(db.Seconds()/n, "mariadb_cpu_s")
	// Other engineers' builds and tests share the machine: say how much.
	b.ReportMetric(max(machine-child-self-db, 0).Seconds()/n, "other_cpu_s")
}

// selfCPU is this process's user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the time every CPU of the machine spent neither idle nor
// waiting for I/O, from /proc/stat (USER_HZ, 100 a second on Linux).
func machineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait, not guest time (counted in user)
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// mariadbdPID finds the mariadbd this process started; 0 if none.
func mariadbdPID() int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, _, ok := procStat(pid)
		if ok && ppid == self && comm == "mariadbd" {
			return pid
		}
	}
	return 0
}

// procCPU is a process's user + system time, from /proc.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	_, _, cpu, _ := procStat(pid)
	return cpu
}

// procStat reads a process's name, parent and CPU time from
// /proc/PID/stat (times in USER_HZ, 100 a second on Linux).
func procStat(pid int) (comm string, ppid int, cpu time.Duration, ok bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, false
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, 0, false
	}
	comm = s[open+1 : end]
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return comm, ppid, time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// bareRead reads the whole table with source.Source.ReadPage, the keyset
// pages a pass reads, and does nothing with the rows. It returns the rows
// read and how long it took.
func bareRead(tb testing.TB, t *table) (int, time.Duration) {
	tb.Helper()
	ctx := context.Background()
	src, err := source.Open(ctx, sourceConfig(t), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	start := time.Now()
	upper, err := src.UpperBound(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var after *source.Position
	n := 0
	for {
		rows, err := src.ReadPage(ctx, after, upper, pageSize)
		if err != nil {
			tb.Fatal(err)
		}
		n += len(rows)
		if len(rows) < pageSize {
			break
		}
		last := rows[len(rows)-1]
		after = &source.Position{Cursor: last.Cursor, Key: last.Key}
	}
	return n, time.Since(start)
}

func sourceConfig(t *table) source.Config {
	return source.Config{Driver: t.driver, DSN: t.reader + t.params, Query: mariadbtest.GroupsQuery, Cursor: "updated_at", Tiebreaker: "id"}
}

// inProcess wires a pass as cmd/cometsync's openEngine does, in this
// process, so that `go test -cpuprofile` sees the syncer, the client and the
// emulator at once. The caller closes the returned state.
func (w *world) inProcess(tb testing.TB) (*syncer.Syncer, *state.Store) {
	tb.Helper()
	ctx := context.Background()
	st, err := state.Open(w.state, state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	src, err := source.Open(ctx, sourceConfig(w.table), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	cols, err := src.Columns(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := mapping.New(cols, "updated_at", "id", time.UTC)
	if err != nil {
		tb.Fatal(err)
	}
	client := cometchat.New(cometchat.Config{
		BaseURL: w.http.URL, APIKey: apiKey, Timeout: 30 * time.Second,
		ImportPerMinute: 100_000_000, OtherPerMinute: 100_000_000, Concurrency: concurrency,
	}, zap.NewNop())
	s := syncer.New(src, entities.Groups{Mapper: m, API: client}, client, st.Stream("groups"), syncer.Config{
		PageSize: pageSize, BatchSize: batchSize, Concurrency: concurrency,
		Fingerprint: m.Fingerprint(mariadbtest.GroupsQuery, "updated_at", "id", ""),
	}, zap.NewNop(), time.Now)
	return s, st
}
