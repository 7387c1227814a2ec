package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// families gathers g by metric name.
func families(tb testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// labelNames returns the label names of a family's series, sorted and
// deduplicated.
func labelNames(mf *dto.MetricFamily) []string {
	var names []string
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			names = append(names, l.GetName())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestNewRegistersTheDocumentedMetrics checks the names, types and labels
// the README, the dashboard and the alerts are written against, and that
// New registers nothing else of cometsync's.
func TestNewRegistersTheDocumentedMetrics(t *testing.T) {
	m := New("v1.2.3", false)
	// The request metrics have no series until the first request, the
	// stream ones until the streams are known and a pass ends.
	m.ObserveRequest("import", 200, "", time.Millisecond)
	m.Streams("users", "groups", "members")
	m.ObserveStream("groups", StreamPass{CursorLag: time.Second, Beyond: 0})
	m.BinlogEvents("groups", "insert", 1)
	m.SetBinlog("gtid 0-1-5", time.Second)
	got := families(t, m.Registry)
	want := []struct {
		name   string
		typ    dto.MetricType
		labels []string // sorted
	}{
		{"cometsync_last_success_timestamp_seconds", dto.MetricType_GAUGE, nil},
		{"cometsync_pass_duration_seconds", dto.MetricType_HISTOGRAM, nil},
		{"cometsync_passes_total", dto.MetricType_COUNTER, []string{"result"}},
		{"cometsync_rows_total", dto.MetricType_COUNTER, []string{"outcome", "stream"}},
		{"cometsync_row_retries_total", dto.MetricType_COUNTER, []string{"outcome", "stream"}},
		{"cometsync_requests_total", dto.MetricType_COUNTER, []string{"code", "endpoint"}},
		{"cometsync_request_duration_seconds", dto.MetricType_HISTOGRAM, []string{"endpoint"}},
		{"cometsync_failed_rows", dto.MetricType_GAUGE, []string{"stream"}},
		{"cometsync_parked_rows", dto.MetricType_GAUGE, []string{"stream"}},
		{"cometsync_cursor_lag_seconds", dto.MetricType_GAUGE, []string{"stream"}},
		{"cometsync_rows_beyond_upper_bound", dto.MetricType_GAUGE, []string{"stream"}},
		{"cometsync_deletes_total", dto.MetricType_COUNTER, []string{"outcome", "stream"}},
		{"cometsync_deletes_held", dto.MetricType_GAUGE, []string{"stream"}},
		{"cometsync_binlog_lag_seconds", dto.MetricType_GAUGE, nil},
		{"cometsync_binlog_events_total", dto.MetricType_COUNTER, []string{"action", "stream"}},
		{"cometsync_binlog_position_info", dto.MetricType_GAUGE, []string{"position"}},
		{"cometsync_build_info", dto.MetricType_GAUGE, []string{"version"}},
	}
	checked := map[string]bool{}
	for _, w := range want {
		checked[w.name] = true
		t.Run(w.name, func(t *testing.T) {
			mf, ok := got[w.name]
			if !ok {
				t.Fatalf("%s is not registered", w.name)
			}
			if mf.GetType() != w.typ {
				t.Errorf("type %v, want %v", mf.GetType(), w.typ)
			}
			if l := labelNames(mf); !slices.Equal(l, w.labels) {
				t.Errorf("labels %v, want %v", l, w.labels)
			}
			if mf.GetHelp() == "" {
				t.Error("no help text")
			}
		})
	}
	for name := range got {
		if !checked[name] {
			t.Errorf("%s is registered but not checked here (nor, probably, documented in the README)", name)
		}
	}
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// atStart is what /metrics shows of the pass figures before the first pass,
// in the text exposition format.
const atStart = `
# HELP cometsync_build_info The running version (always 1).
# TYPE cometsync_build_info gauge
cometsync_build_info{version="v1.2.3"} 1
# HELP cometsync_failed_rows Rows in the error store, parked ones included, by stream.
# TYPE cometsync_failed_rows gauge
cometsync_failed_rows{stream="groups"} 0
# HELP cometsync_last_success_timestamp_seconds When the last pass that completed ended (UNIX seconds).
# TYPE cometsync_last_success_timestamp_seconds gauge
cometsync_last_success_timestamp_seconds 0
# HELP cometsync_parked_rows Rows in the error store that are parked (retried only when they change), by stream.
# TYPE cometsync_parked_rows gauge
cometsync_parked_rows{stream="groups"} 0
# HELP cometsync_passes_total Passes by result: success or failure.
# TYPE cometsync_passes_total counter
cometsync_passes_total{result="failure"} 0
cometsync_passes_total{result="success"} 0
# HELP cometsync_row_retries_total Rows in the error store read again by a pass, by stream and outcome: failed (again) or cleared.
# TYPE cometsync_row_retries_total counter
cometsync_row_retries_total{outcome="cleared",stream="groups"} 0
cometsync_row_retries_total{outcome="failed",stream="groups"} 0
# HELP cometsync_rows_total Rows by outcome: imported, updated, unchanged (not sent); a failed row once, when it first enters the error store: invalid (never sent), rejected (by the API), duplicate (its guid belongs to another row; never sent).
# TYPE cometsync_rows_total counter
cometsync_rows_total{outcome="duplicate",stream="groups"} 0
cometsync_rows_total{outcome="imported",stream="groups"} 0
cometsync_rows_total{outcome="invalid",stream="groups"} 0
cometsync_rows_total{outcome="rejected",stream="groups"} 0
cometsync_rows_total{outcome="unchanged",stream="groups"} 0
cometsync_rows_total{outcome="updated",stream="groups"} 0
`

// passFigures are the metric families atStart shows.
var passFigures = []string{"cometsync_build_info", "cometsync_failed_rows",
	"cometsync_last_success_timestamp_seconds", "cometsync_parked_rows", "cometsync_passes_total", "cometsync_rows_total", "cometsync_row_retries_total"}

// withValues returns exposition with the values of some series changed:
// series (as written in exposition) -> new value.
func withValues(tb testing.TB, exposition string, values map[string]string) string {
	tb.Helper()
	lines := strings.Split(exposition, "\n")
	for series, v := range values {
		found := false
		for i, l := range lines {
			if name, _, ok := strings.Cut(l, " "); ok && name == series {
				lines[i], found = series+" "+v, true
			}
		}
		if !found {
			tb.Fatalf("withValues: no series %s", series)
		}
	}
	return strings.Join(lines, "\n")
}

// TestNewStartsAlertedSeriesAtZero checks what /metrics shows before the
// first pass: the series that alerts use exist at zero (so rate() and
// increase() see the first pass), and the version is stamped.
func TestNewStartsAlertedSeriesAtZero(t *testing.T) {
	m := New("v1.2.3", false)
	m.Streams("groups") // as once and run do with the configured streams
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(atStart), passFigures...); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"cometsync_requests_total", "cometsync_request_duration_seconds"} {
		if n, err := testutil.GatherAndCount(m.Registry, name); err != nil || n != 0 {
			t.Errorf("%s: %d series before any request (err %v), want none", name, n, err)
		}
	}
}

// TestNewWithProcess checks that the daemon's registry carries the Go and
// process collectors and a pushed batch job's does not: pushing them would
// leave a dead process's figures on the Pushgateway.
func TestNewWithProcess(t *testing.T) {
	for _, with := range []bool{true, false} {
		got := families(t, New("v", with).Registry)
		want := []string{"go_goroutines"}
		if runtime.GOOS == "linux" {
			want = append(want, "process_start_time_seconds")
		}
		for _, name := range want {
			if _, ok := got[name]; ok != with {
				t.Errorf("New(withProcess %v): %s registered: %v", with, name, ok)
			}
		}
	}
}

// TestObservePass records passes as observePass in cmd/cometsync does and
// checks the figures a user alerts on.
func TestObservePass(t *testing.T) {
	end := time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	m := New("v1.2.3", false)
	m.Streams("groups")
	m.Rows("groups", OutcomeImported, 4)
	m.Rows("groups", OutcomeUpdated, 2)
	m.Rows("groups", OutcomeUnchanged, 10)
	m.Rows("groups", OutcomeRejected, 1)
	m.Rows("groups", OutcomeInvalid, 3)
	m.Retries("groups", RetryFailed, 2)
	m.ObserveStream("groups", StreamPass{CursorLag: 90 * time.Second, FailedRows: 4, ParkedRows: 1, Beyond: -1})
	m.ObservePass(Pass{OK: true, Duration: 1500 * time.Millisecond, End: end})
	afterSuccess := withValues(t, atStart, map[string]string{
		`cometsync_failed_rows{stream="groups"}`:                        "4",
		`cometsync_last_success_timestamp_seconds`:                      "1741064767.891", // end, to the millisecond
		`cometsync_parked_rows{stream="groups"}`:                        "1",
		`cometsync_passes_total{result="success"}`:                      "1",
		`cometsync_rows_total{outcome="rejected",stream="groups"}`:      "1",
		`cometsync_row_retries_total{outcome="failed",stream="groups"}`: "2",
		`cometsync_rows_total{outcome="imported",stream="groups"}`:      "4",
		`cometsync_rows_total{outcome="invalid",stream="groups"}`:       "3",
		`cometsync_rows_total{outcome="unchanged",stream="groups"}`:     "10",
		`cometsync_rows_total{outcome="updated",stream="groups"}`:       "2",
	})
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(afterSuccess), passFigures...); err != nil {
		t.Errorf("after a successful pass: %v", err)
	}

	// A failed pass with an unknown lag counts a failure and leaves the last
	// success and the last known lag alone: "no success for N minutes"
	// alerts must keep counting from the last real success.
	m.Rows("groups", OutcomeImported, 0)
	m.Rows("groups", OutcomeRejected, -1) // a negative count must not panic a counter
	m.ObserveStream("groups", StreamPass{CursorLag: -1, FailedRows: 6, ParkedRows: 0, Beyond: -1})
	m.ObservePass(Pass{OK: false, Duration: time.Second, End: end.Add(time.Hour)})
	afterFailure := withValues(t, afterSuccess, map[string]string{
		`cometsync_failed_rows{stream="groups"}`:   "6",
		`cometsync_parked_rows{stream="groups"}`:   "0",
		`cometsync_passes_total{result="failure"}`: "1",
	})
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(afterFailure), passFigures...); err != nil {
		t.Errorf("after a failed pass: %v", err)
	}
	if n := passDurations(t, m).GetSampleCount(); n != 2 {
		t.Errorf("pass duration histogram: %d observations, want 2 (failed passes count too)", n)
	}
}

