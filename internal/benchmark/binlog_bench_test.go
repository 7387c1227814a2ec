package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mariadbtest"
)

// The binlog feed benchmark's data: existing rows that the changes update
// (new groups would be paced by the import limit, 50 a second at
// CometChat's 60 requests a minute, not by the feed).
const (
	blUsers   = 2_000
	blGroups  = 20_000
	blMembers = 2 * blGroups // two members a group
	// blLatency is what the emulator adds to every request.
	blLatency = 20 * time.Millisecond
	// blWriters commit the paced changes, each on its own connection.
	blWriters = 4
)

// blSchema is users, groups and memberships keyed by id: what the three
// binlog streams read.
const blSchema = `
CREATE TABLE app_users (
	id BIGINT PRIMARY KEY,
	uid VARCHAR(100) NOT NULL,
	display_name VARCHAR(200)
);
CREATE TABLE chat_groups (
	id BIGINT PRIMARY KEY,
	guid VARCHAR(200) NOT NULL,
	title VARCHAR(300),
	kind VARCHAR(20)
);
CREATE TABLE memberships (
	id BIGINT PRIMARY KEY,
	group_id BIGINT NOT NULL,
	user_uid VARCHAR(100) NOT NULL,
	role VARCHAR(20)
)`

// blStreams is the config of the three streams in binlog mode.
const blStreams = `users:
  query: |
    SELECT u.id, u.uid, u.display_name AS name FROM app_users u
  cursor: {tiebreaker: id}
  table: app_users
groups:
  query: |
    SELECT g.id, g.guid, g.title AS name, g.kind AS type FROM chat_groups g
  cursor: {tiebreaker: id}
  table: chat_groups
members:
  query: |
    SELECT m.id, g.guid, m.user_uid AS uid, m.role AS scope
    FROM memberships m JOIN chat_groups g ON g.id = m.group_id
  cursor: {tiebreaker: id}
  table: memberships
`

// blRoles is the cycle of a membership's role changes: each differs from
// the one before, starting from the seeded participant.
var blRoles = [...]string{"moderator", "admin", "participant"}

