// Package metrics owns cometsync's Prometheus metrics: what a pass did,
// how the API answered, and how far behind the sync is. The daemon serves
// them on /metrics; `once` can push them to a Pushgateway.
package metrics

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/push"
)

// Metrics is one process's set of collectors, on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	lastSuccess     prometheus.Gauge
	passDuration    prometheus.Histogram
	passes          *prometheus.CounterVec
	rows            *prometheus.CounterVec
	retries         *prometheus.CounterVec
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	failedRows      *prometheus.GaugeVec
	parkedRows      *prometheus.GaugeVec
	cursorLag       *prometheus.GaugeVec
	beyond          *prometheus.GaugeVec
	deletes         *prometheus.CounterVec
	deletesHeld     *prometheus.GaugeVec
	binlogLag       prometheus.Gauge
	binlogEvents    *prometheus.CounterVec
	binlogPosition  *prometheus.GaugeVec
}

// Outcomes of rows, the values of cometsync_rows_total's outcome label. A
// row that fails (invalid, rejected, duplicate: it goes to the error store)
// is counted once, in the pass that first records it; its retries are
// counted by cometsync_row_retries_total.
const (
	OutcomeImported  = "imported"
	OutcomeUpdated   = "updated"
	OutcomeUnchanged = "unchanged"
	OutcomeRejected  = "rejected"  // refused by the API for this row
	OutcomeInvalid   = "invalid"   // broke CometChat's constraints; never sent
	OutcomeDuplicate = "duplicate" // mapped to a guid another row owns; never sent
)

// Outcomes of retries of rows in the error store, the values of
// cometsync_row_retries_total's outcome label.
const (
	RetryFailed  = "failed"  // failed again
	RetryCleared = "cleared" // delivered, unchanged, or gone from the source
)

// New registers every collector. withProcess adds the Go and process
// collectors (the daemon wants them; a pushed batch job does not).
func New(version string, withProcess bool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometsync_last_success_timestamp_seconds",
			Help: "When the last pass that completed ended (UNIX seconds).",
		}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cometsync_pass_duration_seconds",
			Help:    "How long passes take, complete or not.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 16), // 50 ms .. ~13 h (46,566 s): a 1M-group backfill at the API's limit is 5.5 h
		}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometsync_passes_total",
			Help: "Passes by result: success or failure.",
		}, []string{"result"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometsync_rows_total",
			Help: "Rows by outcome: imported, updated, unchanged (not sent); a failed row once, when it first enters the error store: invalid (never sent), rejected (by the API), duplicate (its guid belongs to another row; never sent).",
		}, []string{"stream", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometsync_row_retries_total",
			Help: "Rows in the error store read again by a pass, by stream and outcome: failed (again) or cleared.",
		}, []string{"stream", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometsync_requests_total",
			Help: "CometChat API requests by endpoint and answer: the HTTP status, or error when none came.",
		}, []string{"endpoint", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cometsync_request_duration_seconds",
			Help:    "How long CometChat API requests take, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		failedRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometsync_failed_rows",
			Help: "Rows in the error store, parked ones included, by stream.",
		}, []string{"stream"}),
		parkedRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometsync_parked_rows",
			Help: "Rows in the error store that are parked (retried only when they change), by stream.",
		}, []string{"stream"}),
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometsync_deletes_total",
			Help: "Deletes by stream and outcome: deleted (CometChat acknowledged, or had no such object), failed (refused; retried), held (held back by the brake).",
		}, []string{"stream", "outcome"}),
		deletesHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometsync_deletes_held",
			Help: "Deletes the brake held back in the last pass, by stream: more than deletes.max_per_pass or deletes.max_percent; 'once --allow-mass-delete' lets them through.",
		}, []string{"stream"}),
		beyond: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometsync_rows_beyond_upper_bound",
			Help: "Rows whose cursor was after the last pass's upper bound (database clock - lag), by stream: read by a later pass; most of the table here means a cursor in the wrong unit or time zone.",
		}, []string{"stream"}),
		cursorLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometsync_cursor_lag_seconds",
			Help: "How far the synced data lies behind the database clock (database clock minus what the checkpoint covers), by stream.",
		}, []string{"stream"}),
		binlogLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometsync_binlog_lag_seconds",
			Help: "Binlog mode: from the commit of the newest acknowledged change in the source to CometChat's acknowledgment of it.",
		}),
		binlogEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometsync_binlog_events_total",
			Help: "Binlog mode: row events read, by stream and action (insert, update, delete).",
		}, []string{"stream", "action"}),
		binlogPosition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometsync_binlog_position_info",
			Help: "Binlog mode: the recorded position (always 1; the position is the label).",
		}, []string{"position"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cometsync_build_info",
		Help: "The running version (always 1).",
	}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	reg.MustRegister(m.lastSuccess, m.passDuration, m.passes, m.rows, m.retries, m.requests, m.requestDuration,
		m.failedRows, m.parkedRows, m.cursorLag, m.beyond, m.deletes, m.deletesHeld, m.binlogLag, m.binlogEvents, m.binlogPosition, build)
	if withProcess {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m.passes.WithLabelValues("success")
	m.passes.WithLabelValues("failure")
	return m
}