// TestSetLastSuccessAndCursorLag checks the setters a process uses at start
// (from the state) and during a pass, including what they ignore.
func TestSetLastSuccessAndCursorLag(t *testing.T) {
	m := New("v", false)
	m.SetLastSuccess(time.Unix(1_700_000_000, 250_000_000))
	m.SetLastSuccess(time.Time{}) // no success in the state: keep what we have
	if got := testutil.ToFloat64(m.lastSuccess); got != 1_700_000_000.25 {
		t.Errorf("last success %v, want 1700000000.25", got)
	}
	m.SetCursorLag("users", 2500*time.Millisecond)
	m.SetCursorLag("users", -1) // unknown
	if got := testutil.ToFloat64(m.cursorLag.WithLabelValues("users")); got != 2.5 {
		t.Errorf("cursor lag %v, want 2.5", got)
	}
}

// TestObserveRequest checks the request series: the HTTP status as the code,
// "error" when no answer came, and the latency by endpoint.
func TestObserveRequest(t *testing.T) {
	m := New("v", false)
	m.ObserveRequest("import", 200, "", 120*time.Millisecond)
	m.ObserveRequest("import", 429, "TOO_MANY_REQUESTS", 30*time.Millisecond)
	m.ObserveRequest("import", 200, "", 80*time.Millisecond)
	m.ObserveRequest("delete", 0, "", 5*time.Second)
	want := map[string]float64{
		`code="200",endpoint="import"`:   2,
		`code="429",endpoint="import"`:   1,
		`code="error",endpoint="delete"`: 1,
	}
	got := map[string]float64{}
	for _, s := range families(t, m.Registry)["cometsync_requests_total"].GetMetric() {
		var labels []string
		for _, l := range s.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		got[strings.Join(labels, ",")] = s.GetCounter().GetValue()
	}
	if !maps.Equal(got, want) {
		t.Errorf("cometsync_requests_total: %v, want %v", got, want)
	}
	durations := map[string]*dto.Histogram{}
	for _, s := range families(t, m.Registry)["cometsync_request_duration_seconds"].GetMetric() {
		durations[s.GetLabel()[0].GetValue()] = s.GetHistogram()
	}
	if h := durations["import"]; h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-0.23) > 1e-9 {
		t.Errorf("import latency: %d requests, %v s in all; want 3, 0.23 s", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := durations["delete"]; h.GetSampleCount() != 1 || h.GetSampleSum() != 5 {
		t.Errorf("delete latency: %d requests, %v s in all; want 1, 5 s", h.GetSampleCount(), h.GetSampleSum())
	}
}

// passDurations returns the pass duration histogram as /metrics shows it.
func passDurations(tb testing.TB, m *Metrics) *dto.Histogram {
	tb.Helper()
	mf := families(tb, m.Registry)["cometsync_pass_duration_seconds"]
	if len(mf.GetMetric()) != 1 {
		tb.Fatalf("cometsync_pass_duration_seconds has %d series, want 1", len(mf.GetMetric()))
	}
	return mf.GetMetric()[0].GetHistogram()
}

// TestPassDurationBuckets checks that the pass duration histogram can tell
// apart what users see: a quick incremental pass (well under a second), a
// few seconds, a minute-long backfill and one of many hours, and that
// neighbouring buckets are close enough for histogram_quantile to mean
// something.
func TestPassDurationBuckets(t *testing.T) {
	m := New("v", false)
	m.ObservePass(Pass{OK: true, Duration: time.Second, End: time.Now()})
	h := passDurations(t, m)
	var bounds []float64
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	if !slices.IsSorted(bounds) || len(bounds) < 8 {
		t.Fatalf("buckets %v: want at least 8, increasing", bounds)
	}
	if first := bounds[0]; first > 0.1 {
		t.Errorf("smallest bucket %v s: a quick incremental pass (tens of ms) is not told apart from a slow one", first)
	}
	// A first backfill of a million groups at the import limit (3,000 a
	// minute) takes five and a half hours.
	if last := bounds[len(bounds)-1]; last < 6*time.Hour.Seconds() {
		t.Errorf("largest bucket %v s: a million-group backfill (5.5 h at the API's limit) falls into +Inf", last)
	}
	for i := 1; i < len(bounds); i++ {
		if r := bounds[i] / bounds[i-1]; r > 3 {
			t.Errorf("buckets %v and %v are %.1fx apart: quantiles between them are guesses", bounds[i-1], bounds[i], r)
		}
	}
	// The one-second pass lands in the buckets from 1 s up, and only there.
	for _, b := range h.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 1 {
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d passes, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

// pushed is one request a fake Pushgateway received.
type pushed struct {
	method, path   string
	user, password string
	hasAuth        bool
	families       map[string]*dto.MetricFamily
	decodeErr      error
}

// pushgateway is a fake Pushgateway that records every request and answers
// with status.
type pushgateway struct {
	*httptest.Server
	mu     sync.Mutex
	pushes []pushed
}

func newPushgateway(tb testing.TB, status int) *pushgateway {
	tb.Helper()
	gw := &pushgateway{}
	gw.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := pushed{method: r.Method, path: r.URL.Path, families: map[string]*dto.MetricFamily{}}
		p.user, p.password, p.hasAuth = r.BasicAuth()
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				if !errors.Is(err, io.EOF) {
					p.decodeErr = err
				}
				break
			}
			p.families[mf.GetName()] = &mf
		}
		gw.mu.Lock()
		gw.pushes = append(gw.pushes, p)
		gw.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "pushgateway is broken today", status)
		}
	}))
	tb.Cleanup(gw.Close)
	return gw
}

