package deploytest

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cometsync/cometsync/internal/metrics"
)

const (
	dashboardFile = "deploy/grafana/cometsync-dashboard.json"
	alertsFile    = "deploy/prometheus/alerts.yaml"
)

// exportedMetrics is the daemon's metrics contract: each name, and whether
// it is a histogram (queried through its _bucket, _sum and _count series).
var exportedMetrics = map[string]bool{
	"cometsync_last_success_timestamp_seconds": false,
	"cometsync_pass_duration_seconds":          true,
	"cometsync_rows_total":                     false,
	"cometsync_row_retries_total":              false,
	"cometsync_rows_beyond_upper_bound":        false,
	"cometsync_deletes_total":                  false,
	"cometsync_deletes_held":                   false,
	"cometsync_requests_total":                 false,
	"cometsync_request_duration_seconds":       true,
	"cometsync_failed_rows":                    false,
	"cometsync_parked_rows":                    false,
	"cometsync_cursor_lag_seconds":             false,
	"cometsync_passes_total":                   false,
	"cometsync_build_info":                     false,
	"cometsync_binlog_lag_seconds":             false,
	"cometsync_binlog_events_total":            false,
	"cometsync_binlog_position_info":           false,
}

// binlogOnly are the metrics whose series exist only in binlog mode (their
// labels come from the feed).
var binlogOnly = map[string]bool{"cometsync_binlog_events_total": true, "cometsync_binlog_position_info": true}

// metricName finds the metric names in a PromQL expression. It is wider than
// a valid name's alphabet on purpose: a typo with a digit or a capital
// letter is caught, not cut short.
var metricName = regexp.MustCompile(`cometsync_[A-Za-z0-9_:]*`)

// selector finds a metric's label matchers: name{a="b", c=~"d"}.
var selector = regexp.MustCompile(`(cometsync_[A-Za-z0-9_:]*)\s*\{([^}]*)\}`)

var matcher = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*$`)

// metricFamily is what the metrics package registers under one name.
type metricFamily struct {
	histogram bool
	labels    map[string][]string // label -> the values its series start with
}

// registeredMetrics returns what the metrics package exports, after one
// request is observed so that the families without a series at start
// appear too.
func registeredMetrics(t *testing.T) map[string]metricFamily {
	t.Helper()
	m := metrics.New("test", false)
	m.ObserveRequest("import", 200, "", time.Millisecond)
	// The stream series exist once the streams are known and a pass ends.
	m.Streams("users", "groups", "members")
	for _, st := range []string{"users", "groups", "members"} {
		m.ObserveStream(st, metrics.StreamPass{CursorLag: time.Second})
		m.BinlogEvents(st, "insert", 1)
	}
	m.SetBinlog("gtid 0-1-5", time.Second)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]metricFamily{}
	for _, f := range fams {
		mf := metricFamily{histogram: f.GetType().String() == "HISTOGRAM", labels: map[string][]string{}}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !slices.Contains(mf.labels[l.GetName()], l.GetValue()) {
					mf.labels[l.GetName()] = append(mf.labels[l.GetName()], l.GetValue())
				}
			}
		}
		out[f.GetName()] = mf
	}
	return out
}

// TestMetricsContract checks that the metrics package exports the metrics
// the dashboard and the alerts are written against, of the right type.
func TestMetricsContract(t *testing.T) {
	reg := registeredMetrics(t)
	for name, hist := range exportedMetrics {
		f, ok := reg[name]
		switch {
		case !ok:
			t.Errorf("the metrics package does not export %s", name)
		case f.histogram != hist:
			t.Errorf("%s: histogram %v, want %v", name, f.histogram, hist)
		}
	}
	for name := range reg {
		if _, ok := exportedMetrics[name]; !ok && strings.HasPrefix(name, "cometsync_") {
			t.Errorf("the metrics package exports %s, which the dashboard does not know", name)
		}
	}
}

// checkExpr checks the metric names and label matchers of one PromQL
// expression, and returns the metrics it uses.
func checkExpr(t *testing.T, where, expr string, reg map[string]metricFamily) []string {
	t.Helper()
	if !balanced(expr) {
		t.Errorf("%s: unbalanced brackets or quotes in %q", where, expr)
	}
	var used []string
	for _, name := range metricName.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exportedMetrics[b] {
				base = b
			}
		}
		if _, ok := exportedMetrics[base]; !ok {
			t.Errorf("%s: %s is not an exported metric (%q)", where, name, expr)
			continue
		}
		used = append(used, base)
	}
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		name := sel[1]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		f, ok := reg[base]
		if !ok {
			continue // reported above
		}
		for _, m := range strings.Split(sel[2], ",") {
			if strings.TrimSpace(m) == "" {
				continue
			}
			parts := matcher.FindStringSubmatch(m)
			if parts == nil {
				t.Errorf("%s: cannot read the matcher %q of %s", where, m, name)
				continue
			}
			label, op, value := parts[1], parts[2], parts[3]
			if label == "job" || label == "instance" || label == "le" && strings.HasSuffix(name, "_bucket") {
				continue // added by the scrape, or the histogram's own
			}
			values, ok := f.labels[label]
			if !ok {
				t.Errorf("%s: %s has no label %q", where, base, label)
				continue
			}
			// Where the series start with every value (outcome, result), an
			// exact match must be one of them.
			if op == "=" && label != "code" && label != "endpoint" && !slices.Contains(values, value) {
				t.Errorf("%s: %s{%s=%q}: the values are %v", where, base, label, value, values)
			}
		}
	}
	return used
}

// balanced tells whether the brackets of expr pair up, outside its quotes.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for _, r := range expr {
		switch {
		case r == '"':
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inQuote
}

// grafanaDashboard is the part of the dashboard JSON the test reads.
type grafanaDashboard struct {
	SchemaVersion int            `json:"schemaVersion"`
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	Inputs        []grafanaInput `json:"__inputs"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string             `json:"name"`
			Definition string             `json:"definition"`
			Datasource *grafanaDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaInput is what Grafana asks for when the dashboard is imported.
