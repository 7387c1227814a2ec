// Package cometchattest is the CometChat test double: an in-process stand-in
// for CometChat's REST API v3, with the documented constraints and the
// faults a real deployment shows (rate limits, 5xx answers, partial imports,
// dropped connections, hangs, outages). It serves
//
//   - groups: POST /data_import/groups, GET /groups, GET, PUT and DELETE
//     /groups/{guid} (a delete drops the group's members);
//   - users: POST /data_import/users, GET /users, PUT /users (reactivate),
//     DELETE /users (deactivate), GET, PUT and DELETE /users/{uid} (a
//     delete deactivates; permanent removes the user and its memberships);
//   - members: POST /data_import/members, GET and POST
//     /groups/{guid}/members, PUT (scope) and DELETE (kick)
//     /groups/{guid}/members/{uid}.
//
// A deactivated user is answered ERR_UID_NOT_FOUND wherever it is named
// (update, membership); roles, bans and groupDetails/userDetails of a member
// import are not modelled. A group's owner counts in its membersCount but is
// no membership record.
//
// An Emulator is an http.Handler; wrap it in httptest.NewServer and give the
// server URL to the client as its base URL, with or without a trailing /v3.
package cometchattest

import (
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

const (
	// defaultMaxBatch is CometChat's documented limit of entities in one
	// data-import request.
	defaultMaxBatch = 50
	// maxBodyBytes bounds what one request may send; 50 groups at their
	// largest are well under 1 MB.
	maxBodyBytes = 8 << 20
)

// Config configures an Emulator.
type Config struct {
	APIKey   string // the only key accepted in the `apikey` header
	MaxBatch int    // entities per import request; 0 means 50
	// ImportPerMinute and OtherPerMinute are the app's plan limits, enforced
	// always (0 = none), like CometChat's: every data-import request counts
	// against ImportPerMinute, every other request against OtherPerMinute.
	// Each is a token bucket of N/60 a second holding one second's share;
	// over it the answer is HTTP 429 ERR_TOO_MANY_REQUESTS with Retry-After
	// and X-RateLimit-Limit/-Remaining/-Reset. Faults' own limits apply as
	// well.
	ImportPerMinute float64
	OtherPerMinute  float64
}

// Stats counts what the emulator was asked and how it answered.
type Stats struct {
	ImportRequests       int // POST /data_import/groups requests that reached the handler, whatever their answer
	UserImportRequests   int // POST /data_import/users requests, likewise
	MemberImportRequests int // POST /data_import/members requests, likewise
	ImportedRows         int // groups newly created by imports
	ImportedUsers        int // users newly created by imports
	ImportedMembers      int // memberships newly created by imports
	Updates              int // successful PUT /groups/{guid}
	Deletes              int // successful DELETE /groups/{guid}
	UserUpdates          int // successful PUT /users/{uid}
	Deactivations        int // users deactivated by DELETE /users/{uid} or DELETE /users
	PermanentDeletes     int // users removed by DELETE /users/{uid} with permanent
	Reactivations        int // users reactivated by PUT /users
	MembersAdded         int // memberships created by POST /groups/{guid}/members
	ScopeChanges         int // successful PUT /groups/{guid}/members/{uid}
	Kicks                int // successful DELETE /groups/{guid}/members/{uid}
	// Requests counts answers by "METHOD endpoint OUTCOME". The endpoint is
	// import, group (/groups/{guid}), groups (GET /groups) or unknown. The
	// endpoint is import, import_users, import_members, user (/users/{uid}),
	// users (/users), members (/groups/{guid}/members), member
	// (/groups/{guid}/members/{uid}) as well. The
	// outcome is the HTTP status ("POST import 200", "PUT group 404") or, for
	// requests that got no answer: reset (connection closed by the ResetRate
	// fault), hang (HangRate fault, ended when the client went away),
	// canceled (the client went away during Latency) or aborted.
	Requests        map[string]int
	TooManyRequests int // every 429 answered
	MaxInFlight     int // highest number of concurrent requests seen
}

// Emulator is an in-memory CometChat app serving the group endpoints of the
// REST API v3. It is safe for concurrent use.
type Emulator struct {
	apiKey   string
	maxBatch int
	now      func() time.Time
	plan     *chaos // the Config's rate limits; never replaced

	mu     sync.Mutex
	groups map[string]*record // by lowercased guid
	users  map[string]*userRecord
	// members holds each group's memberships: guid → uid → membership.
	members map[string]map[string]memberRec
	// first and firstStale: see noteStored.
	first      []string
	firstStale bool
	stats      Stats
	inFlight   int
	faults     Faults
	chaos      *chaos

	// referenceOnly turns the import fast path off, for the tests that
	// hold it to the reference path's answers.
	referenceOnly bool
}

// record is one stored group plus what cometchat.Group cannot hold.
type record struct {
	group       cometchat.Group
	description string
	// created is the server's creation time, answered as createdAt when the
	// import did not send one (CometChat stamps groups itself).
	created int64
	updated int64
}

// New returns an empty app that accepts cfg.APIKey and has no faults.
func New(cfg Config) *Emulator {
	e := &Emulator{
		apiKey:   cfg.APIKey,
		maxBatch: cfg.MaxBatch,
		now:      time.Now,
		plan:     newChaos(Faults{ImportPerSecond: cfg.ImportPerMinute / 60, OtherPerSecond: cfg.OtherPerMinute / 60, RetryAfter: true, Seed: 1}),
		groups:   make(map[string]*record),
		users:    make(map[string]*userRecord),
		members:  make(map[string]map[string]memberRec),
	}
	if e.maxBatch <= 0 {
		e.maxBatch = defaultMaxBatch
	}
	e.stats.Requests = make(map[string]int)
	e.chaos = newChaos(Faults{})
	return e
}

// ServeHTTP answers one REST API request, faults included.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := routeOf(r)
	e.enter(rt)
	// If serve panics (http.ErrAbortHandler), the request is still counted.
	outcome := outcomeAborted
	defer func() { e.leave(r.Method, rt.endpoint, outcome) }()
	outcome = e.serve(w, r, rt)
}