// received returns what the gateway received so far.
func (gw *pushgateway) received() []pushed {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	return slices.Clone(gw.pushes)
}

// TestPush checks what `cometsync once` sends to the Pushgateway: a PUT (so
// a run replaces what the job's last run pushed) to the job's grouping
// path, with the pass's metrics, and basic auth taken from the URL.
func TestPush(t *testing.T) {
	gw := newPushgateway(t, http.StatusOK)
	host := strings.TrimPrefix(gw.URL, "http://")
	tests := []struct {
		name           string
		url            string
		path           string
		user, password string // empty: no Authorization header
	}{
		{"plain", gw.URL, "/metrics/job/cometsync", "", ""},
		{"trailing slash", gw.URL + "/", "/metrics/job/cometsync", "", ""},
		{"behind a path prefix", gw.URL + "/pushgateway", "/pushgateway/metrics/job/cometsync", "", ""},
		{"credentials", "http://bob:s3cret@" + host, "/metrics/job/cometsync", "bob", "s3cret"},
		{"escaped credentials", "http://bob%40example:p%40ss%3Aw%2Frd@" + host, "/metrics/job/cometsync", "bob@example", "p@ss:w/rd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(gw.received())
			m := New("v1.2.3", false)
			m.Streams("groups")
			m.Rows("groups", OutcomeImported, 4)
			m.ObserveStream("groups", StreamPass{CursorLag: 3 * time.Second, Beyond: 7})
			m.ObservePass(Pass{OK: true, Duration: 2 * time.Second, End: time.Unix(1_700_000_000, 0)})
			if err := m.Push(context.Background(), tt.url, "cometsync"); err != nil {
				t.Fatalf("Push: %v", err)
			}
			got := gw.received()[before:]
			if len(got) != 1 {
				t.Fatalf("the gateway received %d requests, want 1", len(got))
			}
			p := got[0]
			if p.method != http.MethodPut || p.path != tt.path {
				t.Errorf("pushed with %s %s, want PUT %s", p.method, p.path, tt.path)
			}
			if tt.user == "" {
				if p.hasAuth {
					t.Errorf("sent basic auth %q:%q with no credentials in the URL", p.user, p.password)
				}
			} else if !p.hasAuth || p.user != tt.user || p.password != tt.password {
				t.Errorf("basic auth %v %q:%q, want %q:%q", p.hasAuth, p.user, p.password, tt.user, tt.password)
			}
			if p.decodeErr != nil {
				t.Fatalf("the pushed body does not decode: %v", p.decodeErr)
			}
			checkPushed(t, p.families)
		})
	}
}

