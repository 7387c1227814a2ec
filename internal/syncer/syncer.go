// Package syncer runs one pass: it reads the rows that changed since the
// checkpoint (and the rows that failed before), maps them, skips what is
// unchanged, upserts the rest in batches, and moves the checkpoint only over
// batches that are fully accounted for.
package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// Source is the SQL side, as a pass needs it.
type Source interface {
	UpperBound(ctx context.Context) (source.Value, error)
	ReadPage(ctx context.Context, after *source.Position, upper source.Value, limit int) ([]source.Row, error)
	ReadKeys(ctx context.Context, keys []source.Value) ([]source.Row, error)
}

// Mapper turns a row's values into an import object or a *mapping.FieldError.
type Mapper interface {
	Map(values []any) (cometchat.Group, error)
}

// Sink is CometChat, as a pass needs it.
type Sink interface {
	Import(ctx context.Context, groups []cometchat.Group) (map[string]cometchat.RowResult, error)
	Update(ctx context.Context, guid string, u cometchat.Update) error
	// Ping checks the credentials with a harmless read.
	Ping(ctx context.Context) error
}

// Store is the local state, as a pass needs it.
type Store interface {
	Checkpoint(ctx context.Context) (json.RawMessage, error)
	Fingerprint(ctx context.Context) (string, error)
	SetFingerprint(ctx context.Context, fp string) error
	FullPass(ctx context.Context) (string, error)
	StartFullPass(ctx context.Context, mode string) error
	FinishFullPass(ctx context.Context) error
	SyncedUntil(ctx context.Context) (json.RawMessage, error)
	SetSyncedUntil(ctx context.Context, v json.RawMessage) error
	BeginBulkLoad(ctx context.Context) (bool, error)
	EndBulkLoad(ctx context.Context) error
	Known(ctx context.Context, guids []string) (map[string]state.Delivered, error)
	ErrorKeys(ctx context.Context) (map[string]state.ErrorKey, error)
	RetryKeys(ctx context.Context) ([]json.RawMessage, error)
	Apply(ctx context.Context, c state.Changes) error
}

var _ Store = (*state.Store)(nil)
var _ Sink = (*cometchat.Client)(nil)

// Config shapes a pass.
type Config struct {
	PageSize    int
	BatchSize   int
	Concurrency int
	// Start is the first watermark (rows with a cursor at or after it), nil
	// to read from the beginning.
	Start *source.Value
	// Fingerprint identifies the query and mapping; a change is reported.
	Fingerprint string
	// ShutdownTimeout bounds how long in-flight requests may finish once the
	// pass is asked to stop.
	ShutdownTimeout time.Duration
	// Lag and IntegerUnit are the cursor's (source.cursor.lag and
	// integer_unit), to tell how far behind the database clock the sync is.
	Lag         time.Duration
	IntegerUnit string
	// KeyColumn is the result column the guid is mapped from; a first
	// backfill asks the source which guids more than one row maps to (see
	// dupFinder). "" skips the bulk load of the state.
	KeyColumn string
	// MaxInvalidPercent fails a pass in which more than this share of the
	// rows read by the cursor are invalid (at least MinInvalidRows of them):
	// a mapping mistake, not bad data. 0 means 50; 100 never fails.
	MaxInvalidPercent int
}

// MinInvalidRows is the fewest invalid rows read by the cursor that can
// fail a pass as a likely mapping mistake (see Config.MaxInvalidPercent).
const MinInvalidRows = 100

// counter is what a Source offers to count the rows a pass has to go, for
// progress reports.
type counter interface {
	Count(ctx context.Context, after *source.Position, upper source.Value) (int64, error)
}

// dupFinder is what a Source offers to find the keys that more than one of
// its rows (up to upper) maps to, lowercased as the mapping lowercases
// guids. A first backfill needs it: the state cannot tell who owns a guid
// while it bulk loads.
type dupFinder interface {
	DuplicateKeys(ctx context.Context, column string, upper source.Value) (map[string]bool, error)
}

// Syncer runs passes. It is not safe to run two passes at once on one
// Syncer (the daemon never does).
type Syncer struct {
	src    Source
	mapper Mapper
	sink   Sink
	store  Store
	cfg    Config
	log    *zap.Logger
	now    func() time.Time
	// bulkDups hands the duplicate guids found by beginBulkLoad to the pass.
	bulkDups map[string]bool
	// Progress, when set, is called from the pass every time the figures
	// change, at most once per ProgressEvery.
	Progress      func(Report)
	ProgressEvery time.Duration
}

