package cometchat_test

// The client is tested against two kinds of httptest servers: the emulator
// (internal/cometchat/cometchattest), which behaves like CometChat faults included, and
// small scripted servers for exact wire shapes and answers the emulator
// never gives. This is an external test package because the emulator
// imports cometchat; export_test.go lets it replace the client's sleep.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
)

// testKey is the API key every test server accepts; no error may show it.
const testKey = "test-rest-key-s3cr3t"

// newClient builds a client for baseURL with fast retries and generous
// rate limits; adjust changes the config before the client is built.
func newClient(tb testing.TB, baseURL string, adjust func(*cometchat.Config)) *cometchat.Client {
	tb.Helper()
	cfg := cometchat.Config{
		BaseURL:         baseURL,
		APIKey:          testKey,
		Timeout:         5 * time.Second,
		MaxAttempts:     3,
		InitialBackoff:  time.Millisecond,
		MaxBackoff:      5 * time.Millisecond,
		MaxElapsed:      10 * time.Second,
		ImportPerMinute: 60_000,
		OtherPerMinute:  60_000,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	return cometchat.New(cfg, zap.NewNop())
}

// newEmulator starts an emulator accepting testKey and returns it with the
// base URL to give the client.
func newEmulator(tb testing.TB, f cometchattest.Faults) (*cometchattest.Emulator, string) {
	tb.Helper()
	e := cometchattest.New(cometchattest.Config{APIKey: testKey})
	e.SetFaults(f)
	srv := httptest.NewServer(e)
	tb.Cleanup(srv.Close)
	return e, srv.URL + "/v3"
}

// answer is one scripted HTTP answer. Header names are written as given,
// not canonicalized, so that tests can send odd spellings.
type answer struct {
	status int
	header map[string]string
	body   string
}

// request is what a scripted server received.
type request struct {
	method string
	path   string // escaped, as sent
	query  string
	header http.Header
	body   []byte
	at     time.Time
}

// script is a server that answers from a list, repeating the last answer
// when the list runs out, and records every request.
type script struct {
	srv     *httptest.Server
	mu      sync.Mutex
	answers []answer
	reqs    []request
}

func newScript(tb testing.TB, answers ...answer) *script {
	tb.Helper()
	s := &script{answers: answers}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *script) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, request{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery,
		header: r.Header.Clone(), body: body, at: time.Now()})
	a := s.answers[min(len(s.reqs), len(s.answers))-1]
	s.mu.Unlock()
	for name, v := range a.header {
		w.Header()[name] = []string{v}
	}
	if strings.HasPrefix(a.body, "{") {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (s *script) url() string { return s.srv.URL + "/v3" }

func (s *script) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// errorAnswer is CometChat's error envelope outside a row.
func errorAnswer(status int, code, message string) answer {
	return answer{status: status, body: fmt.Sprintf(`{"error":{"code":%q,"message":%q,"devMessage":"dev: %s","source":"test"}}`, code, message, message)}
}

func rateLimited(header map[string]string) answer {
	a := errorAnswer(http.StatusTooManyRequests, cometchat.CodeTooManyRequests, "rate limit exceeded")
	a.header = header
	return a
}

var (
	okAnswer       = answer{status: http.StatusOK, body: `{"data":{"success":true,"message":"done"}}`}
	importOKAnswer = answer{status: http.StatusOK, body: `{"data":{"g-1":{"success":true,"data":{"guid":"g-1"}}}}`}
	oneGroup       = []cometchat.Group{{GUID: "g-1", Name: "Group 1", Type: "public"}}
)

// recorder is a sleep that records the waits and returns at once (with the
// context's error, as the real one does when the context is done).
type recorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		r.mu.Lock()
		r.waits = append(r.waits, d)
		r.mu.Unlock()
	}
	return ctx.Err()
}

func (r *recorder) longest() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Max(append([]time.Duration{0}, r.waits...))
}

