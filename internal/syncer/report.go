package syncer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cometsync/cometsync/internal/source"
)

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
	// Deleted counts the objects deleted from CometChat (a user is
	// deactivated unless users.delete is permanent); DeletesHeld the
	// deletes the brake held back, HeldKeys the first of their keys.
	Deleted     int      `json:"deleted"`
	DeleteFails int      `json:"delete_failed"`
	DeletesHeld int      `json:"deletes_held"`
	HeldKeys    []string `json:"held_keys,omitempty"`
	// Beyond counts the rows whose cursor is after the pass's upper bound
	// (read only by later passes); MostlyBeyond is set when they are most
	// of the table, which no later pass fixes.
	Beyond       int64 `json:"beyond_upper_bound"`
	MostlyBeyond bool  `json:"mostly_beyond_upper_bound,omitempty"`
	// NewInvalid, NewRejected and NewDuplicate count the failed rows that
	// were not in the error store before this pass: each row error is
	// counted once there, its retries are not.
	NewInvalid   int `json:"new_invalid"`
	NewRejected  int `json:"new_rejected"`
	NewDuplicate int `json:"new_duplicate"`
	Parked       int `json:"parked"`  // parked rows that did not change: not sent
	Cleared      int `json:"cleared"` // row errors resolved (delivered, or the row is gone)

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

// Add adds the row and delete counts of o to r.
func (r *Report) Add(o Report) { r.add(o) }

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
	r.Deleted += o.Deleted
	r.DeleteFails += o.DeleteFails
	r.DeletesHeld += o.DeletesHeld
	r.Cleared += o.Cleared
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
	// StageCursor is a pass that read nothing while most rows lie beyond
	// its upper bound: see BeyondBoundError.
	StageCursor Stage = "cursor"
	// StageDeletes is a pass that synced everything but held back its
	// deletes: see DeletesHeldError.
	StageDeletes Stage = "deletes"
)

// DeletesHeldError is a pass whose deletes for a stream the brake held
// back: more than the limits allow at once, which a wrong query or a
// half-restored database produces far more often than real churn.
type DeletesHeldError struct {
	N         int // deletes the pass would have made
	Delivered int // objects the state holds for the stream
	Limits    DeleteLimits
	First     []string // the first keys
}

func (e *DeletesHeldError) Error() string {
	pct := 0.0
	if e.Delivered > 0 {
		pct = float64(e.N) * 100 / float64(e.Delivered)
	}
	return fmt.Sprintf("held back %d deletes (%.1f%% of the %d objects delivered; the limits are deletes.max_per_pass %d and "+
		"deletes.max_percent %d%%): nothing was deleted, everything else was synced; first keys: %s. "+
		"If these deletes are meant, run once with --allow-mass-delete",
		e.N, pct, e.Delivered, e.Limits.MaxPerPass, e.Limits.MaxPercent, strings.Join(e.First, ", "))
}

// BeyondBoundError says that all or most rows have a cursor after the
// pass's upper bound (database clock - lag), so no pass ever reads them.
type BeyondBoundError struct {
	Range source.CursorRange
	Unit  string // the integer cursor's unit in use ("" for date-times)
}

func (e *BeyondBoundError) Error() string {
	r := e.Range
	cause := "the cursor column holds future times: a DATETIME in another time zone than the database clock " +
		"(set time_zone in source.dsn), or rows stamped ahead"
	if r.Upper.Kind == source.KindInt {
		cause = fmt.Sprintf("an integer cursor in another unit than %s: set source.cursor.integer_unit (seconds, milliseconds or microseconds), "+
			"or leave it out to detect the unit from the data", e.Unit)
	}
	return fmt.Sprintf("%d rows have a cursor after this pass's upper bound %s (database clock - lag), more than the rows up to it, "+
		"and are never read (largest cursor %s); likely cause: %s", r.Beyond, r.Upper.Readable(e.Unit), r.Max.Readable(e.Unit), cause)
}

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

// CodeDuplicateKey is the error code of rows that map to a guid another row
// owns; they are never sent.
const CodeDuplicateKey = "DUPLICATE_KEY"

// CodeInvalidRow is the error code of rows that break CometChat's
// documented constraints and were never sent.
const CodeInvalidRow = "INVALID_ROW"
