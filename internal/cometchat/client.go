// Package cometchat is the REST client for the parts of CometChat's API v3
// that a sync of users, groups and memberships uses. It owns everything
// that depends on how the API answers: the typed errors and their
// classification (Exists, NotFound, ShapeRefused), the retries, and the
// pacing that keeps requests under the rate limits.
//
// The calls, by entity:
//
//   - groups: Import (POST /data_import/groups), Update (PUT /groups/{guid}),
//     Delete (DELETE /groups/{guid}), and Ping (GET /groups?perPage=1);
//   - users: ImportUsers (POST /data_import/users), UpdateUser
//     (PUT /users/{uid}), DeleteUser (DELETE /users/{uid}: deactivates,
//     or erases with permanent), ReactivateUsers (PUT /users);
//   - members: ImportMembers (POST /data_import/members, keeps joinedAt),
//     AddMembers (POST /groups/{guid}/members, ≤ 25 uids a call, per-uid
//     results), SetMemberScope (PUT /groups/{guid}/members/{uid}) and
//     KickMember (DELETE /groups/{guid}/members/{uid}).
//
// Every data-import endpoint shares one pacer (ImportPerMinute: whether
// CometChat counts them together is not documented, so they are paced as
// one budget); every other call shares the other one (OtherPerMinute).
package cometchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"
)

// Config is what the client needs to reach one CometChat app.
type Config struct {
	BaseURL         string        // e.g. https://APPID.api-us.cometchat.io/v3
	APIKey          string        // REST API key with fullAccess scope
	Timeout         time.Duration // per request attempt
	MaxAttempts     int           // attempts for a failing request (429 waits do not count)
	InitialBackoff  time.Duration // backoff ceiling after the first failure; doubles per failure
	MaxBackoff      time.Duration // cap of the backoff ceiling
	MaxElapsed      time.Duration // bound on all attempts and waits of one request, from its first send
	ImportPerMinute float64       // client-side pacing of data-import requests
	OtherPerMinute  float64       // client-side pacing of everything else
	Concurrency     int           // requests expected in flight; sizes the connection pool
	// Observe, when set, is told about every answer (or transport failure, status 0).
	Observe func(endpoint string, status int, code string, took time.Duration)
}

// Client talks to one CometChat app. It is safe for concurrent use: every
// worker shares its rate limiters, so the limits hold for the whole process.
type Client struct {
	cfg  Config
	http *http.Client
	log  *zap.Logger

	importPace *pacer
	otherPace  *pacer
	sleep      func(ctx context.Context, d time.Duration) error
	// lastWarn is when a failing request was last logged at warn level
	// (unix ns): retries are logged at debug, but an outage must show at
	// the default level too, without a line for every retry.
	lastWarn atomic.Int64
}

// warnEvery is how often retried failures are logged at warn level.
const warnEvery = 10 * time.Second

// New builds a client. Zero values in cfg get the documented defaults.
func New(cfg Config, log *zap.Logger) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxElapsed <= 0 {
		cfg.MaxElapsed = 2 * time.Minute
	}
	if cfg.ImportPerMinute <= 0 {
		cfg.ImportPerMinute = 60
	}
	if cfg.OtherPerMinute <= 0 {
		cfg.OtherPerMinute = 10000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if log == nil {
		log = zap.NewNop()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A pass has up to concurrency × 8 updates in flight, across its
	// batches: a smaller idle pool closes the connections of a burst of
	// updates and opens new ones (a TLS handshake each) for the next, a
	// tenth of the requests of a steady stream.
	tr.MaxIdleConnsPerHost = cfg.Concurrency * 8
	return &Client{
		cfg:        cfg,
		http:       &http.Client{Transport: tr},
		log:        log,
		importPace: newPacer(cfg.ImportPerMinute, 1),
		// Updates come in bursts (a batch of changed groups) against a limit
		// two orders of magnitude higher: one second's share may go at once.
		otherPace: newPacer(cfg.OtherPerMinute, max(1, int(cfg.OtherPerMinute/60))),
		sleep:     sleepCtx,
	}
}

// ErrStopped is the error of a request that was still waiting for its turn
// (the pacer, a 429's pause, the backoff before a retry) when its stop
// context ended: it was not sent, or not sent again.
var ErrStopped = errors.New("cometchat: stopping: the request was not sent")

type stopKey struct{}

// WithStop returns ctx with a stop signal for graceful shutdown. Once stop
// is done, requests made with the returned context that are still waiting
// for their turn give up with ErrStopped, while a request already on the
// wire runs to its end under ctx. A pass stops this way: no new batch goes
// out, the batches in flight finish.
func WithStop(ctx, stop context.Context) context.Context {
	return context.WithValue(ctx, stopKey{}, stop)
}

// Ping checks the app ID, region and key with a harmless read
// (GET /groups?perPage=1).
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, "get", http.MethodGet, "/groups?perPage=1", nil, c.otherPace)
	return err
}