// BenchmarkBinlogLatency measures binlog mode's commit-to-acknowledgment
// latency: `cometsync run` follows the binary log of a MariaDB while the
// benchmark commits paced UPDATEs (each its own transaction, half of them
// a group's title, half a membership's role) and an emulator that answers
// every request 20 ms late timestamps CometChat's acknowledgment of each
// (the end of PUT /groups/{guid} or PUT /groups/{guid}/members/{uid}
// carrying the new value). Goal: at 100 changes a second p50 < 200 ms and
// p99 < 1 s; at 1,000 a second a lag that does not grow.
//
// COMETSYNC_BENCH_BINLOG_SECONDS changes how long each rate runs (default
// 30 s at 100/s, 60 s at 1,000/s), COMETSYNC_BENCH_BINLOG_CONCURRENCY
// cometchat.concurrency (default 4, as shipped).
func BenchmarkBinlogLatency(b *testing.B) {
	srv, err := mariadbtest.StartMain(mariadbtest.WithBinlog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	for _, c := range []struct {
		rate int
		secs int
	}{{100, 30}, {1000, 60}} {
		secs := c.secs
		if v, err := strconv.Atoi(os.Getenv("COMETSYNC_BENCH_BINLOG_SECONDS")); err == nil && v > 0 {
			secs = v
		}
		b.Run(fmt.Sprintf("%d_per_s", c.rate), func(b *testing.B) {
			for range b.N {
				benchBinlog(b, srv, c.rate, time.Duration(secs)*time.Second)
			}
		})
	}
}

// blWorld is a database, an emulator behind the acknowledgment tracker,
// and the config of a `cometsync run` in binlog mode.
type blWorld struct {
	root    *sql.DB
	emu     *cometchattest.Emulator
	tracker *ackTracker
	config  string
	metrics string // URL of the child's /metrics
}

func newBLWorld(b *testing.B, srv *mariadbtest.Server, serverID int) *blWorld {
	b.Helper()
	rootDSN := srv.CreateDatabase(b, fmt.Sprintf("binlog_%d", serverID))
	root, err := sql.Open("mysql", rootDSN)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { root.Close() })
	root.SetMaxOpenConns(blWriters)
	exec := func(q string) {
		b.Helper()
		if _, err := root.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range strings.Split(blSchema, ";") {
		exec(q)
	}
	exec(fmt.Sprintf(`INSERT INTO app_users SELECT seq, CONCAT('u', seq), CONCAT('User ', seq) FROM seq_1_to_%d`, blUsers))
	exec(fmt.Sprintf(`INSERT INTO chat_groups SELECT seq, CONCAT('g', seq), CONCAT('Group ', seq), 'public' FROM seq_1_to_%d`, blGroups))
	// Membership m is user 1 + m % blUsers in group 1 + (m-1) / 2.
	exec(fmt.Sprintf(`INSERT INTO memberships SELECT seq, 1 + (seq - 1) DIV 2, CONCAT('u', 1 + seq %% %d), 'participant' FROM seq_1_to_%d`, blUsers, blMembers))
	reader := srv.CreateReader(b, rootDSN)
	dsn, err := mysql.ParseDSN(reader)
	if err != nil {
		b.Fatal(err)
	}
	exec(fmt.Sprintf("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '%s'@'%%'", dsn.User))

	w := &blWorld{root: root, emu: cometchattest.New(cometchattest.Config{APIKey: apiKey}), tracker: newAckTracker()}
	h := httptest.NewUnstartedServer(w.tracker.wrap(w.emu))
	h.Config.ConnState = func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateNew {
			w.tracker.conns.Add(1)
		}
	}
	h.Start()
	b.Cleanup(h.Close)
	port, err := mariadbtest.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	w.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	conc := concurrency
	if v, err := strconv.Atoi(os.Getenv("COMETSYNC_BENCH_BINLOG_CONCURRENCY")); err == nil && v > 0 {
		conc = v
	}
	dir := b.TempDir()
	w.config = filepath.Join(dir, "cometsync.yaml")
	yaml := fmt.Sprintf(`source:
  driver: mysql
  dsn: %q
  page_size: %d
  mode: binlog
  binlog:
    server_id: %d
%sstate:
  path: %q
http:
  listen: "127.0.0.1:%d"
log:
  level: warn
  format: json
%s`, reader+dsnParams, pageSize, serverID, cometchatSection(h.URL, conc, 100_000_000), filepath.Join(dir, "state.db"), port, blStreams)
	if err := os.WriteFile(w.config, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	return w
}

var blServerIDs atomic.Int64

func benchBinlog(b *testing.B, srv *mariadbtest.Server, rate int, dur time.Duration) {
	b.StopTimer()
	w := newBLWorld(b, srv, 100+int(blServerIDs.Add(1)))
	bin := binary(b)

	name, args := bin, []string{"run", "--config", w.config}
	if dir := os.Getenv(perfEnv); dir != "" {
		// Profiling: the CPU figures below include perf's.
		out := filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+".perf.data")
		name, args = "perf", append([]string{"record", "-F", "499", "-g", "-o", out, "--", bin}, args...)
	}
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	fail := func(format string, args ...any) {
		b.Helper()
		b.Fatalf(format+"\nstdout:\n%s\nstderr:\n%s", append(args, stdout.String(), stderr.String())...)
	}

	// The backfill, at no latency; then the feed streams.
	start := time.Now()
	for {
		st := w.emu.Stats()
		if st.ImportedUsers == blUsers && st.ImportedRows == blGroups && st.ImportedMembers == blMembers {
			break
		}
		select {
		case <-done:
			fail("cometsync run exited during the backfill")
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Minute {
			fail("the backfill did not end in 5 minutes: %+v", st)
		}
	}
	b.Logf("backfill of %d users, %d groups, %d memberships: %s", blUsers, blGroups, blMembers, time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // the feed records its position, then streams
	w.emu.SetFaults(cometchattest.Faults{Latency: blLatency})
	w.emu.ResetStats()
	w.tracker.flight.reset()
	conns0 := w.tracker.conns.Load()

	// The measured stretch: CPU of every party, the lag gauge sampled.
	db := binlogMariadbPID(srv.Port())
	child0, db0, self0, busy0 := procCPU(cmd.Process.Pid), procCPU(db), selfCPU(), machineBusy()
	scrapeStop := make(chan struct{})
	var gauge gaugeSamples
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		gauge.scrape(w.metrics, scrapeStop)
	}()
	b.StartTimer()
	total := rate * int(dur/time.Second)
	commitStart := time.Now()
	if err := w.writeChanges(rate, total); err != nil {
		fail("%v", err)
	}
	wrote := time.Since(commitStart)
	// Every change acknowledged, or a minute more.
	drainBy := time.Now().Add(time.Minute)
	for w.tracker.pendingCount() > 0 && time.Now().Before(drainBy) {
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	inFlight, idle, gaps, meanGap, maxGap := w.tracker.flight.figures()
	conns := w.tracker.conns.Load() - conns0
	close(scrapeStop)
	<-scraped
	child, dbCPU, self, busy := procCPU(cmd.Process.Pid)-child0, procCPU(db)-db0, selfCPU()-self0, machineBusy()-busy0

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		fail("cometsync run did not stop within 30 s of SIGTERM")
	}

	lat, unacked := w.tracker.latencies()
	if len(lat) == 0 {
		fail("no change was acknowledged")
	}
	if unacked > 0 {
		b.Errorf("%d of %d changes were not acknowledged within a minute of the last commit", unacked, total)
	}
	st := w.emu.Stats()
	reportBinlog(b, lat, wrote, total)
	b.ReportMetric(float64(unacked), "unacked")
	b.ReportMetric(gauge.max, "gauge_max_lag_s")
	b.ReportMetric(inFlight, "mean_in_flight")
	b.ReportMetric(idle*100, "api_idle_%")
	b.ReportMetric(float64(conns), "new_conns")
	b.ReportMetric(float64(gaps), "api_idle_gaps")
	b.ReportMetric(float64(meanGap)/float64(time.Millisecond), "api_idle_gap_mean_ms")
	b.ReportMetric(float64(maxGap)/float64(time.Millisecond), "api_idle_gap_max_ms")
	b.ReportMetric(child.Seconds(), "cometsync_cpu_s")
	b.ReportMetric(self.Seconds(), "emulator_cpu_s")
	b.ReportMetric(dbCPU.Seconds(), "mariadb_cpu_s")
	b.ReportMetric(max(busy-child-self-dbCPU, 0).Seconds(), "other_cpu_s")
	b.Logf("%d/s for %s: %d changes committed in %s; %d group updates, %d scope changes, max %d requests in flight; lag gauge max %.3f s, last %.3f s",
		rate, dur, total, wrote.Round(time.Millisecond), st.Updates, st.ScopeChanges, st.MaxInFlight, gauge.max, gauge.last)
}

// writeChanges commits total changes at rate a second, on schedule
// whatever the lag: change i is due at i/rate seconds. Even changes rename
// a group, odd ones change a membership's role, each round robin over its
// rows, so a row changes again only after all the others of its table.
func (w *blWorld) writeChanges(rate, total int) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var next atomic.Int64
	errs := make(chan error, blWriters)
	var wg sync.WaitGroup
	for range blWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := w.root.Conn(context.Background())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for {
				seq := int(next.Add(1) - 1)
				if seq >= total {
					return
				}
				time.Sleep(time.Until(start.Add(time.Duration(seq) * interval)))
				n := seq / 2
				var key, value, q string
				var id int
				if seq%2 == 0 {
					id = 1 + n%blGroups
					key, value, q = fmt.Sprintf("g/g%d", id), fmt.Sprintf("T%d", seq), `UPDATE chat_groups SET title = ? WHERE id = ?`
				} else {
					id = 1 + n%blMembers
					key = fmt.Sprintf("m/g%d/u%d", 1+(id-1)/2, 1+id%blUsers)
					value, q = blRoles[(n/blMembers)%len(blRoles)], `UPDATE memberships SET role = ? WHERE id = ?`
				}
				c := w.tracker.expect(key, value)
				if _, err := conn.ExecContext(context.Background(), q, value, id); err != nil {
					errs <- fmt.Errorf("change %d: %w", seq, err)
					return
				}
				w.tracker.committed(c, time.Now())
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// ackTracker matches CometChat's acknowledgments to the committed changes.
type ackTracker struct {
	mu      sync.Mutex
	flight  flight
	conns   atomic.Int64 // connections CometChat accepted
	changes []*blChange
	pending map[string][]*blChange // by key, oldest first
}

type blChange struct {
	value       string
	commit, ack time.Time
}

func newAckTracker() *ackTracker { return &ackTracker{pending: map[string][]*blChange{}} }

// expect registers a change before its commit, so that an acknowledgment
// that beats the committer's clock still finds it.
func (t *ackTracker) expect(key, value string) *blChange {
	c := &blChange{value: value}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.changes = append(t.changes, c)
	t.pending[key] = append(t.pending[key], c)
	return c
}

func (t *ackTracker) committed(c *blChange, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.commit = at
}

// acked records that CometChat acknowledged value for key: the newest
// pending change of key to that value, and the older ones it supersedes
// (a row changed twice before a read is sent once, as it is now).
func (t *ackTracker) acked(key, value string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[key]
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].value != value {
			continue
		}
		for _, c := range p[:i+1] {
			c.ack = at
		}
		if rest := p[i+1:]; len(rest) > 0 {
			t.pending[key] = rest
		} else {
			delete(t.pending, key)
		}
		return
	}
}

