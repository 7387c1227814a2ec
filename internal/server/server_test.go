package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

func TestProbesAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cometsync_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var ready atomic.Bool
	s := New("127.0.0.1:0", reg, func() (bool, string) {
		if ready.Load() {
			return true, "the last successful pass was 1s ago"
		}
		return false, "no pass has completed yet"
	}, zaptest.NewLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || body != "not ready: no pass has completed yet\n" {
		t.Errorf("/readyz before a success: %d %q", code, body)
	}
	ready.Store(true)
	if code, body := get("/readyz"); code != 200 || !strings.HasPrefix(body, "ready: ") {
		t.Errorf("/readyz after a success: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "cometsync_test_total 3") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestStartFailsWhenTheAddressIsTaken(t *testing.T) {
	first := New("127.0.0.1:0", prometheus.NewRegistry(), func() (bool, string) { return true, "" }, zaptest.NewLogger(t))
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown(context.Background())
	second := New(first.Addr(), prometheus.NewRegistry(), func() (bool, string) { return true, "" }, zaptest.NewLogger(t))
	if err := second.Start(); err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Errorf("second server on a taken address: %v", err)
	}
}
