package cometchattest

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Faults makes the emulator misbehave the way the real API can. The zero
// value is a healthy API. Rates are fractions in [0, 1]; 1 means every request.
type Faults struct {
	Latency           time.Duration // added to every request before it is answered; ends early if the client goes away
	ImportPerSecond   float64       // 0 = unlimited; else data-import requests (groups, users and members together) are limited by a token bucket (rate N/s, burst max(1,N)); over it: HTTP 429 ERR_TOO_MANY_REQUESTS
	OtherPerSecond    float64       // same for every other request (PUT/DELETE/GET/POST members)
	RetryAfter        bool          // whether 429s carry Retry-After (whole seconds, at least 1) and X-RateLimit-Limit/-Remaining/-Reset (Reset = unix seconds when a token is available)
	ErrorRate         float64       // fraction of requests answered HTTP 500 ERR_EXCEPTION without doing anything
	PartialImportRate float64       // fraction of import requests (any entity) that import the first half of their rows (in request order) and then answer HTTP 500 ERR_EXCEPTION
	ResetRate         float64       // fraction of requests whose connection is closed without an answer
	HangRate          float64       // fraction of requests that never answer until the client goes away
	Outage            bool          // every request answered HTTP 503 ERR_EXCEPTION
	WriteOutage       bool          // every request but GET answered HTTP 503 ERR_EXCEPTION: reads work, writes do not
	// RejectRow, when set, is asked about every import row that passed
	// validation, with its lowercased key (the guid, the uid, or the member
	// id <guid>_member_<uid>), once per row per request, before
	// the row is stored; reject=true answers the row with code and message
	// (code "" means ERR_OPERATION_FAILED) and stores nothing. It is called
	// without the emulator's lock held, possibly concurrently.
	RejectRow func(key string) (code, message string, reject bool)
	Seed      int64 // seed for the fault randomness (deterministic when set; 0 = time-based)
}

// Outcomes of requests that got no HTTP answer, as recorded in Stats.Requests.
const (
	outcomeReset    = "reset"
	outcomeHang     = "hang"
	outcomeCanceled = "canceled"
	outcomeAborted  = "aborted"
)

// chaos is the mutable state behind one Faults value: the seeded randomness
// and the token buckets. SetFaults replaces it whole.
type chaos struct {
	limits Faults // what the buckets were made from, for the 429's headers
	mu     sync.Mutex
	rng    *rand.Rand
	imp    *rate.Limiter // nil: unlimited
	other  *rate.Limiter // nil: unlimited
}

func newChaos(f Faults) *chaos {
	seed := f.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &chaos{
		limits: f,
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x636f6d6574)),
		imp:    newLimiter(f.ImportPerSecond),
		other:  newLimiter(f.OtherPerSecond),
	}
}

func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))
}

// roll decides one fault of the given rate. Rates of 0 and 1 draw nothing, so
// enabling a certain fault does not shift the sequence of the random ones.
func (c *chaos) roll(fraction float64) bool {
	switch {
	case fraction <= 0:
		return false
	case fraction >= 1:
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Float64() < fraction
}

// take spends a token of the import or the other bucket. When none is left
// it spends nothing and says how long until one is available.
func (c *chaos) take(isImport bool, now time.Time) (time.Duration, bool) {
	lim := c.other
	if isImport {
		lim = c.imp
	}
	if lim == nil {
		return 0, true
	}
	res := lim.ReserveN(now, 1)
	if wait := res.DelayFrom(now); wait > 0 {
		// A refused request must not eat into the budget of the next one.
		res.CancelAt(now)
		return wait, false
	}
	return 0, true
}

// writeTooManyRequests answers 429, with the rate-limit headers when the
// faults ask for them. X-RateLimit-Limit is per minute, as CometChat's
// documented limits are.
func (e *Emulator) writeTooManyRequests(w http.ResponseWriter, rt route, f Faults, wait time.Duration) string {
	if f.RetryAfter {
		perSecond := f.OtherPerSecond
		if rt.isImport() {
			perSecond = f.ImportPerSecond
		}
		available := e.now().Add(wait)
		reset := available.Unix()
		if available.Nanosecond() > 0 {
			reset++
		}
		h := w.Header()
		h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		h.Set("X-RateLimit-Limit", strconv.Itoa(max(1, int(math.Round(perSecond*60)))))
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	}
	return writeError(w, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS", "rate limit exceeded; wait and retry")
}

// resetConn closes the connection under the request without answering, so
// the client sees a transport error.
func resetConn(w http.ResponseWriter) string {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return outcomeReset
		}
	}
	// HTTP/2 cannot hijack; aborting the handler resets the stream instead.
	panic(http.ErrAbortHandler)
}

// sleep waits d, or less if the client goes away; it reports whether the
// whole d passed.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