// asAPIError returns err's *APIError and checks that no error string shows
// the API key, which would end up in logs and in the state's row errors.
func asAPIError(tb testing.TB, err error) *cometchat.APIError {
	tb.Helper()
	var ae *cometchat.APIError
	if !errors.As(err, &ae) {
		tb.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	noSecret(tb, err)
	return ae
}

func noSecret(tb testing.TB, err error) {
	tb.Helper()
	if err != nil && strings.Contains(err.Error(), testKey) {
		tb.Errorf("the error shows the API key: %v", err)
	}
}

// eventually polls cond, for what a server records after the client already
// has its answer.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestImportSendsGroupsKeyedByGUID(t *testing.T) {
	s := newScript(t, answer{status: 200, body: `{"data":{"team-1":{"success":true},"team-2":{"success":true}}}`})
	c := newClient(t, s.url(), nil)
	groups := []cometchat.Group{
		{GUID: "team-1", Name: "Team One", Type: "password", Password: "pw", Owner: "u1",
			Metadata: json.RawMessage(`{"a":1}`), Tags: []string{"red"}, CreatedAt: 1673421419,
			GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u1", Name: "User One"}},
		{GUID: "team-2", Name: "Team Two", Type: "public"},
	}
	rows, err := c.Import(context.Background(), groups)
	if err != nil {
		t.Fatal(err)
	}
	if !rows["team-1"].OK || !rows["team-2"].OK || len(rows) != 2 {
		t.Fatalf("rows = %+v, want both OK", rows)
	}

	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/v3/data_import/groups" {
		t.Errorf("request %s %s, want POST /v3/data_import/groups", r.method, r.path)
	}
	if got := r.header.Get("apikey"); got != testKey {
		t.Errorf("apikey header %q, want the configured key", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	// {"groups": {"<guid>": {...}}}: an object keyed by guid, nothing else.
	var body map[string]map[string]map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body is not {\"groups\":{\"<guid>\":{...}}}: %v: %s", err, r.body)
	}
	if len(body) != 1 || len(body["groups"]) != 2 {
		t.Fatalf("body = %s, want only groups, with 2 entries", r.body)
	}
	for key, obj := range body["groups"] {
		if string(obj["guid"]) != fmt.Sprintf("%q", key) {
			t.Errorf("group under %q has guid %s", key, obj["guid"])
		}
	}
	full, bare := body["groups"]["team-1"], body["groups"]["team-2"]
	if string(full["password"]) != `"pw"` || string(full["metadata"]) != `{"a":1}` ||
		string(full["createdAt"]) != "1673421419" || !strings.Contains(string(full["groupOwnerDetails"]), `"uid":"u1"`) {
		t.Errorf("team-1 sent as %v", full)
	}
	// Empty optional fields are left out, not sent as "" or null.
	if keys := slices.Sorted(maps.Keys(bare)); !slices.Equal(keys, []string{"guid", "name", "type"}) {
		t.Errorf("team-2 sent with fields %v, want only guid, name, type", keys)
	}
}

func TestImportReadsRowResultsTolerantly(t *testing.T) {
	// The per-row error shape is not documented: the client takes an
	// object with code/message, a string, or anything else.
	s := newScript(t, answer{status: 200, body: `{"data":{
		"created":       {"success": true, "data": {"guid": "created"}},
		"exists":        {"success": false, "error": {"code": "ERR_GUID_ALREADY_EXISTS", "message": "group exists"}},
		"as-string":     {"success": false, "error": "the group could not be imported"},
		"as-number":     {"success": false, "error": 42},
		"dev-message":   {"success": false, "error": {"devMessage": "only for developers"}},
		"no-error":      {"success": false},
		"no-success":    {"data": {"guid": "no-success"}},
		"not-an-object": "yes",
		"mixed-case":    {"success": true}
	}}`})
	c := newClient(t, s.url(), nil)
	tests := []struct {
		guid    string
		ok      bool
		code    string
		message string // a part of the message
	}{
		{"created", true, "", ""},
		{"exists", false, cometchat.CodeGUIDAlreadyExists, "group exists"},
		{"as-string", false, cometchat.CodeUnreadableRowResult, "the group could not be imported"},
		{"as-number", false, cometchat.CodeUnreadableRowResult, "42"},
		{"dev-message", false, cometchat.CodeUnreadableRowResult, "only for developers"},
		{"no-error", false, cometchat.CodeUnreadableRowResult, ""},
		{"no-success", false, cometchat.CodeUnreadableRowResult, "no-success"},
		{"not-an-object", false, cometchat.CodeUnreadableRowResult, "yes"},
		{"Mixed-Case", true, "", ""}, // CometChat answers under the lowercased guid
		{"missing", false, cometchat.CodeNoRowResult, "did not mention"},
	}
	groups := make([]cometchat.Group, len(tests))
	for i, tt := range tests {
		groups[i] = cometchat.Group{GUID: tt.guid, Name: tt.guid, Type: "public"}
	}
	rows, err := c.Import(context.Background(), groups)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(groups) {
		t.Errorf("%d row results for %d groups", len(rows), len(groups))
	}
	for _, tt := range tests {
		t.Run(tt.guid, func(t *testing.T) {
			r, ok := rows[tt.guid]
			if !ok {
				t.Fatalf("no result under the guid that was sent")
			}
			if r.OK != tt.ok || r.Code != tt.code || !strings.Contains(r.Message, tt.message) {
				t.Errorf("result %+v, want OK %v, code %q, message containing %q", r, tt.ok, tt.code, tt.message)
			}
		})
	}
}

func TestImportUnreadableAnswerLeavesRowsUnaccounted(t *testing.T) {
	for _, body := range []string{`<html>ok</html>`, `{"data":[]}`, `{}`, ``} {
		t.Run(body, func(t *testing.T) {
			s := newScript(t, answer{status: 200, body: body})
			rows, err := newClient(t, s.url(), nil).Import(context.Background(), oneGroup)
			if err != nil {
				t.Fatal(err)
			}
			if r := rows["g-1"]; r.OK || r.Code != cometchat.CodeNoRowResult {
				t.Errorf("result %+v, want %s: a 200 that names no row proves nothing", r, cometchat.CodeNoRowResult)
			}
		})
	}
}

func TestImportAgainstEmulator(t *testing.T) {
	emu, url := newEmulator(t, cometchattest.Faults{})
	emu.Put(cometchat.Group{GUID: "old", Name: "Old", Type: "public"})
	c := newClient(t, url, nil)
	rows, err := c.Import(context.Background(), []cometchat.Group{
		{GUID: "new", Name: "New", Type: "private", Tags: []string{"a"}},
		{GUID: "old", Name: "Old again", Type: "public"},
		{GUID: "bad-type", Name: "Bad", Type: "secret"},
		{GUID: "no-password", Name: "Locked", Type: "password"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"new": "", "old": cometchat.CodeGUIDAlreadyExists,
		"bad-type": "ERR_IMPORT_INVALID_GROUP_FORMAT", "no-password": "ERR_EMPTY_GROUP_PASS"}
	for guid, code := range want {
		if r := rows[guid]; r.OK != (code == "") || r.Code != code {
			t.Errorf("%s: %+v, want code %q", guid, r, code)
		}
	}
	if g, ok := emu.Group("new"); !ok || g.Name != "New" || g.Type != "private" {
		t.Errorf("emulator has %+v (%v), want the imported group", g, ok)
	}
	if g, _ := emu.Group("old"); g.Name != "Old" {
		t.Errorf("an import changed an existing group: %+v", g)
	}
}

func TestImportRefusesMoreThanMaxBatchLocally(t *testing.T) {
	s := newScript(t, okAnswer)
	c := newClient(t, s.url(), nil)
	groups := make([]cometchat.Group, cometchat.MaxBatch+1)
	for i := range groups {
		groups[i] = cometchat.Group{GUID: fmt.Sprintf("g-%d", i), Name: "G", Type: "public"}
	}
	_, err := c.Import(context.Background(), groups)
	if err == nil || !strings.Contains(err.Error(), "51") || !strings.Contains(err.Error(), "50") {
		t.Fatalf("Import of 51 groups = %v, want an error naming 51 and the limit 50", err)
	}
	var ae *cometchat.APIError
	if errors.As(err, &ae) {
		t.Errorf("a local refusal is an *APIError (%v); callers would take it for CometChat's answer", ae)
	}
	rows, err := c.Import(context.Background(), nil)
	if err != nil || len(rows) != 0 {
		t.Errorf("Import of no groups = %v, %v; want an empty result", rows, err)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestUpdateDeletePingOnTheWire(t *testing.T) {
	s := newScript(t, okAnswer)
	c := newClient(t, s.url(), nil)
	ctx := context.Background()
	if err := c.Update(ctx, "a b", cometchat.Update{Name: "New", Tags: &[]string{}, Unset: []string{"icon"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "team-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	tests := []struct {
		method, path, query, body string
	}{
		{http.MethodPut, "/v3/groups/a%20b", "", `{"name":"New","tags":[],"unset":["icon"]}`},
		{http.MethodDelete, "/v3/groups/team-1", "", ""},
		{http.MethodGet, "/v3/groups", "perPage=1", ""},
	}
	for i, tt := range tests {
		r := reqs[i]
		if r.method != tt.method || r.path != tt.path || r.query != tt.query || string(r.body) != tt.body {
			t.Errorf("request %d: %s %s?%s %s, want %s %s?%s %s", i, r.method, r.path, r.query, r.body,
				tt.method, tt.path, tt.query, tt.body)
		}
		if r.header.Get("apikey") != testKey {
			t.Errorf("request %d has no apikey header", i)
		}
	}
}

func TestUpdateDeletePingAgainstEmulator(t *testing.T) {
	emu, url := newEmulator(t, cometchattest.Faults{})
	emu.Put(cometchat.Group{GUID: "team-1", Name: "Team", Type: "public"})
	c := newClient(t, url, nil)
	ctx := context.Background()

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := c.Update(ctx, "team-1", cometchat.Update{Name: "Renamed"}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if g, _ := emu.Group("team-1"); g.Name != "Renamed" {
		t.Errorf("after Update the group is %+v", g)
	}
	err := c.Update(ctx, "nobody", cometchat.Update{Name: "x"})
	if ae := asAPIError(t, err); ae.Code != cometchat.CodeGUIDNotFound || ae.Status != 404 || ae.Retryable() || ae.Endpoint != "update" {
		t.Errorf("Update of an unknown guid: %+v", ae)
	}
	if err := c.Delete(ctx, "team-1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok := emu.Group("team-1"); ok {
		t.Error("the group is still there after Delete")
	}
	if ae := asAPIError(t, c.Delete(ctx, "team-1")); ae.Code != cometchat.CodeGUIDNotFound {
		t.Errorf("second Delete: %+v, want %s", ae, cometchat.CodeGUIDNotFound)
	}

	wrong := newClient(t, url, func(cfg *cometchat.Config) { cfg.APIKey = "wrong-key" })
	err = wrong.Ping(ctx)
	if !cometchat.IsAuth(err) || asAPIError(t, err).Code != "AUTH_ERR_APIKEY_NOT_FOUND" {
		t.Errorf("Ping with a wrong key = %v, want an auth error", err)
	}
	if strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("the error shows the key: %v", err)
	}
}

func TestAPIErrorClassification(t *testing.T) {
	tests := []struct {
		name                       string
		answer                     answer
		code, message              string
		retryable, auth, ratelimit bool
	}{
		{"400 bad request", errorAnswer(400, "ERR_BAD_REQUEST", "name: is required"),
			"ERR_BAD_REQUEST", "name: is required", false, false, false},
		{"401 unknown key, key echoed", errorAnswer(401, "AUTH_ERR_APIKEY_NOT_FOUND", "no key "+testKey+" in this app"),
			"AUTH_ERR_APIKEY_NOT_FOUND", "no key [apikey] in this app", false, true, false},
		{"403 no access", errorAnswer(403, "AUTH_ERR_NO_ACCESS", "the key has no fullAccess scope"),
			"AUTH_ERR_NO_ACCESS", "the key has no fullAccess scope", false, true, false},
		{"403 without a code", answer{status: 403, body: "Forbidden"}, "", "Forbidden", false, true, false},
		{"404 auth code decides, not the status", errorAnswer(404, "AUTH_ERR_INVALID_APPID", "no such app"),
			"AUTH_ERR_INVALID_APPID", "no such app", false, true, false},
		{"404 unknown guid", errorAnswer(404, "ERR_GUID_NOT_FOUND", "no group team-1"),
			"ERR_GUID_NOT_FOUND", "no group team-1", false, false, false},
		{"409 already exists", errorAnswer(409, "ERR_GUID_ALREADY_EXISTS", "exists"),
			"ERR_GUID_ALREADY_EXISTS", "exists", false, false, false},
		{"429", rateLimited(map[string]string{"Retry-After": "60"}),
			"ERR_TOO_MANY_REQUESTS", "rate limit exceeded", true, false, true},
		{"400 with the rate-limit code", answer{status: 400, header: map[string]string{"Retry-After": "60"},
			body: `{"error":{"code":"ERR_TOO_MANY_REQUESTS","message":"slow down"}}`},
			"ERR_TOO_MANY_REQUESTS", "slow down", true, false, true},
		{"500", errorAnswer(500, "ERR_EXCEPTION", "internal error"), "ERR_EXCEPTION", "internal error", true, false, false},
		{"503 from a proxy, not JSON", answer{status: 503, body: "upstream unavailable\n"},
			"", "upstream unavailable", true, false, false},
		{"502 error as a string", answer{status: 502, body: `{"error":"bad gateway"}`}, "", "bad gateway", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, tt.answer)
			// One attempt, and a 60 s Retry-After beyond MaxElapsed: every
			// case answers after its first request.
			c := newClient(t, s.url(), func(cfg *cometchat.Config) { cfg.MaxAttempts = 1; cfg.MaxElapsed = time.Second })
			err := c.Update(context.Background(), "team-1", cometchat.Update{Name: "x"})
			ae := asAPIError(t, err)
			if ae.Status != tt.answer.status || ae.Code != tt.code || ae.Message != tt.message {
				t.Errorf("status %d, code %q, message %q; want %d, %q, %q", ae.Status, ae.Code, ae.Message, tt.answer.status, tt.code, tt.message)
			}
			if ae.Retryable() != tt.retryable || ae.Auth() != tt.auth || ae.RateLimited() != tt.ratelimit {
				t.Errorf("Retryable %v, Auth %v, RateLimited %v; want %v, %v, %v",
					ae.Retryable(), ae.Auth(), ae.RateLimited(), tt.retryable, tt.auth, tt.ratelimit)
			}
			if got := cometchat.IsAuth(fmt.Errorf("sync: %w", err)); got != tt.auth {
				t.Errorf("IsAuth of the wrapped error = %v, want %v", got, tt.auth)
			}
			if ae.Endpoint != "update" || ae.Method != http.MethodPut || ae.Attempts != 1 {
				t.Errorf("endpoint %q, method %q, attempts %d; want update, PUT, 1", ae.Endpoint, ae.Method, ae.Attempts)
			}
			want := fmt.Sprintf("cometchat update: HTTP %d", tt.answer.status)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.code) {
				t.Errorf("Error() = %q, want it to start with %q and name the code", err, want)
			}
			if n := len(s.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	if cometchat.IsAuth(nil) || cometchat.IsAuth(errors.New("auth")) {
		t.Error("IsAuth is true for an error that is no *APIError")
	}
}

func TestTransportErrors(t *testing.T) {
	// A closed listener's address: nothing listens there, the dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/v3"
	ln.Close()

	resetEmu, resetURL := newEmulator(t, cometchattest.Faults{ResetRate: 1})
	hangEmu, hangURL := newEmulator(t, cometchattest.Faults{HangRate: 1})

	tests := []struct {
		name    string
		url     string
		emu     *cometchattest.Emulator
		outcome string // the emulator's Stats.Requests key for each attempt
		message string
		is      error
	}{
		{"connection refused", refused, nil, "", "connection refused", syscall.ECONNREFUSED},
		{"connection reset", resetURL, resetEmu, "POST import reset", "", nil},
		{"timeout", hangURL, hangEmu, "POST import hang", "no answer within 100ms (cometchat.timeout)", context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.url, func(cfg *cometchat.Config) { cfg.MaxAttempts = 2; cfg.Timeout = 100 * time.Millisecond })
			_, err := c.Import(context.Background(), oneGroup)
			ae := asAPIError(t, err)
			if ae.Status != 0 || !ae.Retryable() || ae.Auth() || ae.RateLimited() || ae.Err == nil {
				t.Errorf("%+v: want status 0, retryable, the transport error kept", ae)
			}
			if ae.Attempts != 2 || !strings.Contains(err.Error(), "(after 2 attempts)") {
				t.Errorf("Attempts %d (%v), want 2", ae.Attempts, err)
			}
			if !strings.HasPrefix(err.Error(), "cometchat import: no answer: ") || !strings.Contains(ae.Message, tt.message) {
				t.Errorf("Error() = %q, want a no-answer message containing %q", err, tt.message)
			}
			if strings.Contains(err.Error(), "http://") {
				t.Errorf("Error() = %q shows the URL", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if tt.emu != nil {
				eventually(t, "the emulator to count 2 "+tt.outcome, func() bool { return tt.emu.Stats().Requests[tt.outcome] == 2 })
			}
		})
	}
}

func TestRetries(t *testing.T) {
	var (
		e500 = errorAnswer(500, "ERR_EXCEPTION", "internal error")
		e503 = answer{status: 503, body: "unavailable"}
		e400 = errorAnswer(400, "ERR_BAD_REQUEST", "bad")
		e401 = errorAnswer(401, "AUTH_ERR_APIKEY_NOT_FOUND", "no such key")
		e429 = rateLimited(nil)
	)
	tests := []struct {
		name        string
		maxAttempts int
		answers     []answer
		wantErr     int // the status of the error; 0: success
		requests    int
	}{
		{"500 then 200", 5, []answer{e500, importOKAnswer}, 0, 2},
		{"503 from a proxy then 200", 5, []answer{e503, importOKAnswer}, 0, 2},
		{"five 500s use up five attempts", 5, []answer{e500}, 500, 5},
		{"400 is sent once", 5, []answer{e400, importOKAnswer}, 400, 1},
		{"auth error is sent once", 5, []answer{e401, importOKAnswer}, 401, 1},
		{"429s do not use up attempts", 2, []answer{e429, e429, e429, importOKAnswer}, 0, 4},
		{"failures around 429s", 3, []answer{e500, e429, e429, e500, importOKAnswer}, 0, 5},
		{"failures still bounded between 429s", 2, []answer{e429, e500, e429, e500, importOKAnswer}, 500, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, tt.answers...)
			c := newClient(t, s.url(), func(cfg *cometchat.Config) {
				cfg.MaxAttempts = tt.maxAttempts
				cfg.InitialBackoff = 100 * time.Millisecond
				cfg.MaxBackoff = time.Second
			})
			var rec recorder
			c.SetSleep(rec.sleep)
			rows, err := c.Import(context.Background(), oneGroup)
			if got := len(s.requests()); got != tt.requests {
				t.Errorf("%d requests, want %d", got, tt.requests)
			}
			if tt.wantErr == 0 {
				if err != nil || !rows["g-1"].OK {
					t.Fatalf("Import = %v, %v; want success", rows, err)
				}
			} else {
				ae := asAPIError(t, err)
				if ae.Status != tt.wantErr || ae.Attempts != tt.requests {
					t.Errorf("error %v: status %d after %d attempts, want %d after %d", err, ae.Status, ae.Attempts, tt.wantErr, tt.requests)
				}
			}
			// Backoffs are full jitter below MaxBackoff; a 429 without
			// Retry-After waits at most InitialBackoff.
			if got := rec.longest(); got > time.Second {
				t.Errorf("longest wait %v, want at most MaxBackoff 1s", got)
			}
		})
	}
}

func TestRateLimitWaitHonoursHeaders(t *testing.T) {
	in10s := func() string { return fmt.Sprint(time.Now().Add(10 * time.Second).Unix()) }
	tests := []struct {
		name     string
		header   func() map[string]string // built when the subtest runs: some are dates
		min, max time.Duration            // the pause every worker takes
	}{
		{"Retry-After seconds", func() map[string]string { return map[string]string{"Retry-After": "7"} }, 6 * time.Second, 7 * time.Second},
		// HTTP dates have whole seconds: now+10s can mean 9 to 10 s from now.
		{"Retry-After HTTP date", func() map[string]string {
			return map[string]string{"Retry-After": time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)}
		}, 8 * time.Second, 10 * time.Second},
		{"X-RateLimit-Reset epoch", func() map[string]string { return map[string]string{"X-RateLimit-Reset": in10s()} }, 8 * time.Second, 10 * time.Second},
		{"X-RateLimit-Reset seconds", func() map[string]string { return map[string]string{"X-RateLimit-Reset": "4"} }, 3 * time.Second, 4 * time.Second},
		{"X-Rate-Limit-Reset seconds", func() map[string]string { return map[string]string{"X-Rate-Limit-Reset": "5"} }, 4 * time.Second, 5 * time.Second},
		{"x-ratelimit-reset lower case", func() map[string]string { return map[string]string{"x-ratelimit-reset": "6"} }, 5 * time.Second, 6 * time.Second},
		{"X-RATE-LIMIT-RESET upper case epoch", func() map[string]string { return map[string]string{"X-RATE-LIMIT-RESET": in10s()} }, 8 * time.Second, 10 * time.Second},
		{"no header: a short backoff", func() map[string]string { return nil }, 0, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, rateLimited(tt.header()), okAnswer)
			c := newClient(t, s.url(), func(cfg *cometchat.Config) {
				cfg.MaxAttempts = 1 // a 429 is not a failure: it is retried all the same
				cfg.InitialBackoff = 100 * time.Millisecond
				cfg.MaxElapsed = time.Minute
			})
			var rec recorder
			c.SetSleep(rec.sleep)
			if err := c.Delete(context.Background(), "team-1"); err != nil {
				t.Fatalf("Delete after one 429 = %v, want success", err)
			}
			if got := rec.longest(); got < tt.min || got > tt.max {
				t.Errorf("waited %v, want %v to %v", got, tt.min, tt.max)
			}
			if n := len(s.requests()); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

func TestRetryAfterHoldsEveryWorker(t *testing.T) {
	s := newScript(t, rateLimited(map[string]string{"Retry-After": "1"}), okAnswer)
	c := newClient(t, s.url(), nil)
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() { errs <- c.Update(ctx, "first", cometchat.Update{Name: "x"}) }()
	eventually(t, "the first request", func() bool { return len(s.requests()) >= 1 })
	// A second worker starts while the first waits out the Retry-After.
	time.Sleep(100 * time.Millisecond)
	go func() { errs <- c.Update(ctx, "second", cometchat.Update{Name: "y"}) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	reqs := s.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (one 429, then both workers once)", len(reqs))
	}
	for _, r := range reqs[1:] {
		// Retry-After: 1 was answered after the first request arrived, so
		// nothing may arrive within a second of it. No upper bound: how
		// soon after is a question of speed.
		if gap := r.at.Sub(reqs[0].at); gap < time.Second {
			t.Errorf("%s %s arrived %v after the 429'd request, want at least the Retry-After of 1s", r.method, r.path, gap)
		}
	}
}

func TestRateLimitLongerThanMaxElapsedFailsAtOnce(t *testing.T) {
	s := newScript(t, rateLimited(map[string]string{"Retry-After": "30"}), okAnswer)
	c := newClient(t, s.url(), func(cfg *cometchat.Config) { cfg.MaxElapsed = 2 * time.Second })
	var rec recorder
	c.SetSleep(rec.sleep)
	err := c.Ping(context.Background())
	ae := asAPIError(t, err)
	if !ae.RateLimited() || ae.RetryAfter != 30*time.Second || ae.Attempts != 1 {
		t.Errorf("%+v: want the 429 with its Retry-After of 30s, after 1 attempt", ae)
	}
	if got := rec.longest(); got != 0 {
		t.Errorf("waited %v before giving up, want no wait: the Retry-After is beyond MaxElapsed", got)
	}
	// The next request still waits, but for MaxElapsed at most: an absurd
	// Retry-After must not stall every worker for as long as it says.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rec.longest(); got < time.Second || got > 2*time.Second {
		t.Errorf("the next request waited %v, want the pause capped at MaxElapsed (2s)", got)
	}
}

func TestMaxElapsedBoundsAnOutage(t *testing.T) {
	tests := []struct {
		name    string
		faults  cometchattest.Faults
		status  int
		message string
	}{
		{"every request 503", cometchattest.Faults{Outage: true}, 503, ""},
		{"every request hangs", cometchattest.Faults{HangRate: 1}, 0, "(cometchat.retry.max_elapsed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, url := newEmulator(t, tt.faults)
			c := newClient(t, url, func(cfg *cometchat.Config) {
				cfg.MaxAttempts = 1000 // MaxElapsed, not the attempts, must end it
				cfg.InitialBackoff = 50 * time.Millisecond
				cfg.MaxBackoff = 200 * time.Millisecond
				cfg.MaxElapsed = time.Second
				cfg.Timeout = 30 * time.Second
			})
			start := time.Now()
			_, err := c.Import(context.Background(), oneGroup)
			took := time.Since(start)
			ae := asAPIError(t, err)
			if ae.Status != tt.status || !strings.Contains(ae.Message, tt.message) {
				t.Errorf("error %v, want status %d and a message containing %q", err, tt.status, tt.message)
			}
			// The bound is the behaviour: a full outage ends the request
			// instead of retrying for ever (or for MaxAttempts × Timeout).
			// It gives up when the next wait would pass MaxElapsed, so it
			// keeps trying for at least MaxElapsed - MaxBackoff.
			if took < 750*time.Millisecond || took > 2*time.Second {
				t.Errorf("gave up after %v, want about MaxElapsed (1s)", took)
			}
			eventually(t, "the emulator to count every attempt", func() bool {
				return emu.Stats().ImportRequests == ae.Attempts
			})
			if tt.status != 0 && ae.Attempts < 2 {
				t.Errorf("%d attempts, want retries within MaxElapsed", ae.Attempts)
			}
		})
	}
}

func TestContextCancellationReturnsPromptly(t *testing.T) {
	tests := []struct {
		name   string
		server func(t *testing.T) string
		adjust func(*cometchat.Config)
	}{
		{"during a hanging request", func(t *testing.T) string {
			_, url := newEmulator(t, cometchattest.Faults{HangRate: 1})
			return url
		}, nil},
		{"during a Retry-After pause", func(t *testing.T) string {
			return newScript(t, rateLimited(map[string]string{"Retry-After": "30"})).url()
		}, func(cfg *cometchat.Config) { cfg.MaxElapsed = time.Minute }},
		{"during a backoff", func(t *testing.T) string {
			return newScript(t, errorAnswer(500, "ERR_EXCEPTION", "internal error")).url()
		}, func(cfg *cometchat.Config) {
			cfg.InitialBackoff, cfg.MaxBackoff, cfg.MaxElapsed = 20*time.Second, 20*time.Second, time.Minute
		}},
		{"while waiting for a pacing token", func(t *testing.T) string {
			return newScript(t, okAnswer).url()
		}, func(cfg *cometchat.Config) { cfg.OtherPerMinute = 1 }},
	}
	for _, tt := range tests {
		for _, cause := range []error{context.Canceled, context.DeadlineExceeded} {
			t.Run(fmt.Sprintf("%s/%v", tt.name, cause), func(t *testing.T) {
				c := newClient(t, tt.server(t), func(cfg *cometchat.Config) {
					cfg.Timeout = 30 * time.Second
					if tt.adjust != nil {
						tt.adjust(cfg)
					}
				})
				// The pacing case spends the free first token first.
				if tt.name == "while waiting for a pacing token" {
					if err := c.Ping(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				if cause == context.DeadlineExceeded {
					ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
				} else {
					time.AfterFunc(200*time.Millisecond, cancel)
				}
				defer cancel()
				start := time.Now()
				err := c.Ping(ctx)
				if err != cause {
					t.Errorf("Ping = %v (%T), want ctx.Err() = %v itself", err, err, cause)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("returned %v after the start, want soon after the context ended at 200ms", took)
				}
			})
		}
	}
	t.Run("already canceled", func(t *testing.T) {
		s := newScript(t, okAnswer)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := newClient(t, s.url(), nil).Import(ctx, oneGroup); err != context.Canceled {
			t.Errorf("Import = %v, want context.Canceled", err)
		}
		if n := len(s.requests()); n != 0 {
			t.Errorf("%d requests sent on a canceled context", n)
		}
	})
}

func TestPacingStaysUnderTheLimit(t *testing.T) {
	// The emulator allows 10 imports a second (a bucket of 10, starting
	// full) and answers 429 above that; the client is told the same limit.
	// 30 imports started at once must all pass without a single 429: the
	// client paces itself instead of discovering the limit. This asserts
	// behaviour, not speed: the lower bound on the time is what the limit
	// forces (30 requests 100 ms apart, the first free); scheduling delays
	// only add to it. There is no tight upper bound; throughput is
	// BenchmarkPacedBackfill's job.
	emu, url := newEmulator(t, cometchattest.Faults{ImportPerSecond: 10, RetryAfter: true})
	c := newClient(t, url, func(cfg *cometchat.Config) { cfg.ImportPerMinute = 600 })
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			guid := fmt.Sprintf("paced-%02d", i)
			rows, err := c.Import(context.Background(), []cometchat.Group{{GUID: guid, Name: guid, Type: "public"}})
			if err == nil && !rows[guid].OK {
				err = fmt.Errorf("%s: %+v", guid, rows[guid])
			}
			errs <- err
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := emu.Stats()
	if st.TooManyRequests != 0 || st.ImportRequests != n {
		t.Errorf("the emulator answered %d of %d import requests 429; want none, and %d requests", st.TooManyRequests, st.ImportRequests, n)
	}
	if took < 2900*time.Millisecond {
		t.Errorf("%d imports took %v, faster than 10 a second allows (2.9s)", n, took)
	}
	if took > 10*time.Second {
		t.Errorf("%d imports took %v; the pacer slowed down far below the limit", n, took)
	}
}

func TestPacingIsPerEndpointClass(t *testing.T) {
	s := newScript(t, importOKAnswer)
	c := newClient(t, s.url(), func(cfg *cometchat.Config) {
		cfg.ImportPerMinute = 60 // one a second
		cfg.OtherPerMinute = 600 // ten a second
	})
	var rec recorder
	c.SetSleep(rec.sleep)
	ctx := context.Background()
	for range 2 {
		if _, err := c.Import(ctx, oneGroup); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.longest(); got < 900*time.Millisecond || got > time.Second {
		t.Fatalf("the second import waited %v, want about 1s", got)
	}
	// The imports used up their own budget, not the one of other calls.
	rec = recorder{}
	c.SetSleep(rec.sleep)
	for range 2 {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.longest(); got > 100*time.Millisecond {
		t.Errorf("the second ping waited %v, want at most 100ms: imports must not slow other calls", got)
	}
}

func TestObserveSeesEveryAnswer(t *testing.T) {
	type seen struct {
		endpoint string
		status   int
		code     string
	}
	var (
		mu  sync.Mutex
		got []seen
	)
	observe := func(endpoint string, status int, code string, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if took <= 0 {
			t.Errorf("%s %d observed with duration %v", endpoint, status, took)
		}
		got = append(got, seen{endpoint, status, code})
	}
	s := newScript(t, errorAnswer(500, "ERR_EXCEPTION", "internal"), importOKAnswer,
		errorAnswer(404, "ERR_GUID_NOT_FOUND", "no group"), okAnswer, okAnswer)
	c := newClient(t, s.url(), func(cfg *cometchat.Config) { cfg.Observe = observe })
	ctx := context.Background()
	if _, err := c.Import(ctx, oneGroup); err != nil {
		t.Fatal(err)
	}
	_ = c.Update(ctx, "nobody", cometchat.Update{Name: "x"})
	_ = c.Delete(ctx, "team-1")
	_ = c.Ping(ctx)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	down := newClient(t, "http://"+ln.Addr().String(), func(cfg *cometchat.Config) { cfg.Observe = observe; cfg.MaxAttempts = 1 })
	_, _ = down.Import(ctx, oneGroup)

	want := []seen{
		{"import", 500, "ERR_EXCEPTION"},
		{"import", 200, ""},
		{"update", 404, "ERR_GUID_NOT_FOUND"},
		{"delete", 200, ""},
		{"get", 200, ""},
		{"import", 0, ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
}

// A pass that is told to stop sends no new request: one still waiting for
// the pacer gives up with ErrStopped and is never sent.
func TestStopLeavesWaitingRequestsUnsent(t *testing.T) {
	emu, url := newEmulator(t, cometchattest.Faults{})
	c := newClient(t, url, func(cfg *cometchat.Config) { cfg.ImportPerMinute = 60 }) // one a second
	group := func(guid string) []cometchat.Group {
		return []cometchat.Group{{GUID: guid, Name: guid, Type: "public"}}
	}
	if _, err := c.Import(context.Background(), group("first")); err != nil {
		t.Fatal(err)
	}
	stop, stopNow := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Import(cometchat.WithStop(context.Background(), stop), group("second"))
		done <- err
	}()
	stopNow()
	if err := <-done; !errors.Is(err, cometchat.ErrStopped) {
		t.Fatalf("a request waiting for the pacer when the stop came: %v, want ErrStopped", err)
	}
	if n := emu.Stats().ImportRequests; n != 1 {
		t.Errorf("the emulator got %d import requests, want 1: the stopped one was sent", n)
	}
	// The stop belongs to that context only: others still send.
	if _, err := c.Import(context.Background(), group("third")); err != nil {
		t.Errorf("a request without the stop: %v", err)
	}
}

// A request already on the wire when the stop comes runs to its end.
func TestStopLetsARequestOnTheWireFinish(t *testing.T) {
	emu, url := newEmulator(t, cometchattest.Faults{Latency: 300 * time.Millisecond})
	c := newClient(t, url, nil)
	stop, stopNow := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		rows, err := c.Import(cometchat.WithStop(context.Background(), stop), []cometchat.Group{{GUID: "wire", Name: "w", Type: "public"}})
		if err == nil && !rows["wire"].OK {
			err = fmt.Errorf("row: %+v", rows["wire"])
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for emu.Stats().ImportRequests == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stopNow()
	if err := <-done; err != nil {
		t.Fatalf("a request on the wire when the stop came: %v, want it to finish", err)
	}
	if _, ok := emu.Group("wire"); !ok {
		t.Error("the group of the request that finished is not in CometChat")
	}
}

// Retries are logged at debug level, but a failing API must show at the
// default level: one warning per interval, not one per retry.
func TestRetriedFailuresWarnOncePerInterval(t *testing.T) {
	_, url := newEmulator(t, cometchattest.Faults{Outage: true})
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := cometchat.Config{BaseURL: url, APIKey: testKey, Timeout: time.Second, MaxAttempts: 3,
		InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, MaxElapsed: 10 * time.Second,
		ImportPerMinute: 60_000, OtherPerMinute: 60_000}
	c := cometchat.New(cfg, zap.New(core))
	for i := range 3 {
		if _, err := c.Import(context.Background(), []cometchat.Group{{GUID: fmt.Sprint("g", i), Name: "g", Type: "public"}}); err == nil {
			t.Fatal("an import during an outage succeeded")
		}
	}
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 1 || logs.Len() != 1 {
		t.Fatalf("6 retries within a second logged %d entries (%d warnings) at info and above, want exactly 1 warning", logs.Len(), len(warns))
	}
	f := warns[0].ContextMap()
	if f["endpoint"] != "import" || f["status"] != int64(503) || !strings.Contains(warns[0].Message, "retrying") {
		t.Errorf("the warning does not say what failed: %q %v", warns[0].Message, f)
	}
	if strings.Contains(fmt.Sprint(f), testKey) {
		t.Errorf("the warning shows the API key: %v", f)
	}
}