// Outcomes are the values of cometsync_rows_total's outcome label.
var Outcomes = []string{OutcomeImported, OutcomeUpdated, OutcomeUnchanged, OutcomeRejected, OutcomeInvalid, OutcomeDuplicate}

// Streams makes the series of each stream that users alert on exist from
// the start, at zero.
func (m *Metrics) Streams(names ...string) {
	for _, n := range names {
		for _, o := range Outcomes {
			m.rows.WithLabelValues(n, o)
		}
		m.retries.WithLabelValues(n, RetryFailed)
		m.retries.WithLabelValues(n, RetryCleared)
		m.failedRows.WithLabelValues(n)
		m.parkedRows.WithLabelValues(n)
		for _, o := range []string{DeleteDone, DeleteFailed, DeleteHeld} {
			m.deletes.WithLabelValues(n, o)
		}
		m.deletesHeld.WithLabelValues(n)
	}
}

// Outcomes of deletes, the values of cometsync_deletes_total's outcome
// label.
const (
	DeleteDone   = "deleted"
	DeleteFailed = "failed"
	DeleteHeld   = "held"
)

// Deletes counts a stream's deletes by outcome.
func (m *Metrics) Deletes(stream, outcome string, n int) {
	if n > 0 {
		m.deletes.WithLabelValues(stream, outcome).Add(float64(n))
	}
}

// ObserveRequest records one API answer; it fits cometchat.Config.Observe.
func (m *Metrics) ObserveRequest(endpoint string, status int, _ string, took time.Duration) {
	code := "error"
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(endpoint, code).Inc()
	m.requestDuration.WithLabelValues(endpoint).Observe(took.Seconds())
}

// Rows counts a stream's rows by outcome.
func (m *Metrics) Rows(stream, outcome string, n int) {
	if n > 0 {
		m.rows.WithLabelValues(stream, outcome).Add(float64(n))
	}
}

// Retries counts a stream's retried rows of the error store by outcome.
func (m *Metrics) Retries(stream, outcome string, n int) {
	if n > 0 {
		m.retries.WithLabelValues(stream, outcome).Add(float64(n))
	}
}

// Pass is what a pass over the streams reports to the metrics when it
// ends.
type Pass struct {
	OK       bool
	Duration time.Duration
	End      time.Time
}

// StreamPass is what one stream's part of a pass reports.
type StreamPass struct {
	CursorLag  time.Duration // negative when unknown
	FailedRows int
	ParkedRows int
	// Beyond is the rows whose cursor was after the pass's upper bound;
	// negative when not known.
	Beyond int64
	// DeletesHeld is the deletes the brake held back.
	DeletesHeld int
}

// ObserveStream records the end of one stream's part of a pass.
func (m *Metrics) ObserveStream(stream string, p StreamPass) {
	if p.CursorLag >= 0 {
		m.cursorLag.WithLabelValues(stream).Set(p.CursorLag.Seconds())
	}
	m.failedRows.WithLabelValues(stream).Set(float64(p.FailedRows))
	m.parkedRows.WithLabelValues(stream).Set(float64(p.ParkedRows))
	if p.Beyond >= 0 {
		m.beyond.WithLabelValues(stream).Set(float64(p.Beyond))
	}
	m.deletesHeld.WithLabelValues(stream).Set(float64(p.DeletesHeld))
}

// ObservePass records the end of a pass.
func (m *Metrics) ObservePass(p Pass) {
	m.passDuration.Observe(p.Duration.Seconds())
	if p.OK {
		m.passes.WithLabelValues("success").Inc()
		m.lastSuccess.Set(float64(p.End.UnixMilli()) / 1000)
	} else {
		m.passes.WithLabelValues("failure").Inc()
	}
}

// SetLastSuccess sets the last success time, e.g. from the state when a
// process starts, so a restart or a failed CronJob run does not report 0.
func (m *Metrics) SetLastSuccess(t time.Time) {
	if !t.IsZero() {
		m.lastSuccess.Set(float64(t.UnixMilli()) / 1000)
	}
}

// SetCursorLag updates the lag while a pass is under way.
func (m *Metrics) SetCursorLag(stream string, d time.Duration) {
	if d >= 0 {
		m.cursorLag.WithLabelValues(stream).Set(d.Seconds())
	}
}

// Push sends the metrics to a Prometheus Pushgateway under job, replacing
// what an earlier run of the job pushed.
// Credentials in the URL are sent as basic auth and never appear in an error.
func (m *Metrics) Push(ctx context.Context, rawURL, job string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("push metrics: metrics.pushgateway is not a URL")
	}
	user := u.User
	u.User = nil
	p := push.New(u.String(), job).Gatherer(m.Registry)
	if user != nil {
		pass, _ := user.Password()
		p = p.BasicAuth(user.Username(), pass)
	}
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("push metrics to %s: %w", u.Redacted(), err)
	}
	return nil
}

// BinlogEvents counts n row events of a stream's table.
func (m *Metrics) BinlogEvents(stream, action string, n int) {
	m.binlogEvents.WithLabelValues(stream, action).Add(float64(n))
}

// SetBinlog records the feed's acknowledged position and its lag.
func (m *Metrics) SetBinlog(position string, lag time.Duration) {
	m.binlogPosition.Reset()
	m.binlogPosition.WithLabelValues(position).Set(1)
	m.binlogLag.Set(lag.Seconds())
}