// do sends one request with retries: exponential backoff with full jitter
// for failures, the server's own wait for rate limits (which does not use up
// the attempts), all within MaxElapsed.
func (c *Client) do(ctx context.Context, endpoint, method, path string, body any, pace *pacer) ([]byte, error) {
	var payload []byte
	switch b := body.(type) {
	case nil:
	case []byte: // already encoded
		payload = b
	default:
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("cometchat %s: encode request: %w", endpoint, err)
		}
	}
	// waitCtx bounds the waiting between sends; ctx bounds the sends.
	waitCtx := ctx
	if stop, _ := ctx.Value(stopKey{}).(context.Context); stop != nil {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
	}
	stopped := func(err error) error {
		if ctx.Err() == nil && waitCtx.Err() != nil {
			return ErrStopped
		}
		return err
	}
	var deadline time.Time // set at the first send: queueing for the pacer is not retrying
	failures, sent := 0, 0
	var last *APIError
	for {
		if err := pace.wait(waitCtx, c.sleep); err != nil {
			return nil, stopped(err)
		}
		if waitCtx.Err() != nil { // stopped while the pacer let it through
			return nil, stopped(waitCtx.Err())
		}
		if sent == 0 {
			deadline = time.Now().Add(c.cfg.MaxElapsed)
		}
		// MaxElapsed bounds every attempt too, so that a hanging API cannot
		// stretch it by up to Timeout.
		timeout, setting := c.cfg.Timeout, "cometchat.timeout"
		if left := time.Until(deadline); left < timeout {
			if left <= 0 && last != nil {
				return nil, last
			}
			timeout, setting = max(left, time.Millisecond), "cometchat.retry.max_elapsed"
		}
		sent++
		sentAt := time.Now()
		raw, apiErr := c.once(ctx, endpoint, method, path, payload, timeout, setting)
		if apiErr == nil {
			pace.succeeded()
			return raw, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		apiErr.Attempts = sent
		if !apiErr.Retryable() {
			return nil, apiErr
		}
		last = apiErr
		var wait time.Duration
		if apiErr.RateLimited() {
			wait = apiErr.RetryAfter
			if wait <= 0 {
				wait = c.backoff(1)
			}
			// The limit is shared: the pacer makes every worker wait and slow
			// down, not just this one; pace.wait, at the top of the loop,
			// does the waiting. The pause is capped at MaxElapsed, what one
			// request waits at most, so that an absurd Retry-After cannot
			// stall the process.
			pace.limited(sentAt, min(wait, c.cfg.MaxElapsed))
		} else {
			failures++
			if failures >= c.cfg.MaxAttempts {
				return nil, apiErr
			}
			wait = max(c.backoff(failures), apiErr.RetryAfter)
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, apiErr
		}
		level, msg := zapcore.DebugLevel, "retrying request"
		if last := c.lastWarn.Load(); !apiErr.RateLimited() && time.Since(time.Unix(0, last)) >= warnEvery &&
			c.lastWarn.CompareAndSwap(last, time.Now().UnixNano()) {
			level, msg = zapcore.WarnLevel, "CometChat request failed; retrying (further retries are logged at debug level for 10s)"
		}
		c.log.Log(level, msg, zap.String("endpoint", endpoint), zap.Int("status", apiErr.Status),
			zap.String("code", apiErr.Code), zap.String("error", apiErr.Error()), zap.Duration("wait", wait), zap.Int("attempt", sent))
		if !apiErr.RateLimited() {
			if err := c.sleep(waitCtx, wait); err != nil {
				return nil, stopped(err)
			}
		}
	}
}

// backoff is the full-jitter exponential backoff for the n-th failure.
func (c *Client) backoff(n int) time.Duration {
	// Double step by step rather than shift, which could overflow.
	ceil := c.cfg.InitialBackoff
	for i := 1; i < n && ceil < c.cfg.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, c.cfg.MaxBackoff)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// once sends the request a single time, waiting at most timeout (which the
// config setting named by setting decides) for the whole answer, and
// classifies the answer.
func (c *Client) once(ctx context.Context, endpoint, method, path string, payload []byte, timeout time.Duration, setting string) ([]byte, *APIError) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+path, rd)
	if err != nil {
		return nil, &APIError{Endpoint: endpoint, Method: method, Message: c.redact("build request: " + err.Error()), Status: 400, Err: err}
	}
	req.Header.Set("apikey", c.cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(endpoint, 0, "", time.Since(start))
		return nil, &APIError{Endpoint: endpoint, Method: method, Message: c.redact(transportMessage(err, timeout, setting)), Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		c.observe(endpoint, 0, "", time.Since(start))
		return nil, &APIError{Endpoint: endpoint, Method: method, Message: c.redact("read answer: " + transportMessage(err, timeout, setting)), Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		c.observe(endpoint, resp.StatusCode, "", time.Since(start))
		return raw, nil
	}
	apiErr := &APIError{Endpoint: endpoint, Method: method, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, time.Now())}
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil && len(env.Error) > 0 {
		apiErr.Code, apiErr.Message = parseErrorValue(env.Error)
	} else {
		apiErr.Message = clip(strings.TrimSpace(string(raw)), 200)
	}
	// Messages end up in logs and in the state's row errors: an API (or a
	// proxy) that echoes the key must not put it there.
	apiErr.Message = c.redact(apiErr.Message)
	c.observe(endpoint, resp.StatusCode, apiErr.Code, time.Since(start))
	return nil, apiErr
}

