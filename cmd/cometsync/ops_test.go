package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cometsync/cometsync/internal/syncer"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon starts `cometsync run` in the background; stop cancels it and
// returns its exit code and output.
func (e *env) daemon() (stop func() result) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"run", "--config", e.cfg}, &out, &errb) }()
	return func() result {
		cancel()
		select {
		case code := <-done:
			r := result{code: code, stdout: out.String(), stderr: errb.String()}
			e.outputs = append(e.outputs, r.stdout, r.stderr)
			return r
		case <-time.After(30 * time.Second):
			e.t.Fatal("run did not stop within 30 s of its context being cancelled")
			return result{}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls f until it returns "" or the time is up.
func eventually(t *testing.T, within time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRunDaemonSyncsOnScheduleWithProbesAndMetrics(t *testing.T) {
	e := newEnv(t)
	e.addGroups(30)
	addr := freeAddr(t)
	e.configure(func(o *cfgOpts) { o.extra = fmt.Sprintf("schedule: \"@every 1s\"\nhttp:\n  listen: %q\n", addr) })
	stop := e.daemon()
	base := "http://" + addr
	eventually(t, 10*time.Second, func() string {
		if code, body := get(t, base+"/readyz"); code != 200 {
			return fmt.Sprintf("/readyz: %d %s", code, body)
		}
		return ""
	})
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if n := len(e.emu.Groups()); n != 30 {
		t.Errorf("the pass at start delivered %d groups, want 30", n)
	}
	// A change is picked up by a scheduled pass, without a restart.
	e.exec(`INSERT INTO chat_groups (guid, title, kind, updated_at) VALUES ('scheduled', 'On schedule', 'public', NOW(6) - INTERVAL 1 SECOND)`)
	eventually(t, 10*time.Second, func() string {
		if _, ok := e.emu.Group("scheduled"); !ok {
			return "the new row was not delivered by a scheduled pass"
		}
		return ""
	})
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`cometsync_rows_total{outcome="imported",stream="groups"} 31`,
		`cometsync_requests_total{code="200",endpoint="import"}`,
		`cometsync_passes_total{result="success"}`,
		`cometsync_pass_duration_seconds_bucket`,
		`cometsync_failed_rows{stream="groups"} 0`,
		`cometsync_cursor_lag_seconds{stream="groups"} 0`,
		`cometsync_last_success_timestamp_seconds 1.`,
		`cometsync_build_info{version="dev"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	r := stop()
	if r.code != 0 {
		t.Errorf("run exited %d on SIGTERM-like stop, want 0\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `"msg":"pass summary"`) || !strings.Contains(r.stderr, `"imported":30`) {
		t.Errorf("no JSON pass summary with counts in the log:\n%s", r.stderr)
	}
}

func TestRunNotReadyWhilePassesFail(t *testing.T) {
	e := newEnv(t)
	e.addGroups(3)
	addr := freeAddr(t)
	e.configure(func(o *cfgOpts) {
		o.apiKey = "sk-revoked-000"
		o.extra = fmt.Sprintf("schedule: \"@every 1s\"\nhttp:\n  listen: %q\n", addr)
	})
	stop := e.daemon()
	base := "http://" + addr
	eventually(t, 10*time.Second, func() string {
		_, m := get(t, base+"/metrics")
		if !strings.Contains(m, `cometsync_passes_total{result="failure"} 2`) {
			return "no two failed passes in /metrics"
		}
		return ""
	})
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "no pass has completed yet") || !strings.Contains(body, "AUTH_ERR_APIKEY_NOT_FOUND") {
		t.Errorf("/readyz while the key is refused: %d %q", code, body)
	}
	if r := stop(); r.code != 0 || !strings.Contains(r.stderr, "cometchat.api_key") {
		t.Errorf("run: exit %d, log should say which key to check:\n%s", r.code, r.stderr)
	}
}

func TestOncePushesMetricsToThePushgateway(t *testing.T) {
	e := newEnv(t)
	e.addGroups(4)
	var mu sync.Mutex
	var pushed map[string]float64
	var path string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := decodeMetrics(t, r)
		mu.Lock()
		pushed, path = m, r.Method+" "+r.URL.Path
		mu.Unlock()
	}))
	defer gw.Close()
	e.configure(func(o *cfgOpts) { o.extra = fmt.Sprintf("metrics:\n  pushgateway: %q\n", gw.URL) })
	e.once(0)
	mu.Lock()
	if path != "PUT /metrics/job/cometsync" {
		t.Errorf("push went to %q", path)
	}
	last := pushed["cometsync_last_success_timestamp_seconds"]
	if pushed[`cometsync_rows_total{outcome="imported",stream="groups"}`] != 4 || last < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("pushed metrics lack the pass figures: %v", pushed)
	}
	mu.Unlock()
	// A failed run replaces what the job pushed: it must still carry the
	// last success, or "no success for N minutes" alerts would misfire.
	e.configure(func(o *cfgOpts) { o.apiKey = "sk-wrong-333" })
	e.addGroups(1)
	e.once(1)
	mu.Lock()
	defer mu.Unlock()
	if pushed["cometsync_last_success_timestamp_seconds"] != last || pushed[`cometsync_passes_total{result="failure"}`] != 1 {
		t.Errorf("a failed run did not push the last success (%v): %v", last, pushed)
	}
}

// decodeMetrics reads a push in whatever format the client chose into
// `name{label="value",...}` -> value (counters, gauges and untyped).
func decodeMetrics(t *testing.T, r *http.Request) map[string]float64 {
	out := map[string]float64{}
	dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if err != io.EOF {
				t.Errorf("decode pushed metrics: %v", err)
			}
			return out
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[name] = m.GetUntyped().GetValue()
			}
		}
	}
}

func TestCheckListsEveryProblem(t *testing.T) {
	e := newEnv(t)
	insertShapes(e)
	r := e.run("check", "--config", e.cfg)
	if r.code != 0 {
		t.Fatalf("check on a good setup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"ok    source: connected", "ok    cometchat: the API key works", `"guid":"team-alpha"`, "3 rows to sync"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(e.emu.Groups()); n != 0 {
		t.Errorf("check sent %d groups", n)
	}
	e.configure(func(o *cfgOpts) {
		o.apiKey = "sk-wrong-111"
		o.query = strings.Replace(query, "g.tags,", "g.tags, g.created_ms,", 1)
	})
	r = e.run("check", "--config", e.cfg)
	if r.code != 1 {
		t.Errorf("check with two problems: exit %d, want 1", r.code)
	}
	for _, want := range []string{`FAIL  source.query: column "created_ms"`, "FAIL  cometchat:", "cometchat.api_key"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestConfigErrorsExit2NamingTheKey(t *testing.T) {
	e := newEnv(t)
	good := e.opts
	for _, tc := range []struct {
		name string
		edit func(*cfgOpts)
		want string
	}{
		{"unknown key", func(o *cfgOpts) { o.extra = "sourcee:\n  x: 1\n" }, `sourcee`},
		{"missing api_key", func(o *cfgOpts) { o.apiKey = "" }, "cometchat.api_key"},
		{"batch over 50", func(o *cfgOpts) { o.batchSize = 51 }, "cometchat.batch_size: 51"},
		{"bad lag", func(o *cfgOpts) { o.lag = "soon" }, `source.cursor.lag`},
		{"bad schedule", func(o *cfgOpts) { o.extra = "schedule: \"every day\"\n" }, `schedule`},
		{"unknown column", func(o *cfgOpts) { o.query = strings.Replace(query, "g.tags,", "g.tags, g.created_ms,", 1) }, `column "created_ms" is not an import field`},
		{"missing cursor column", func(o *cfgOpts) { o.query = strings.Replace(query, "g.updated_at,", "", 1) }, `source.cursor.column: "updated_at" is not a column of source.query`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.opts = good
			e.configure(tc.edit)
			r := e.run("once", "--config", e.cfg)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, ".go:") {
				t.Errorf("a stack trace for a config error:\n%s", r.stderr)
			}
		})
	}
	e.opts = good
	e.writeConfig()
	if r := e.run("once"); r.code != 2 || !strings.Contains(r.stderr, "--config is required") {
		t.Errorf("once without --config: exit %d %s", r.code, r.stderr)
	}
	if r := e.run("once", "--config", e.cfg, "--bogus"); r.code != 2 {
		t.Errorf("unknown flag: exit %d", r.code)
	}
	if r := e.run(); r.code != 2 || !strings.Contains(r.stderr, "a command is required") || !strings.Contains(r.stderr, "once") {
		t.Errorf("no command: exit %d, stderr:\n%s\nwant exit 2 with the help", r.code, r.stderr)
	}
	if r := e.run("--help"); r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("--help: exit %d", r.code)
	}
}

// A query with two columns that are not import fields names both, so that
// the user fixes them in one round.
func TestSeveralUnknownColumnsAreAllNamed(t *testing.T) {
	e := newEnv(t)
	e.addGroups(3)
	e.configure(func(o *cfgOpts) { o.query = strings.Replace(query, "g.tags,", "g.tags, g.created_ms, g.title,", 1) })
	r := e.run("once", "--config", e.cfg)
	want := "cometsync: source.query: 2 problems with the query's columns:\n" +
		"  column \"created_ms\" is not an import field\n" +
		"  column \"title\" is not an import field\n" +
		"  known columns: guid, name, type, "
	if r.code != 2 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and a message starting\n%s", r.code, r.stderr, want)
	}
	if n := len(e.emu.Groups()); n != 0 {
		t.Errorf("a pass with a bad query sent %d groups", n)
	}
}

func TestProgressLogLine(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	p := newProgress(zap.New(core), io.Discard, false)
	p.report("members", syncer.Report{Read: 1000, Imported: 990, Unchanged: 10, ToGo: 5000, StartedAt: time.Now().Add(-10 * time.Second)})
	entries := logs.All()
	if len(entries) != 1 || entries[0].Message != "progress" {
		t.Fatalf("progress logged %v", entries)
	}
	f := entries[0].ContextMap()
	if f["stream"] != "members" || f["rows_done"] != int64(1000) || f["rows_to_go"] != int64(4000) || f["rows_per_second"] != 100.0 || f["eta"] != 40*time.Second {
		t.Errorf("progress fields: %v", f)
	}
	if got := bar(250, 1000, 50, 15*time.Second); !strings.HasPrefix(got, "[=======>") || !strings.Contains(got, "250/1000 rows  50 rows/s  ETA 15s") {
		t.Errorf("bar: %q", got)
	}
}

// A state path that cannot be a database file is named as the key to fix.
func TestUnusableStatePathIsNamed(t *testing.T) {
	e := newEnv(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // a directory, not a file
	cfg = bytes.Replace(cfg, []byte(fmt.Sprintf("path: %q", filepath.Join(e.dir, "state.db"))), []byte(fmt.Sprintf("path: %q", dir)), 1)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("once", "--config", e.cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "state.path") || !strings.Contains(r.stderr, dir) || strings.Contains(r.stderr, "state: state:") {
		t.Errorf("a directory as state.path: exit %d, stderr:\n%s\nwant exit 1 naming state.path and the path", r.code, r.stderr)
	}
}
