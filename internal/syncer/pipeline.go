package syncer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

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
	obj      Object
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
	// holdsDelete is set when a row of the batch is to be deleted: the
	// checkpoint may not pass it before the delete is made.
	holdsDelete bool
	done        Report
	changes     state.Changes
	end         *source.Position
	rows        int
}

func (b *batch) empty() bool { return b.rows == 0 }

func newBatch() *batch { return &batch{} }

// result is a batch after delivery.
type result struct {
	b   *batch
	err error
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
	// keys, when set, are the only rows the pass reads (RunKeys).
	keys []source.Value
	// retryFirst reads the error store's rows before keys.
	retryFirst bool

	// A guid belongs to one source row. claims holds the owners the state
	// does not know yet: the guids of rows sent and not yet recorded (the
	// collector drops them once the state has them), or, when keepClaims
	// is set (a dry run, or a bulk load during which the state knows no
	// guid), every guid claimed this pass. A bulk load claims only the
	// guids in dupGUIDs, which findSharedKeys says more than one row may
	// map to: no other guid can be claimed twice. claimMu makes a page's
	// lookup in the state and in claims one step against the collector's
	// writes.
	// updates bounds the update calls in flight across the pass's batches
	// (see updatesPerBatch).
	updates *semaphore.Weighted

	claimMu    sync.Mutex
	claims     map[string]string
	keepClaims bool
	bulk       bool
	dupGUIDs   *sharedKeys

	// The deletes of the pass, made once the upserts are done (see
	// deletes.go): the first ones, and how many there are. holdSeq is the
	// first batch that holds one (noHold when none): the collector moves
	// the checkpoint up to it only; lastEnd is where it would have moved.
	deletes []deleteItem
	deleteN int
	// queued are the keys of rows' old keys and of vanished rows' objects
	// to delete at the end of the pass; a set, so that each goes once.
	queued map[string]bool
	// wasHeld: the brake held the last pass's deletes, so rows whose new
	// key was delivered then still own an old key; every row is looked up.
	wasHeld bool
	holdSeq atomic.Int64
	lastEnd *source.Position

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
				// Once stopping, the batch's requests that have not gone
				// out yet are not sent; those on the wire finish.
				err := p.deliver(cometchat.WithStop(sendCtx, readCtx), b)
				results <- result{b: b, err: err}
			}
		}()
	}
	go func() {
		wg.Wait()
		workers.Wait()
		close(results)
	}()

	c := &collector{p: p, ctx: sendCtx, upper: upper, stop: stopReading, finished: map[int]*batch{}, lastProgress: s.now()}
	if err := c.run(results); err != nil {
		return err
	}
	if c.err != nil {
		return c.err
	}
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}