type grafanaInput struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Title      string             `json:"title"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []struct {
		Expr       string             `json:"expr"`
		RefID      string             `json:"refId"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestGrafanaDashboard checks the dashboard imports with a Prometheus data
// source picked at import time and shows only metrics cometsync exports,
// every one of them.
func TestGrafanaDashboard(t *testing.T) {
	var d grafanaDashboard
	if err := json.Unmarshal(readRepoFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or more", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard has no uid or title")
	}
	if !slices.ContainsFunc(d.Inputs, func(in grafanaInput) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Error("__inputs has no DS_PROMETHEUS Prometheus data source")
	}
	const ds = "${DS_PROMETHEUS}"
	checkDS := func(where string, d *grafanaDatasource) {
		if d != nil && d.UID != ds {
			t.Errorf("%s: data source %q, want %s", where, d.UID, ds)
		}
	}

	reg := registeredMetrics(t)
	used := map[string]bool{}
	var exprs []string
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			checkDS(p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				checkDS(p.Title, tg.Datasource)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q: query %s has no expr", p.Title, tg.RefID)
					continue
				}
				exprs = append(exprs, tg.Expr)
				for _, m := range checkExpr(t, "panel "+p.Title, tg.Expr, reg) {
					used[m] = true
				}
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		checkDS("variable "+v.Name, v.Datasource)
		checkExpr(t, "variable "+v.Name, v.Definition, reg)
	}

	var unused []string
	for name := range exportedMetrics {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("no panel shows %v", unused)
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"histogram_quantile(0.5, sum by (le) (rate(cometsync_pass_duration_seconds_bucket",
		"histogram_quantile(0.95, sum by (le) (rate(cometsync_pass_duration_seconds_bucket",
		`code="429"`,
		"sum by (outcome)",
		"sum by (endpoint, code)",
		"sum by (result)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

// prometheusRules is a Prometheus rules file.
type prometheusRules struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert         string            `json:"alert,omitempty"`
			Record        string            `json:"record,omitempty"`
			Expr          string            `json:"expr"`
			For           string            `json:"for,omitempty"`
			KeepFiringFor string            `json:"keep_firing_for,omitempty"`
			Labels        map[string]string `json:"labels,omitempty"`
			Annotations   map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestPrometheusAlerts checks the alerting rules: well-formed, labelled with
// a severity, described, and written against metrics cometsync exports; and
// that the conditions an operator must hear about are all covered.
func TestPrometheusAlerts(t *testing.T) {
	var rules prometheusRules
	if err := yaml.UnmarshalStrict(readRepoFile(t, alertsFile), &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if len(rules.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	reg := registeredMetrics(t)
	names := map[string]bool{}
	var exprs []string
	for _, g := range rules.Groups {
		if g.Name == "" {
			t.Error("a group has no name")
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert (recording rules belong elsewhere): %q", g.Name, r.Expr)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			names[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: no summary or description", r.Alert)
			}
			exprs = append(exprs, r.Expr)
			checkExpr(t, "alert "+r.Alert, r.Expr, reg)
		}
	}
	all := strings.Join(exprs, "\n")
	for what, want := range map[string]string{
		"no success for 30 minutes (3 intervals of 5m)": "cometsync_last_success_timestamp_seconds[1h])) > 30 * 60",
		"cursor lag over an hour":                       "max by (job) (cometsync_cursor_lag_seconds) > 3600",
		"failed rows growing":                           "delta(cometsync_failed_rows[",
		"sustained 429s":                                `cometsync_requests_total{code="429"}`,
		"auth failures":                                 `cometsync_requests_total{code=~"401|403"}`,
		"failing passes":                                `cometsync_passes_total{result="failure"}`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no alert for %s (no expr has %s)", what, want)
		}
	}
}