// serve applies the faults in their documented order, then the endpoint.
// It returns the outcome recorded in Stats.Requests.
func (e *Emulator) serve(w http.ResponseWriter, r *http.Request, rt route) string {
	// Read the whole body first: net/http notices a client that went away
	// (and cancels r.Context()) only once the body has been consumed, and
	// Latency and HangRate rely on that.
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	f, c := e.currentFaults()

	if f.Latency > 0 && !sleep(r, f.Latency) {
		return outcomeCanceled
	}
	if f.Outage || (f.WriteOutage && r.Method != http.MethodGet) {
		return writeError(w, http.StatusServiceUnavailable, codeException, "the service is unavailable (emulated outage); retry later")
	}
	if status, ok := e.authorize(w, r); !ok {
		return status
	}
	if wait, ok := e.plan.take(rt.isImport(), e.now()); !ok {
		return e.writeTooManyRequests(w, rt, e.plan.limits, wait)
	}
	if wait, ok := c.take(rt.isImport(), e.now()); !ok {
		return e.writeTooManyRequests(w, rt, f, wait)
	}
	if c.roll(f.HangRate) {
		<-r.Context().Done()
		return outcomeHang
	}
	if c.roll(f.ResetRate) {
		return resetConn(w)
	}
	if c.roll(f.ErrorRate) {
		return writeError(w, http.StatusInternalServerError, codeException, "internal error (emulated); nothing was changed, retry the request")
	}
	if readErr != nil {
		return writeError(w, http.StatusBadRequest, codeBadRequest, "request body could not be read: "+readErr.Error())
	}

	return e.dispatch(w, r, rt, body, rt.isImport() && c.roll(f.PartialImportRate), f.RejectRow)
}

// dispatch serves the endpoint rt names; partial and reject are the
// import faults.
func (e *Emulator) dispatch(w http.ResponseWriter, r *http.Request, rt route, body []byte, partial bool, reject func(string) (string, string, bool)) string {
	switch rt.endpoint {
	case endpointImport:
		return e.handleImport(w, body, partial, reject)
	case endpointImportUsers:
		return e.handleImportUsers(w, body, partial, reject)
	case endpointImportMembers:
		return e.handleImportMembers(w, body, partial, reject)
	case endpointGroup:
		switch r.Method {
		case http.MethodPut:
			return e.handleUpdate(w, rt.guid, body)
		case http.MethodDelete:
			return e.handleDelete(w, rt.guid)
		default:
			return e.handleGet(w, rt.guid)
		}
	case endpointGroups:
		return e.handleList(w, r)
	case endpointUser:
		switch r.Method {
		case http.MethodPut:
			return e.handleUserUpdate(w, rt.uid, body)
		case http.MethodDelete:
			return e.handleUserDelete(w, rt.uid, body)
		default:
			return e.handleUserGet(w, rt.uid)
		}
	case endpointUsers:
		switch r.Method {
		case http.MethodPut:
			return e.handleReactivate(w, body)
		case http.MethodDelete:
			return e.handleDeactivateMany(w, body)
		default:
			return e.handleUserList(w, r)
		}
	case endpointMembers:
		if r.Method == http.MethodPost {
			return e.handleAddMembers(w, rt.guid, body)
		}
		return e.handleMemberList(w, r, rt.guid)
	case endpointMember:
		if r.Method == http.MethodPut {
			return e.handleScope(w, rt.guid, rt.uid, body)
		}
		return e.handleKick(w, rt.guid, rt.uid)
	}
	return writeError(w, http.StatusNotFound, codeAPINotFound, "no such API: "+r.Method+" "+r.URL.Path)
}

// authorize checks the apikey header. It answers the request itself when the
// key is missing or wrong.
func (e *Emulator) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.Header.Get("apikey")
	switch {
	case key == "":
		return writeError(w, http.StatusUnauthorized, "AUTH_ERR_EMPTY_APIKEY", "the apikey header is missing; send a REST API key with fullAccess scope"), false
	case key != e.apiKey:
		return writeError(w, http.StatusUnauthorized, "AUTH_ERR_APIKEY_NOT_FOUND", "the apikey header does not name a key of this app; check the REST API key"), false
	}
	return "", true
}