// checkPushed checks the figures of the pass TestPush records, as the
// gateway decoded them.
func checkPushed(tb testing.TB, fams map[string]*dto.MetricFamily) {
	tb.Helper()
	value := func(name, label, val string) (float64, bool) {
		for _, s := range fams[name].GetMetric() {
			has := label == ""
			for _, l := range s.GetLabel() {
				has = has || (l.GetName() == label && l.GetValue() == val)
			}
			if has {
				switch {
				case s.GetCounter() != nil:
					return s.GetCounter().GetValue(), true
				case s.GetGauge() != nil:
					return s.GetGauge().GetValue(), true
				case s.GetHistogram() != nil:
					return float64(s.GetHistogram().GetSampleCount()), true
				}
			}
		}
		return 0, false
	}
	for _, w := range []struct {
		name, label, val string
		want             float64
	}{
		{"cometsync_rows_total", "outcome", "imported", 4},
		{"cometsync_rows_total", "outcome", "updated", 0},
		{"cometsync_passes_total", "result", "success", 1},
		{"cometsync_passes_total", "result", "failure", 0},
		{"cometsync_last_success_timestamp_seconds", "", "", 1_700_000_000},
		{"cometsync_cursor_lag_seconds", "stream", "groups", 3},
		{"cometsync_rows_beyond_upper_bound", "stream", "groups", 7},
		{"cometsync_pass_duration_seconds", "", "", 1},
		{"cometsync_build_info", "version", "v1.2.3", 1},
	} {
		if got, ok := value(w.name, w.label, w.val); !ok || got != w.want {
			tb.Errorf("pushed %s{%s=%q}: %v (present %v), want %v", w.name, w.label, w.val, got, ok, w.want)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "cometsync_") {
			tb.Errorf("pushed %s: a batch job must not push process metrics", name)
		}
	}
}