// New builds a Syncer from its parts.
func New(src Source, mapper Mapper, sink Sink, store Store, cfg Config, log *zap.Logger, now func() time.Time) *Syncer {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > cometchat.MaxBatch {
		cfg.BatchSize = cometchat.MaxBatch
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.MaxInvalidPercent <= 0 {
		cfg.MaxInvalidPercent = 50
	}
	if now == nil {
		now = time.Now
	}
	return &Syncer{src: src, mapper: mapper, sink: sink, store: store, cfg: cfg, log: log, now: now, ProgressEvery: 10 * time.Second}
}

// Options are the choices of one pass.
type Options struct {
	// Resync re-reads every row from the start and sends every object
	// whatever the hashes say.
	Resync bool
	// Rescan re-reads every row from the start and sends only the objects
	// whose hash changed: cheap (minutes, not hours), for changes the
	// cursor did not see. A resync in progress carries on instead.
	Rescan bool
	// DryRun, when set, receives the objects that would be sent as JSON
	// lines; nothing is sent and the state is not changed.
	DryRun io.Writer
}

// Report is what a pass did. A pass that failed partway returns the
// report of what it did before the failure alongside the error.
type Report struct {
	Read      int `json:"read"`      // rows read (watermark and retries)
	Retried   int `json:"retried"`   // rows re-read from the error store
	Imported  int `json:"imported"`  // created in CometChat
	Updated   int `json:"updated"`   // existed and were updated
	Unchanged int `json:"unchanged"` // same object as last delivered: not sent
	Invalid   int `json:"invalid"`   // broke CometChat's constraints: not sent
	Rejected  int `json:"rejected"`  // refused by the API for this row
	Duplicate int `json:"duplicate"` // mapped to a guid another row owns: not sent
	// NewInvalid, NewRejected and NewDuplicate count the failed rows that
	// were not in the error store before this pass: each row error is
	// counted once there, its retries are not.
	NewInvalid   int `json:"new_invalid"`
	NewRejected  int `json:"new_rejected"`
	NewDuplicate int `json:"new_duplicate"`
	Parked       int `json:"parked"`  // parked rows that did not change: not sent
	Cleared      int `json:"cleared"` // row errors resolved (delivered, or the row is gone)
	DryRun       int `json:"would_send,omitempty"`

	// ToGo is the number of rows the pass expected to read when it started
	// (counted only when progress is reported); -1 when not counted.
	ToGo int64 `json:"-"`
	// CursorLag is how far the synced data lies behind the database clock:
	// the configured lag after a complete pass, the clock minus the
	// checkpoint's cursor otherwise; -1 when unknown.
	CursorLag time.Duration `json:"cursor_lag_ns"`

	Checkpoint         json.RawMessage `json:"checkpoint"`
	Resync             bool            `json:"resync,omitempty"`
	Rescan             bool            `json:"rescan,omitempty"`
	FingerprintChanged bool            `json:"fingerprint_changed,omitempty"`
	StartedAt          time.Time       `json:"started_at"`
	Duration           time.Duration   `json:"duration_ns"`
}

// Failed is the number of rows that ended the pass in the error store:
// "failed" always means a row in the error store (invalid, rejected or a
// duplicate key), in the summary, the metrics and `status` alike.
func (r Report) Failed() int { return r.Invalid + r.Rejected + r.Duplicate }

// NewFailed is the number of failed rows that entered the error store in
// this pass.
func (r Report) NewFailed() int { return r.NewInvalid + r.NewRejected + r.NewDuplicate }

func (r *Report) add(o Report) {
	r.Read += o.Read
	r.Retried += o.Retried
	r.Imported += o.Imported
	r.Updated += o.Updated
	r.Unchanged += o.Unchanged
	r.Invalid += o.Invalid
	r.Rejected += o.Rejected
	r.Duplicate += o.Duplicate
	r.NewInvalid += o.NewInvalid
	r.NewRejected += o.NewRejected
	r.NewDuplicate += o.NewDuplicate
	r.Parked += o.Parked
	r.Cleared += o.Cleared
	r.DryRun += o.DryRun
}

// Stage names the part of a pass that failed.
type Stage string

// The stages a pass can fail in.
const (
	StageState  Stage = "state"
	StageSource Stage = "source"
	StageAPI    Stage = "cometchat"
	// StageMapping is a pass that completed, every row recorded, in which
	// most rows were invalid: see InvalidRowsError.
	StageMapping Stage = "mapping"
)

// InvalidRowsError is a pass in which most rows read by the cursor were
// invalid, too many for bad data: the query or the mapping is likely wrong
// (a raw enum selected as type, a column in the wrong unit). The rows are
// recorded in the error store and the checkpoint moved past them.
type InvalidRowsError struct {
	Invalid, Read int    // invalid rows and rows read by the cursor
	Field         string // the field most of them failed on
	Example       string // one of their messages, e.g. `type: "O" is not ...`
	MaxPercent    int    // the configured share that was exceeded
}

func (e *InvalidRowsError) Error() string {
	return fmt.Sprintf("%d of the %d rows read by the cursor are invalid (more than %d%%), most of them for %s (e.g. %s): "+
		"this looks like a mapping mistake rather than bad data", e.Invalid, e.Read, e.MaxPercent, e.Field, e.Example)
}

// PassError is a pass that did not complete. Report says what it did before;
// the checkpoint in the state is wherever the last fully accounted-for batch
// put it.
type PassError struct {
	Stage Stage
	Err   error
}

func (e *PassError) Error() string { return fmt.Sprintf("pass failed (%s): %v", e.Stage, e.Err) }

// Unwrap returns the cause.
func (e *PassError) Unwrap() error { return e.Err }

// ErrInterrupted is returned when the pass was asked to stop; what was
// acknowledged before is recorded.
var ErrInterrupted = errors.New("pass interrupted")

// Group commit of batch outcomes: at most commitEvery batches in one
// transaction, written at most commitDelay after the first of them came.
const (
	commitEvery = 8
	commitDelay = 20 * time.Millisecond
)

// MaxUnrecorded is the most batches CometChat can have acknowledged that
// the state has not recorded yet, at any moment of a pass: what a crash
// (SIGKILL, power loss) can make the next pass send again. They are the
// batches in flight (one per worker), those waiting for the collector (the
// results buffer, two per worker) and those waiting for their group commit.
func MaxUnrecorded(concurrency int) int {
	return concurrency + resultsPerWorker*concurrency + commitEvery
}

// resultsPerWorker sizes the buffer between the workers and the collector.
const resultsPerWorker = 2

// item is one row on its way to CometChat.
type item struct {
	key      string
	keyValue source.Value // the tiebreaker as read, to re-read the row
	group    cometchat.Group
	hash     string
	present  uint32
	known    *state.Delivered // what the state believes CometChat has; a hint
}

// batch is a contiguous span of rows in read order: the items to send and
// what was already decided for the others. Its end is the position of its
// last row; nil for rows re-read from the error store.
type batch struct {
	seq   int
	items []item
	// claimed lists the guids whose owners this batch records (see
	// pass.claims).
	claimed []string
	done    Report
	changes state.Changes
	end     *source.Position
	rows    int
}

func (b *batch) empty() bool { return b.rows == 0 }

func newBatch() *batch { return &batch{} }

// result is a batch after delivery.
type result struct {
	b   *batch
	err error
}

// Run executes one pass. Cancelling ctx asks the pass to stop: no new batch
// is taken, in-flight requests get up to ShutdownTimeout to finish, and what
// was acknowledged is recorded. The returned error is a *PassError, or
// ErrInterrupted.
func (s *Syncer) Run(ctx context.Context, opts Options) (rep Report, err error) {
	rep.StartedAt = s.now()
	rep.CursorLag = -1 // unknown until the database clock is read
	defer func() { rep.Duration = s.now().Sub(rep.StartedAt) }()
	fail := func(stage Stage, err error) (Report, error) {
		if ctx.Err() != nil {
			return rep, ErrInterrupted
		}
		return rep, &PassError{Stage: stage, Err: err}
	}
	dry := opts.DryRun != nil

	// Where to start: the checkpoint, unless a full pass starts now. One
	// that started earlier and did not complete goes on from the checkpoint.
	mode, err := s.store.FullPass(ctx)
	if err != nil {
		return fail(StageState, err)
	}
	starting := ""
	switch {
	case opts.Resync:
		starting = state.FullResync
	case opts.Rescan && mode == state.FullResync:
		s.log.Info("a resync is in progress and carries on: it sends every group, which covers the rescan")
	case opts.Rescan:
		starting = state.FullRescan
	}
	if starting != "" {
		mode = starting
	}
	rep.Resync, rep.Rescan = mode == state.FullResync, mode == state.FullRescan
	if err := s.checkFingerprint(ctx, &rep, dry); err != nil {
		return fail(StageState, err)
	}
	var after *source.Position
	if starting == "" {
		cp, err := s.store.Checkpoint(ctx)
		if err != nil {
			return fail(StageState, err)
		}
		rep.Checkpoint = cp
		if cp != nil {
			after = new(source.Position)
			if err := json.Unmarshal(cp, after); err != nil {
				return fail(StageState, fmt.Errorf("checkpoint %s is unreadable: %w (run `cometsync once --resync` to start over)", cp, err))
			}
		}
	}
	if after == nil && s.cfg.Start != nil {
		after = &source.Position{Cursor: *s.cfg.Start}
	}
	upper, err := s.src.UpperBound(ctx)
	if err != nil {
		return fail(StageSource, err)
	}
	// until is the upper bound of the last pass that completed, for the
	// cursor lag of this one if it does not.
	var until *source.Value
	if raw, err := s.store.SyncedUntil(ctx); err != nil {
		return fail(StageState, err)
	} else if raw != nil {
		until = new(source.Value)
		if json.Unmarshal(raw, until) != nil {
			until = nil
		}
	}
	if !dry {
		// A pass with nothing to send would never learn that the key was
		// revoked or the app is gone, and report success forever: ask first.
		if err := s.sink.Ping(ctx); err != nil {
			rep.CursorLag = s.cursorLag(rep, false, upper, until)
			return fail(StageAPI, err)
		}
	}
	// A full pass forgets the checkpoint only once the source and the API
	// answered: one that cannot start leaves the state as it was.
	if starting != "" && !dry {
		if err := s.store.StartFullPass(ctx, starting); err != nil {
			return fail(StageState, err)
		}
	}
	errKeys, err := s.store.ErrorKeys(ctx)
	if err != nil {
		return fail(StageState, err)
	}

	rep.ToGo = -1
	if c, ok := s.src.(counter); ok && s.Progress != nil {
		if n, err := c.Count(ctx, after, upper); err == nil {
			rep.ToGo = n
		} else {
			s.log.Warn("could not count the rows to go; progress will show no ETA", zap.Error(err))
		}
	}

	if !dry {
		// A first backfill (nothing delivered yet) lets the state append
		// and index once at the end; see state.Store.BeginBulkLoad. The
		// index is built even when the pass fails or is interrupted.
		bulk, bulkErr := s.beginBulkLoad(ctx, upper)
		if bulkErr != nil {
			return fail(StageState, bulkErr)
		}
		if bulk {
			defer func() {
				if endErr := s.store.EndBulkLoad(context.WithoutCancel(ctx)); endErr != nil && err == nil {
					rep, err = fail(StageState, endErr)
				}
			}()
		}
	}

	p := &pass{s: s, opts: opts, rep: &rep, errKeys: errKeys, resync: rep.Resync, retried: map[string]bool{}, until: until,
		claims: map[string]string{}, keepClaims: dry, invalidBy: map[string]int{}, invalidExample: map[string]map[string]int{}}
	if s.bulkDups != nil {
		p.dupGUIDs, p.bulk, p.keepClaims = s.bulkDups, true, true
		s.bulkDups = nil
	}
	runErr := p.run(ctx, after, upper)
	rep.CursorLag = s.cursorLag(rep, runErr == nil, upper, until)
	if runErr != nil {
		var pe *PassError
		if errors.As(runErr, &pe) && ctx.Err() == nil {
			return rep, pe
		}
		if ctx.Err() != nil {
			return rep, ErrInterrupted
		}
		return fail(StageState, runErr)
	}
	if !dry {
		raw, err := json.Marshal(upper)
		if err == nil {
			err = s.store.SetSyncedUntil(ctx, raw)
		}
		if err != nil {
			return fail(StageState, err)
		}
	}
	if mode != "" && !dry {
		// Every group now follows the current query and mapping: a resync
		// sent them all, a rescan every one whose object differs.
		if err := s.store.FinishFullPass(ctx); err != nil {
			return fail(StageState, err)
		}
		if err := s.store.SetFingerprint(ctx, s.cfg.Fingerprint); err != nil {
			return fail(StageState, err)
		}
		rep.FingerprintChanged = false
	}
	if ie := p.tooManyInvalid(); ie != nil {
		s.log.Error("most rows of this pass are invalid: check the query and the mapping", zap.Error(ie))
		return rep, &PassError{Stage: StageMapping, Err: ie}
	}
	return rep, nil
}

// beginBulkLoad starts the bulk load of a first backfill (see
// state.Store.BeginBulkLoad) when the source can say which guids more than
// one of its rows maps to: while the state bulk loads it knows no guid, so
// it cannot tell a second row of a guid from the first. Without that
// answer the pass keeps the state's index (slower, as correct).
func (s *Syncer) beginBulkLoad(ctx context.Context, upper source.Value) (bool, error) {
	df, ok := s.src.(dupFinder)
	if !ok || s.cfg.KeyColumn == "" {
		return false, nil
	}
	bulk, err := s.store.BeginBulkLoad(ctx)
	if err != nil || !bulk {
		return false, err
	}
	dups, err := df.DuplicateKeys(ctx, s.cfg.KeyColumn, upper)
	if err != nil {
		s.log.Warn("could not ask the source for duplicate guids; the first backfill keeps the state's index (slower)", zap.Error(err))
		return false, s.store.EndBulkLoad(ctx)
	}
	s.bulkDups = dups
	return true, nil
}

// tooManyInvalid is the InvalidRowsError of a pass whose rows read by the
// cursor were mostly invalid, or nil.
func (p *pass) tooManyInvalid() *InvalidRowsError {
	max := p.s.cfg.MaxInvalidPercent
	if max >= 100 || p.cursorInvalid < MinInvalidRows || p.cursorInvalid*100 <= max*p.cursorRead {
		return nil
	}
	field, _ := mostCommon(p.invalidBy)
	example, _ := mostCommon(p.invalidExample[field])
	return &InvalidRowsError{Invalid: p.cursorInvalid, Read: p.cursorRead, Field: field, Example: example, MaxPercent: max}
}

// cursorLag is how far behind the database clock the synced data is. A
// complete pass has read everything up to the upper bound (clock - lag).
//
// After an incomplete pass everything is delivered up to the later of two
// points: the checkpoint, and the upper bound of the last pass that
// completed (on a quiet table the checkpoint's row may be days old although
// nothing is missing; during a resync the checkpoint starts again from the
// beginning). -1 when neither is known.
func (s *Syncer) cursorLag(rep Report, complete bool, upper source.Value, until *source.Value) time.Duration {
	if complete {
		return s.cfg.Lag
	}
	lag := time.Duration(-1)
	behind := func(v source.Value) {
		if d, ok := source.Behind(v, upper, s.cfg.IntegerUnit); ok {
			d = max(d, 0) + s.cfg.Lag
			if lag < 0 || d < lag {
				lag = d
			}
		}
	}
	var cp source.Position
	if rep.Checkpoint != nil && json.Unmarshal(rep.Checkpoint, &cp) == nil {
		behind(cp.Cursor)
	}
	if until != nil {
		behind(*until)
	}
	return lag
}

// checkFingerprint records the fingerprint on the first pass and reports
// a change afterwards (until a full pass brings every group up to date).
func (s *Syncer) checkFingerprint(ctx context.Context, rep *Report, dry bool) error {
	if s.cfg.Fingerprint == "" {
		return nil
	}
	old, err := s.store.Fingerprint(ctx)
	if err != nil {
		return err
	}
	switch {
	case old == "" && !dry:
		return s.store.SetFingerprint(ctx, s.cfg.Fingerprint)
	case old != "" && old != s.cfg.Fingerprint:
		rep.FingerprintChanged = true
		s.log.Warn("the query or the mapping changed since the last full sync: groups not changed since then still follow the old mapping; run `cometsync once --rescan` to send the groups whose object changed (or --resync to send every group)")
	}
	return nil
}

// pass is the state of one Run.
type pass struct {
	s       *Syncer
	opts    Options
	rep     *Report
	errKeys map[string]state.ErrorKey
	resync  bool
	seq     int
	retried map[string]bool // row keys re-read from the error store this pass
	until   *source.Value   // see Run

	// A guid belongs to one source row. claims holds the owners the state
	// does not know yet: the guids of rows sent and not yet recorded (the
	// collector drops them once the state has them), or, when keepClaims
	// is set (a dry run, or a bulk load during which the state knows no
	// guid), every guid claimed this pass. A bulk load claims only the
	// guids in dupGUIDs, which the source said more than one row maps to:
	// no other guid can be claimed twice. claimMu makes a page's lookup in
	// the state and in claims one step against the collector's writes.
	claimMu    sync.Mutex
	claims     map[string]string
	keepClaims bool
	bulk       bool
	dupGUIDs   map[string]bool

	// Rows read by the cursor (not retries), the invalid ones among them,
	// and the fields they failed on: a mostly invalid pass is a mapping
	// mistake. Only the reader touches these.
	cursorRead, cursorInvalid int
	invalidBy                 map[string]int
	invalidExample            map[string]map[string]int // field -> message -> rows
}

func (p *pass) run(ctx context.Context, after *source.Position, upper source.Value) error {
	s := p.s
	// readCtx stops the reader and the workers from taking new batches,
	// and the requests of taken batches that have not gone out yet;
	// sendCtx, which outlives a cancelled ctx by ShutdownTimeout, lets the
	// requests already in flight finish.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	sendCtx, abortSends := context.WithCancel(context.WithoutCancel(ctx))
	defer abortSends()
	go func() {
		select {
		case <-readCtx.Done():
		case <-sendCtx.Done():
			return
		}
		t := time.NewTimer(s.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			abortSends()
		case <-sendCtx.Done():
		}
	}()

	work := make(chan *batch, s.cfg.Concurrency)
	results := make(chan result, s.cfg.Concurrency*resultsPerWorker)

	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		readErr = p.read(readCtx, after, upper, work, results)
	}()
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for b := range work {
				if readCtx.Err() != nil {
					continue // stopping: take no new batch
				}
				var err error
				if p.opts.DryRun == nil {
					// Once stopping, the batch's requests that have not gone
					// out yet are not sent; those on the wire finish.
					err = p.deliver(cometchat.WithStop(sendCtx, readCtx), b)
				}
				results <- result{b: b, err: err}
			}
		}()
	}
	go func() {
		wg.Wait()
		workers.Wait()
		close(results)
	}()

	// The collector: records each batch's outcome and moves the checkpoint
	// over the contiguous prefix of finished batches. Outcomes that arrive
	// close together are written in one transaction (a commit costs more
	// than a batch's rows), never later than commitDelay after they came.
	finished := map[int]*batch{}
	next := 0
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
			stopReading()
		}
	}
	var pending state.Changes
	var pendingDone Report
	var pendingClaims []string
	pendingN := 0
	lastProgress := s.now()
	flush := func() {
		if pendingN == 0 {
			return
		}
		ch, done, claimed := pending, pendingDone, pendingClaims
		pending, pendingDone, pendingN, pendingClaims = state.Changes{}, Report{}, 0, nil
		// In guid order the upserts walk the index instead of jumping
		// around it: fewer pages touched per transaction.
		slices.SortFunc(ch.Delivered, func(a, b state.Delivered) int { return strings.Compare(a.GUID, b.GUID) })
		if p.opts.DryRun == nil {
			p.claimMu.Lock()
			err := s.store.Apply(sendCtx, ch)
			if err == nil && !p.keepClaims {
				// The state knows these owners now (or the rows failed and
				// own nothing).
				for _, g := range claimed {
					delete(p.claims, g)
				}
			}
			p.claimMu.Unlock()
			if err != nil {
				fail(&PassError{Stage: StageState, Err: err})
				return
			}
		}
		p.rep.add(done)
		if ch.Checkpoint != nil {
			p.rep.Checkpoint = ch.Checkpoint
		}
		if s.Progress != nil && s.now().Sub(lastProgress) >= s.ProgressEvery {
			lastProgress = s.now()
			p.rep.CursorLag = s.cursorLag(*p.rep, false, upper, p.until)
			s.Progress(*p.rep)
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var r result
		var ok bool
		if pendingN == 0 {
			r, ok = <-results
		} else {
			timer.Reset(commitDelay)
			select {
			case r, ok = <-results:
			case <-timer.C:
				flush()
				continue
			}
		}
		if !ok {
			flush()
			break
		}
		if r.err != nil {
			fail(r.err)
			continue
		}
		finished[r.b.seq] = r.b
		var cp *source.Position
		for {
			b, ok := finished[next]
			if !ok {
				break
			}
			delete(finished, next)
			next++
			if b.end != nil {
				cp = b.end
			}
		}
		pending.Delivered = append(pending.Delivered, r.b.changes.Delivered...)
		pending.Failed = append(pending.Failed, r.b.changes.Failed...)
		pending.Cleared = append(pending.Cleared, r.b.changes.Cleared...)
		pendingClaims = append(pendingClaims, r.b.claimed...)
		if cp != nil {
			raw, err := json.Marshal(cp)
			if err != nil {
				return fmt.Errorf("encode checkpoint: %w", err)
			}
			pending.Checkpoint = raw
		}
		pendingDone.add(r.b.done)
		pendingN++
		if pendingN >= commitEvery {
			flush()
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}

// read produces batches in read order: first the rows in the error store,
// re-read by key whatever the watermark, then the keyset pages.
func (p *pass) read(ctx context.Context, after *source.Position, upper source.Value, work chan<- *batch, results chan<- result) error {
	s := p.s
	emit := func(b *batch) error {
		if b.empty() {
			return nil
		}
		b.seq = p.seq
		p.seq++
		// A batch with nothing to send is finished already; it still goes
		// through the collector so the checkpoint moves in order.
		if len(b.items) == 0 || p.opts.DryRun != nil {
			if p.opts.DryRun != nil {
				if err := p.printDry(b); err != nil {
					return err
				}
			}
			select {
			case results <- result{b: b}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case work <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	if err := p.readRetries(ctx, emit); err != nil {
		return err
	}

	cur := newBatch()
	for {
		rows, err := s.src.ReadPage(ctx, after, upper, s.cfg.PageSize)
		if err != nil {
			return &PassError{Stage: StageSource, Err: err}
		}
		if len(rows) == 0 {
			break
		}
		var ready []*batch
		cur, ready, err = p.classifyPage(ctx, rows, cur, false)
		if err != nil {
			return err
		}
		// A span with nothing to send finishes at once and moves the
		// checkpoint, so a long run of unchanged rows is never re-read.
		if len(cur.items) == 0 {
			ready = append(ready, cur)
			cur = newBatch()
		}
		for _, b := range ready {
			if err := emit(b); err != nil {
				return err
			}
		}
		last := rows[len(rows)-1]
		after = &source.Position{Cursor: last.Cursor, Key: last.Key}
		if len(rows) < s.cfg.PageSize {
			break
		}
	}
	return emit(cur)
}

// classifyPage maps a page of rows and decides each one, adding to cur;
// it returns the batch being filled and the batches that are full, in
// order. Rows from the error store (retry) have no position. The lookup
// of the page's guids in the state and their claims are one step against
// the collector (claimMu); the batches are emitted by the caller, outside
// it, as emitting can wait for the collector.
func (p *pass) classifyPage(ctx context.Context, rows []source.Row, cur *batch, retry bool) (*batch, []*batch, error) {
	p.claimMu.Lock()
	defer p.claimMu.Unlock()
	mapped, known, err := p.mapRows(ctx, rows)
	if err != nil {
		return nil, nil, err
	}
	var ready []*batch
	for i := range rows {
		m := &mapped[i]
		switch {
		case retry:
			cur.done.Retried++
			p.retried[m.key] = true
			p.classify(cur, m, known, false)
		case p.retried[m.key]:
			// Already handled this pass from the error store, as read
			// after the upper bound was taken: not sent twice.
			cur.rows++
		default:
			p.cursorRead++
			p.classify(cur, m, known, true)
		}
		if !retry {
			cur.end = &source.Position{Cursor: rows[i].Cursor, Key: rows[i].Key}
		}
		if len(cur.items) >= p.s.cfg.BatchSize {
			ready = append(ready, cur)
			cur = newBatch()
		}
	}
	return cur, ready, nil
}

// readRetries re-reads the rows of the error store that are not parked.
func (p *pass) readRetries(ctx context.Context, emit func(*batch) error) error {
	s := p.s
	raw, err := s.store.RetryKeys(ctx)
	if err != nil {
		return &PassError{Stage: StageState, Err: err}
	}
	if len(raw) == 0 {
		return nil
	}
	keys := make([]source.Value, 0, len(raw))
	wanted := map[string]bool{}
	for _, r := range raw {
		var v source.Value
		if err := json.Unmarshal(r, &v); err != nil {
			return &PassError{Stage: StageState, Err: fmt.Errorf("row error key %s is unreadable: %w", r, err)}
		}
		keys = append(keys, v)
		wanted[v.String()] = true
	}
	for start := 0; start < len(keys); start += s.cfg.PageSize {
		chunk := keys[start:min(start+s.cfg.PageSize, len(keys))]
		rows, err := s.src.ReadKeys(ctx, chunk)
		if err != nil {
			return &PassError{Stage: StageSource, Err: err}
		}
		for i := range rows {
			delete(wanted, rows[i].Key.String())
		}
		cur, ready, err := p.classifyPage(ctx, rows, newBatch(), true)
		if err != nil {
			return err
		}
		for _, b := range append(ready, cur) {
			if err := emit(b); err != nil {
				return err
			}
		}
	}
	// Rows that are no longer in the source cannot fail any more.
	if len(wanted) > 0 {
		gone := newBatch()
		for k := range wanted {
			gone.changes.Cleared = append(gone.changes.Cleared, k)
			gone.done.Cleared++
			gone.rows++
		}
		return emit(gone)
	}
	return nil
}

// mappedRow is one row after mapping.
type mappedRow struct {
	ok       bool
	key      string
	keyValue source.Value // the tiebreaker as read, to re-read the row
	group    cometchat.Group
	err      error
	values   []any
}

// mapRows maps a page and looks up, in one query, what the state knows of
// its guids.
func (p *pass) mapRows(ctx context.Context, rows []source.Row) ([]mappedRow, map[string]state.Delivered, error) {
	out := make([]mappedRow, len(rows))
	guids := make([]string, 0, len(rows))
	for i, r := range rows {
		g, err := p.s.mapper.Map(r.Values)
		out[i] = mappedRow{ok: err == nil, key: r.Key.String(), keyValue: r.Key, group: g, err: err, values: r.Values}
		if err == nil {
			guids = append(guids, g.GUID)
		}
	}
	known, err := p.s.store.Known(ctx, guids)
	if err != nil {
		return nil, nil, &PassError{Stage: StageState, Err: err}
	}
	return out, known, nil
}

// classify decides what happens to one row: invalid, parked, a duplicate
// key, unchanged, or sent. fromCursor tells a row read by the cursor from a
// retry of the error store.
func (p *pass) classify(b *batch, m *mappedRow, known map[string]state.Delivered, fromCursor bool) {
	b.rows++
	b.done.Read++
	ek, hadErr := p.errKeys[m.key]
	if !m.ok {
		rowHash := hashValues(m.values)
		if hadErr && ek.Parked && ek.RowHash == rowHash {
			b.done.Parked++
			return
		}
		guid := m.group.GUID // set when the guid itself was valid
		b.done.Invalid++
		if !hadErr {
			b.done.NewInvalid++
		}
		if fromCursor {
			p.noteInvalid(m.err)
		}
		b.changes.Failed = append(b.changes.Failed, state.Failure{
			RowKey: m.key, KeyJSON: keyJSON(m.keyValue), GUID: guid, Code: CodeInvalidRow, Message: m.err.Error(), RowHash: rowHash,
		})
		if p.opts.DryRun != nil {
			p.s.log.Warn("invalid row", zap.String("key", m.key), zap.String("guid", guid), zap.String("error", m.err.Error()))
		}
		return
	}
	h := mapping.Hash(m.group)
	if hadErr && ek.Parked && ek.RowHash == h {
		b.done.Parked++
		return
	}
	guid := m.group.GUID
	d, isKnown := known[guid]
	if owner := p.owner(guid, d); owner != "" && owner != m.key {
		p.duplicate(b, m, h, owner, hadErr)
		return
	}
	var kn *state.Delivered
	if isKnown {
		kn = &d
		if !p.resync && d.Hash == h {
			b.done.Unchanged++
			if hadErr {
				b.changes.Cleared = append(b.changes.Cleared, m.key)
				b.done.Cleared++
			}
			if d.RowKey == "" {
				// Delivered before owners were recorded: this row owns it.
				p.claim(b, guid, m.key)
				b.changes.Delivered = append(b.changes.Delivered, state.Delivered{GUID: guid, Hash: d.Hash, Present: d.Present, RowKey: m.key})
			}
			return
		}
	}
	p.claim(b, guid, m.key)
	b.items = append(b.items, item{key: m.key, keyValue: m.keyValue, group: m.group, hash: h, present: mapping.Present(m.group), known: kn})
}

// owner is the row that owns guid: one claimed in this pass, else the one
// the state recorded (d, when the state knows the guid); "" for none.
func (p *pass) owner(guid string, d state.Delivered) string {
	if k, ok := p.claims[guid]; ok {
		return k
	}
	return d.RowKey
}

// claim records that the row with key owns guid from now on in this pass.
// During a bulk load only the guids the source has more than once need it.
func (p *pass) claim(b *batch, guid, key string) {
	if p.bulk && !p.dupGUIDs[guid] {
		return
	}
	p.claims[guid] = key
	b.claimed = append(b.claimed, guid)
}

// duplicate records a row that maps to a guid another row owns: it is never
// sent, as that would merge two rows into one CometChat object.
func (p *pass) duplicate(b *batch, m *mappedRow, hash, owner string, hadErr bool) {
	b.done.Duplicate++
	if !hadErr {
		b.done.NewDuplicate++
	}
	b.changes.Failed = append(b.changes.Failed, state.Failure{
		RowKey: m.key, KeyJSON: keyJSON(m.keyValue), GUID: m.group.GUID, Code: CodeDuplicateKey, RowHash: hash,
		Message: fmt.Sprintf("guid %q is already the key of row %s, and this row %s maps to it too: never sent, as CometChat "+
			"would merge the two rows into one object; select a guid that is unique per row, e.g. CONCAT(team_id, '-', name) AS guid",
			m.group.GUID, owner, m.key),
	})
}

// noteInvalid counts an invalid row read by the cursor by the field it
// failed on, keeping one message of each field as an example.
func (p *pass) noteInvalid(err error) {
	p.cursorInvalid++
	field := "the row"
	var fe *mapping.FieldError
	if errors.As(err, &fe) {
		field = fe.Field
	}
	p.invalidBy[field]++
	msgs := p.invalidExample[field]
	if msgs == nil {
		msgs = map[string]int{}
		p.invalidExample[field] = msgs
	}
	// The messages name the value: keep count of a few, to show the most
	// common one (a raw enum has a handful of values).
	if _, ok := msgs[err.Error()]; ok || len(msgs) < maxExamples {
		msgs[err.Error()]++
	}
}

// maxExamples bounds the distinct messages kept per field by noteInvalid.
const maxExamples = 32

// mostCommon returns the key of counts with the highest count (the least
// key among equals), and the count.
func mostCommon(counts map[string]int) (string, int) {
	best, n := "", 0
	for k, c := range counts {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best, n
}

// CodeDuplicateKey is the error code of rows that map to a guid another row
// owns; they are never sent.
const CodeDuplicateKey = "DUPLICATE_KEY"

// CodeInvalidRow is the error code of rows that break CometChat's
// documented constraints and were never sent.
const CodeInvalidRow = "INVALID_ROW"

func (p *pass) printDry(b *batch) error {
	enc := json.NewEncoder(p.opts.DryRun)
	for _, it := range b.items {
		if err := enc.Encode(it.group); err != nil {
			return fmt.Errorf("dry run: %w", err)
		}
		b.done.DryRun++
	}
	return nil
}

// deliver upserts one batch: import what the state does not know (or
// everything on a resync), update what already exists, import what an
// update did not find. Per-row outcomes land in b.changes; an error means
// the batch as a whole could not be delivered.
func (p *pass) deliver(ctx context.Context, b *batch) error {
	var toImport, toUpdate []*item
	for i := range b.items {
		it := &b.items[i]
		// The state is a hint: an update of a group CometChat does not
		// have is answered "not found" and imported. A resync too starts
		// with the update: one call per group it knows, not two.
		if it.known != nil {
			toUpdate = append(toUpdate, it)
		} else {
			toImport = append(toImport, it)
		}
	}
	exists, err := p.importItems(ctx, b, toImport)
	if err != nil {
		return err
	}
	toUpdate = append(toUpdate, exists...)
	missing, err := p.updateItems(ctx, b, toUpdate)
	if err != nil {
		return err
	}
	// Updated guids CometChat did not have: import them, once. A second
	// "already exists" means something else is changing the group.
	again, err := p.importItems(ctx, b, missing)
	if err != nil {
		return err
	}
	for _, it := range again {
		p.reject(b, it, cometchat.CodeGUIDAlreadyExists, "the group was reported missing on update and existing on import; is something else changing it? retried next pass")
	}
	return nil
}

// importItems imports items and returns those CometChat already has. A
// request refused as a whole for a reason that is not transient is split
// in halves until the row at fault is alone, so one bad row never holds back
// the others.
func (p *pass) importItems(ctx context.Context, b *batch, items []*item) (exists []*item, err error) {
	if len(items) == 0 {
		return nil, nil
	}
	groups := make([]cometchat.Group, len(items))
	for i, it := range items {
		groups[i] = it.group
	}
	res, err := p.s.sink.Import(ctx, groups)
	if err != nil {
		var ae *cometchat.APIError
		if !errors.As(err, &ae) || ae.Retryable() || ae.Auth() {
			return nil, &PassError{Stage: StageAPI, Err: err}
		}
		if len(items) == 1 {
			p.reject(b, items[0], ae.Code, ae.Error())
			return nil, nil
		}
		half := len(items) / 2
		e1, err := p.importItems(ctx, b, items[:half])
		if err != nil {
			return nil, err
		}
		e2, err := p.importItems(ctx, b, items[half:])
		return append(e1, e2...), err
	}
	for _, it := range items {
		r := res[it.group.GUID]
		switch {
		case r.OK:
			p.delivered(b, it)
			b.done.Imported++
		case r.Code == cometchat.CodeGUIDAlreadyExists:
			exists = append(exists, it)
		default:
			p.reject(b, it, r.Code, r.Message)
		}
	}
	return exists, nil
}

// updateItems updates items in CometChat, a few at a time, and returns
// those CometChat does not have.
func (p *pass) updateItems(ctx context.Context, b *batch, items []*item) (missing []*item, err error) {
	if len(items) == 0 {
		return nil, nil
	}
	outcome := make([]error, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, it := range items {
		g.Go(func() error {
			err := p.s.sink.Update(gctx, it.group.GUID, updateFor(it))
			var ae *cometchat.APIError
			if err != nil && (!errors.As(err, &ae) || ae.Retryable() || ae.Auth()) {
				return err // the batch cannot be accounted for
			}
			outcome[i] = err
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, &PassError{Stage: StageAPI, Err: err}
	}
	for i, it := range items {
		var ae *cometchat.APIError
		switch {
		case outcome[i] == nil:
			p.delivered(b, it)
			b.done.Updated++
		case errors.As(outcome[i], &ae) && ae.Code == cometchat.CodeGUIDNotFound:
			missing = append(missing, it)
		default:
			errors.As(outcome[i], &ae)
			p.reject(b, it, ae.Code, ae.Error())
		}
	}
	return missing, nil
}

// updateFor builds the PUT body that makes the group equal to the row:
// optional fields that are NULL now are cleared where the API allows it.
func updateFor(it *item) cometchat.Update {
	g := it.group
	u := cometchat.Update{Name: g.Name, Type: g.Type, Password: g.Password, Icon: g.Icon, Owner: g.Owner, Metadata: g.Metadata}
	// Without a record of what was delivered, clear every absent field: the
	// row is the truth.
	had := func(bit uint32) bool { return it.known == nil || it.known.Present&bit != 0 }
	if len(g.Tags) > 0 {
		tags := g.Tags
		u.Tags = &tags
	} else if had(mapping.FieldTags) {
		u.Tags = &[]string{}
	}
	if g.Icon == "" && had(mapping.FieldIcon) {
		u.Unset = append(u.Unset, "icon")
	}
	if len(g.Metadata) == 0 && had(mapping.FieldMetadata) {
		u.Unset = append(u.Unset, "metadata")
	}
	return u
}

func (p *pass) delivered(b *batch, it *item) {
	b.changes.Delivered = append(b.changes.Delivered, state.Delivered{GUID: it.group.GUID, Hash: it.hash, Present: it.present, RowKey: it.key})
	if _, had := p.errKeys[it.key]; had {
		b.changes.Cleared = append(b.changes.Cleared, it.key)
		b.done.Cleared++
	}
}

func (p *pass) reject(b *batch, it *item, code, msg string) {
	if code == "" {
		code = "ERR_UNKNOWN"
	}
	b.done.Rejected++
	if _, had := p.errKeys[it.key]; !had {
		b.done.NewRejected++
	}
	b.changes.Failed = append(b.changes.Failed, state.Failure{
		RowKey: it.key, KeyJSON: keyJSON(it.keyValue), GUID: it.group.GUID, Code: code, Message: msg, RowHash: it.hash,
	})
}

// hashValues identifies the content of a row that could not be mapped, so
// that a parked invalid row is retried only when it changes.
func hashValues(values []any) string {
	h := sha256.New()
	for _, v := range values {
		switch x := v.(type) {
		case nil:
			h.Write([]byte{0})
		case []byte:
			fmt.Fprintf(h, "b%d:", len(x))
			h.Write(x)
		case string:
			fmt.Fprintf(h, "s%d:%s", len(x), x)
		case time.Time:
			fmt.Fprintf(h, "t%s", x.Format(time.RFC3339Nano))
		default:
			fmt.Fprintf(h, "v%T:%v", x, x)
		}
		h.Write([]byte{1})
	}
	return string(h.Sum(nil)[:16])
}

// keyJSON encodes a row's key for the error store; only failed rows need
// it, so it is not computed for every row read.
func keyJSON(v source.Value) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Value always encodes; keep the row rather than lose it.
		b, _ = json.Marshal(map[string]string{"kind": "text", "value": v.String()})
	}
	return b
}