func (t *ackTracker) pendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// latencies are the changes' ack − commit times in commit order (0 when
// the acknowledgment came before the committer read its clock), and how
// many were never acknowledged.
func (t *ackTracker) latencies() ([]time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := slices.Clone(t.changes)
	slices.SortFunc(cs, func(a, b *blChange) int { return a.commit.Compare(b.commit) })
	var lat []time.Duration
	unacked := 0
	for _, c := range cs {
		if c.ack.IsZero() || c.commit.IsZero() {
			unacked++
			continue
		}
		lat = append(lat, max(c.ack.Sub(c.commit), 0))
	}
	return lat, unacked
}

// wrap timestamps the end of every successful update request.
func (t *ackTracker) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.flight.enter()
		defer t.flight.leave()
		parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v3"), "/"), "/")
		var key, field string
		switch {
		case r.Method != http.MethodPut || parts[0] != "groups":
		case len(parts) == 2:
			key, field = "g/"+parts[1], "name"
		case len(parts) == 4 && parts[2] == "members":
			key, field = "m/"+parts[1]+"/"+parts[3], "scope"
		}
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		at := time.Now()
		var fields map[string]any
		if sw.status != http.StatusOK || json.Unmarshal(body, &fields) != nil {
			return
		}
		if v, ok := fields[field].(string); ok {
			t.acked(key, v, at)
		}
	})
}