// TestPushFails checks that a push that did not land says so, names the
// gateway, and never shows the password from the URL.
func TestPushFails(t *testing.T) {
	broken := newPushgateway(t, http.StatusInternalServerError)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // nothing listens there any more
	withAuth := func(u string) string { return strings.Replace(u, "http://", "http://bob:s3cret@", 1) }
	tests := []struct {
		name string
		url  string
		want []string // in the error
	}{
		{"gateway answers 500", withAuth(broken.URL), []string{"push metrics to " + broken.URL, "500", "pushgateway is broken today"}},
		{"gateway unreachable", withAuth(gone.URL), []string{"push metrics to " + gone.URL}},
		{"not a URL", "http://bob:s3cret@pushgateway:port/", []string{"metrics.pushgateway is not a URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New("v", false).Push(context.Background(), tt.url, "cometsync")
			if err == nil {
				t.Fatal("Push succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	if got := broken.received(); len(got) != 1 || got[0].password != "s3cret" {
		t.Errorf("the broken gateway got %d requests (%+v), want 1 with the credentials", len(got), got)
	}
}

// TestPushGivesUpWithTheContext checks that a gateway that never answers
// does not hold `once` past its deadline: Push returns when ctx ends.
func TestPushGivesUpWithTheContext(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release // never answer while Push waits
	}))
	defer gw.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	err := New("v", false).Push(ctx, gw.URL, "cometsync")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Push to a hung gateway after the context ended: %v, want context.Canceled", err)
	}
}