func (e *Emulator) enter(rt route) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inFlight++
	e.stats.MaxInFlight = max(e.stats.MaxInFlight, e.inFlight)
	switch rt.endpoint {
	case endpointImport:
		e.stats.ImportRequests++
	case endpointImportUsers:
		e.stats.UserImportRequests++
	case endpointImportMembers:
		e.stats.MemberImportRequests++
	}
}

func (e *Emulator) leave(method, endpoint, outcome string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inFlight--
	e.stats.Requests[method+" "+endpoint+" "+outcome]++
	if outcome == "429" {
		e.stats.TooManyRequests++
	}
}

// Group returns the group stored under guid (matched case-insensitively, as
// CometChat lowercases guids) and whether it exists.
func (e *Emulator) Group(guid string) (cometchat.Group, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.groups[strings.ToLower(guid)]
	if !ok {
		return cometchat.Group{}, false
	}
	return cloneGroup(rec.group), true
}

// Groups returns a copy of every stored group, keyed by lowercased guid.
func (e *Emulator) Groups() map[string]cometchat.Group {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]cometchat.Group, len(e.groups))
	for guid, rec := range e.groups {
		out[guid] = cloneGroup(rec.group)
	}
	return out
}

// Description returns the description a PUT gave the group, or "" (the
// import endpoint takes no description).
func (e *Emulator) Description(guid string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rec, ok := e.groups[strings.ToLower(guid)]; ok {
		return rec.description
	}
	return ""
}

// Put stores g directly, replacing any group with the same guid, without
// validation. The guid is lowercased; nothing is counted in Stats.
func (e *Emulator) Put(g cometchat.Group) {
	g = cloneGroup(g)
	g.GUID = strings.ToLower(g.GUID)
	now := e.now().Unix()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[g.GUID]; !ok {
		e.noteStored(g.GUID)
	}
	e.groups[g.GUID] = &record{group: g, created: now, updated: now}
}

// Reset empties the app: every group, user and membership is gone. Stats
// and faults are kept.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.groups = make(map[string]*record)
	e.users = make(map[string]*userRecord)
	e.members = make(map[string]map[string]memberRec)
	e.first, e.firstStale = nil, false
}

// Stats returns a copy of the counters.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Requests = make(map[string]int, len(e.stats.Requests))
	for k, v := range e.stats.Requests {
		s.Requests[k] = v
	}
	return s
}

// ResetStats sets every counter back to zero. MaxInFlight restarts from the
// requests in flight now.
func (e *Emulator) ResetStats() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = Stats{Requests: make(map[string]int), MaxInFlight: e.inFlight}
}

// SetFaults replaces the faults for the requests that arrive from now on. It
// reseeds the randomness from f.Seed and starts the rate limits' token
// buckets full. It is safe to call while requests are being served.
func (e *Emulator) SetFaults(f Faults) {
	c := newChaos(f)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = f
	e.chaos = c
}

// currentFaults returns the faults and their state for one request, so a
// concurrent SetFaults never changes a request halfway.
func (e *Emulator) currentFaults() (Faults, *chaos) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults, e.chaos
}

// sortedGUIDs returns the stored guids in order; the caller holds e.mu.
func (e *Emulator) sortedGUIDs() []string {
	guids := make([]string, 0, len(e.groups))
	for guid := range e.groups {
		guids = append(guids, guid)
	}
	sort.Strings(guids)
	return guids
}

// firstCap is how many of the smallest guids the emulator keeps at hand.
const firstCap = 16

// noteStored keeps e.first, the firstCap smallest guids in order, as a
// group is stored: a list of the first page (the key check each pass starts
// with asks for one group) must not sort or scan a million guids. Called
// with e.mu held, for a guid that was not stored before.
func (e *Emulator) noteStored(guid string) {
	if len(e.first) == firstCap && guid >= e.first[firstCap-1] {
		return
	}
	i := sort.SearchStrings(e.first, guid)
	e.first = slices.Insert(e.first, i, guid)
	if len(e.first) > firstCap {
		e.first = e.first[:firstCap]
	}
}

// noteDeleted invalidates e.first when a guid in it goes; the next list
// builds it again. Called with e.mu held.
func (e *Emulator) noteDeleted(guid string) {
	if slices.Contains(e.first, guid) {
		e.firstStale = true
	}
}

// firstGUIDs returns the n smallest guids in order. Called with e.mu held.
func (e *Emulator) firstGUIDs(n int) []string {
	if n > firstCap {
		guids := e.sortedGUIDs()
		return guids[:min(n, len(guids))]
	}
	if e.firstStale {
		guids := e.sortedGUIDs()
		e.first, e.firstStale = slices.Clone(guids[:min(firstCap, len(guids))]), false
	}
	return e.first[:min(n, len(e.first))]
}