// flight integrates the requests in flight over time: how busy the
// feed keeps CometChat, and how long it leaves it with nothing to do.
type flight struct {
	mu       sync.Mutex
	n        int
	since    time.Time     // of the last change of n
	integral time.Duration // of n over time: requests × time
	idle     time.Duration // with nothing in flight
	gaps     int           // stretches of idle over a millisecond
	gapTotal time.Duration // their time
	maxGap   time.Duration
	start    time.Time
}

func (f *flight) step(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if !f.start.IsZero() {
		el := now.Sub(f.since)
		f.integral += time.Duration(f.n) * el
		if f.n == 0 {
			f.idle += el
			if el > time.Millisecond && d > 0 {
				f.gaps++
				f.gapTotal += el
				f.maxGap = max(f.maxGap, el)
			}
		}
	}
	f.n += d
	f.since = now
}

func (f *flight) enter() { f.step(1) }
func (f *flight) leave() { f.step(-1) }

// reset starts the integration now.
func (f *flight) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start, f.since, f.integral, f.idle, f.gaps, f.gapTotal, f.maxGap = time.Now(), time.Now(), 0, 0, 0, 0, 0
}

// figures are the mean requests in flight, the idle share, and the idle
// stretches since reset.
func (f *flight) figures() (mean, idle float64, gaps int, meanGap, maxGap time.Duration) {
	f.step(0)
	f.mu.Lock()
	defer f.mu.Unlock()
	el := time.Since(f.start)
	if f.gaps > 0 {
		meanGap = f.gapTotal / time.Duration(f.gaps)
	}
	return float64(f.integral) / float64(el), float64(f.idle) / float64(el), f.gaps, meanGap, f.maxGap
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// reportBinlog reports the latency percentiles and the trend: the
// percentiles of the first and the last tenth of the changes.
func reportBinlog(b *testing.B, lat []time.Duration, wrote time.Duration, total int) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	pct := func(l []time.Duration, p float64) time.Duration {
		s := slices.Clone(l)
		slices.Sort(s)
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	b.ReportMetric(float64(total)/wrote.Seconds(), "changes/s")
	b.ReportMetric(ms(pct(lat, 0.50)), "p50_ms")
	b.ReportMetric(ms(pct(lat, 0.90)), "p90_ms")
	b.ReportMetric(ms(pct(lat, 0.99)), "p99_ms")
	b.ReportMetric(ms(slices.Max(lat)), "max_ms")
	tenth := max(len(lat)/10, 1)
	first, last := lat[:tenth], lat[len(lat)-tenth:]
	b.ReportMetric(ms(pct(first, 0.50)), "first10%_p50_ms")
	b.ReportMetric(ms(pct(first, 0.99)), "first10%_p99_ms")
	b.ReportMetric(ms(pct(last, 0.50)), "last10%_p50_ms")
	b.ReportMetric(ms(pct(last, 0.99)), "last10%_p99_ms")
	// The whole series, a tenth at a time.
	var trend []string
	for i := 0; i+tenth <= len(lat); i += tenth {
		part := lat[i : i+tenth]
		trend = append(trend, fmt.Sprintf("%.0f/%.0f", ms(pct(part, 0.5)), ms(pct(part, 0.99))))
	}
	b.Logf("p50/p99 ms by tenth of the changes: %s", strings.Join(trend, " "))
}

// gaugeSamples is cometsync_binlog_lag_seconds as scraped from the child.
type gaugeSamples struct{ max, last float64 }

func (g *gaugeSamples) scrape(url string, stop <-chan struct{}) {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "cometsync_binlog_lag_seconds "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					g.last, g.max = f, max(g.max, f)
				}
			}
		}
		resp.Body.Close()
	}
}

// binlogMariadbPID is the mariadbd this process started on port.
func binlogMariadbPID(port int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, _, ok := procStat(pid)
		if !ok || ppid != os.Getpid() || comm != "mariadbd" {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(raw, []byte("--port="+strconv.Itoa(port)+"\x00")) {
			return pid
		}
	}
	return 0
}