// redact removes the API key from a message meant for people.
func (c *Client) redact(msg string) string {
	if c.cfg.APIKey == "" {
		return msg
	}
	return strings.ReplaceAll(msg, c.cfg.APIKey, "[apikey]")
}

func (c *Client) observe(endpoint string, status int, code string, took time.Duration) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(endpoint, status, code, took)
	}
}

// transportMessage says what happened on the wire in words, without the
// URL (which the caller already knows and which may carry an app ID).
func transportMessage(err error, timeout time.Duration, setting string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s (%s)", timeout.Round(time.Millisecond), setting)
	}
	return err.Error()
}

// retryAfter reads Retry-After (seconds or an HTTP date) and, failing that,
// X-RateLimit-Reset / X-Rate-Limit-Reset (UNIX seconds or milliseconds, or
// seconds to wait when small). Header names are case-insensitive in net/http
// already. The answer is at most maxRetryAfter, whatever the headers say.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
			return min(time.Duration(min(s, maxRetryAfter.Seconds())*float64(time.Second)), maxRetryAfter)
		}
		if t, err := http.ParseTime(v); err == nil {
			return min(max(t.Sub(now), 0), maxRetryAfter)
		}
	}
	for _, name := range []string{"X-RateLimit-Reset", "X-Rate-Limit-Reset"} {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			continue
		}
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 {
			continue
		}
		var wait time.Duration
		switch {
		case s > 100_000_000_000: // an epoch time in milliseconds
			wait = time.UnixMilli(s).Sub(now)
		case s > 1_000_000_000: // an epoch time in seconds
			wait = time.Unix(s, 0).Sub(now)
		default: // a number of seconds to wait
			wait = time.Duration(min(s, int64(maxRetryAfter/time.Second))) * time.Second
		}
		return min(max(wait, 0), maxRetryAfter)
	}
	return 0
}

// maxRetryAfter caps what a rate-limit header can ask for; anything longer
// is beyond MaxElapsed anyway and would only overflow.
const maxRetryAfter = 24 * time.Hour

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pacer keeps one class of requests under its limit for the whole process:
// a token bucket at the configured rate that halves when CometChat answers
// 429 anyway and creeps back after successes, plus a shared pause that a
// Retry-After imposes on every worker.
type pacer struct {
	limiter *rate.Limiter
	base    rate.Limit
	now     func() time.Time

	mu      sync.Mutex
	paused  time.Time // no request before this
	lastCut time.Time // when the rate was last halved
}

// newPacer allows perMinute requests a minute, evenly spread, with the
// given burst. Imports use a burst of one: a larger burst would let the
// client run ahead of the limit whenever its bucket is fuller than the
// server's, for example at the start when both are full; the server then
// answers 429, and a 429 costs every worker the whole Retry-After (at least
// a second). See docs/PACING.md.
func newPacer(perMinute float64, burst int) *pacer {
	base := rate.Limit(perMinute / 60)
	return &pacer{limiter: rate.NewLimiter(base, burst), base: base, now: time.Now}
}

// wait blocks until this class may send one request: after any pause a
// 429 imposed, and when the token bucket has a token. It returns ctx.Err()
// when ctx ends first.
func (p *pacer) wait(ctx context.Context, sleep func(context.Context, time.Duration) error) error {
	until := p.pausedUntil()
	if err := sleep(ctx, until.Sub(p.now())); err != nil {
		return err
	}
	// Reserve under the lock so that reservations carry times in the order
	// they are made: given an earlier time than the last one, the limiter
	// moves its clock back and counts that stretch twice, letting a burst
	// of workers run slightly ahead of the limit.
	p.mu.Lock()
	now := p.now()
	r := p.limiter.ReserveN(now, 1)
	p.mu.Unlock()
	if err := sleep(ctx, r.DelayFrom(now)); err != nil {
		// Give the token back: the request is not sent.
		r.CancelAt(p.now())
		return err
	}
	// A 429 answered to another worker while this one waited for its token
	// pauses this one too.
	if again := p.pausedUntil(); again.After(until) {
		return sleep(ctx, again.Sub(p.now()))
	}
	return nil
}

func (p *pacer) pausedUntil() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// limited records a 429 to a request sent at sent: every worker pauses
// for wait, and the rate halves (down to 1/16 of the configured one). 429s
// to requests sent before the last halving are the same overload, already
// answered, so they do not halve it again.
func (p *pacer) limited(sent time.Time, wait time.Duration) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := now.Add(wait); until.After(p.paused) {
		p.paused = until
	}
	if sent.After(p.lastCut) {
		p.limiter.SetLimitAt(now, max(p.limiter.Limit()/2, p.base/16))
		p.lastCut = now
	}
}

// succeeded lets the rate recover towards the configured limit, by a
// twentieth of it per success.
func (p *pacer) succeeded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.limiter.Limit(); l < p.base {
		p.limiter.SetLimitAt(p.now(), min(p.base, l+p.base/20))
	}
}
