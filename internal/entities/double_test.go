package entities

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/syncer"
)

const apiKey = "test-key"

// request is one request the test double received.
type request struct {
	method, path, body string
}

// double is CometChat's test double behind an httptest server, with a
// client to it and a record of every request.
type double struct {
	emu    *cometchattest.Emulator
	client *cometchat.Client

	mu   sync.Mutex
	reqs []request
}

// newDouble starts the test double with cfg (its API key set) and a client
// paced by clientCfg (its base URL and key set; the import pace defaults to
// far above the tests' needs).
func newDouble(tb testing.TB, cfg cometchattest.Config, clientCfg cometchat.Config) *double {
	tb.Helper()
	cfg.APIKey = apiKey
	d := &double{emu: cometchattest.New(cfg)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.reqs = append(d.reqs, request{r.Method, r.URL.Path, string(body)})
		d.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		d.emu.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	clientCfg.BaseURL, clientCfg.APIKey = srv.URL+"/v3", apiKey
	if clientCfg.ImportPerMinute == 0 {
		clientCfg.ImportPerMinute = 60_000
	}
	if clientCfg.MaxAttempts == 0 {
		clientCfg.MaxAttempts = 1
	}
	d.client = cometchat.New(clientCfg, nil)
	return d
}

// requests returns the requests received so far, in order, and forgets
// them.
func (d *double) requests() []request {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.reqs
	d.reqs = nil
	return out
}

// mapAll maps rows with e, failing the test on a row error.
func mapAll(tb testing.TB, e syncer.Entity, rows ...[]any) []syncer.Object {
	tb.Helper()
	objs := make([]syncer.Object, len(rows))
	for i, row := range rows {
		o, err := e.Map(row)
		if err != nil {
			tb.Fatalf("Map(%v): %v", row, err)
		}
		objs[i] = o
	}
	return objs
}
