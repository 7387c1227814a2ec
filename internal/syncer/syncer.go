// Package syncer is the sync engine. It runs one pass of one stream: it
// reads the rows that changed since the checkpoint (and the rows that
// failed before), maps them, skips what is unchanged, upserts the rest in
// batches, and moves the checkpoint only over batches that are fully
// accounted for. It knows nothing of groups, users or members: each is an
// Entity (package entities) that supplies its mapping, its key and its
// delivery.
//
// The files follow a pass: graph.go (the streams of a pass, in order),
// run.go (the orchestration of one stream's pass), read.go (reading pages,
// mapping, the diff and batching), pipeline.go (the reader, the workers and
// their channels), deliver.go (the upsert of a batch), collect.go (the
// collector that records outcomes and moves the checkpoint), report.go
// (what a pass did), dryrun.go (an entity, sink and store that print and
// record nothing).
package syncer

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// Source is the SQL side, as a pass needs it.
type Source interface {
	UpperBound(ctx context.Context) (source.Value, error)
	ReadPage(ctx context.Context, after *source.Position, upper source.Value, limit int) ([]source.Row, error)
	ReadKeys(ctx context.Context, keys []source.Value) ([]source.Row, error)
}

// Object is a row mapped to the import object of its entity.
type Object struct {
	// Key is the object's id in CometChat (a guid, a uid, a member id),
	// lowercased as CometChat lowercases ids: what the state is keyed by.
	Key string
	// Hash identifies the object's content: an unchanged hash is not sent.
	Hash string
	// Present says which optional fields the object has, so that an update
	// can clear those that the last delivered object had.
	Present uint32
	// Value is the import object itself (a cometchat.Group, User or
	// Member), as the entity sends it and a dry run prints it.
	Value any
	// Deleted marks a row the source says is deleted (its `deleted`
	// column): only Key is set, and what CometChat has of it is deleted.
	Deleted bool
}

// Entity is what one stream syncs, plugged into the engine: its mapping,
// its key and its delivery policy. The engine decides what to send (the
// diff against the state) and in which order (update what the state
// knows, import the rest, import what an update did not find, update what
// an import found existing); the entity says how.
type Entity interface {
	// Map turns a row's values into an Object, or returns a
	// *mapping.FieldError; on error the Object's Key is set when the key
	// itself was valid.
	Map(values []any) (Object, error)
	// KeyColumns are the result columns the key is made of, and JoinKey
	// makes the key of their trimmed, lowercased values: a first backfill
	// asks the source which keys more than one row has.
	KeyColumns() []string
	JoinKey(parts []string) string
	// Import creates the objects (at most cometchat.MaxBatch) and returns
	// each one's result by key; an error is the whole request's.
	Import(ctx context.Context, objs []Object) (map[string]cometchat.RowResult, error)
	// Update makes the existing object equal to obj; known is what the
	// state last delivered, nil when it knows nothing. A
	// *cometchat.APIError that is NotFound means CometChat has no such
	// object.
	Update(ctx context.Context, obj Object, known *state.Delivered) error
	// Delete deletes the object with this key from CometChat; an answer
	// that it does not exist is success. kept reports that CometChat keeps
	// it, deactivated (users by default): the state remembers it as such,
	// so that it is reactivated if its row comes back.
	Delete(ctx context.Context, key string) (kept bool, err error)
}

// Sink is CometChat, as every pass needs it.
type Sink interface {
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
	// OwnedBy is what the state delivered for these source rows, by row
	// key (objects kept deactivated left out).
	OwnedBy(ctx context.Context, rowKeys []string) (map[string][]state.Delivered, error)
	// HeldDeletes is whether the brake held the last pass's deletes back.
	HeldDeletes(ctx context.Context) (bool, error)
	SetHeldDeletes(ctx context.Context, held bool) error
	ErrorKeys(ctx context.Context) (map[string]state.ErrorKey, error)
	RetryKeys(ctx context.Context) ([]json.RawMessage, error)
	Apply(ctx context.Context, c state.Changes) error
	// DeliveredCount is how many objects the state holds for the stream.
	DeliveredCount(ctx context.Context) (int, error)
}

var _ Store = (*state.Stream)(nil)
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
	// Deletes is the brake against mass deletion.
	Deletes DeleteLimits
	// MaxInvalidPercent fails a pass in which more than this share of the
	// rows read by the cursor are invalid (at least MinInvalidRows of them):
	// a mapping mistake, not bad data. 0 means 50; 100 never fails.
	MaxInvalidPercent int
}

// DeleteLimits hold back every delete of a stream's pass that would delete
// more than MaxPerPass objects, or more than MaxPercent of those the state
// holds for the stream when that is more than AlwaysAllow objects.
type DeleteLimits struct {
	MaxPerPass  int
	MaxPercent  int
	AlwaysAllow int
}

// MinInvalidRows is the fewest invalid rows read by the cursor that can
// fail a pass as a likely mapping mistake (see Config.MaxInvalidPercent).
const MinInvalidRows = 100

// counter is what a Source offers to count the rows a pass has to go, for
// progress reports.
type counter interface {
	Count(ctx context.Context, after *source.Position, upper source.Value) (int64, error)
}

// Syncer runs passes. It is not safe to run two passes at once on one
// Syncer (the daemon never does).
type Syncer struct {
	src    Source
	entity Entity
	sink   Sink
	store  Store
	cfg    Config
	log    *zap.Logger
	now    func() time.Time
	// bulkDups hands the keys more than one row holds, found by
	// beginBulkLoad, to the pass.
	bulkDups *sharedKeys
	// Progress, when set, is called from the pass every time the figures
	// change, at most once per ProgressEvery.
	Progress      func(Report)
	ProgressEvery time.Duration
}

// New builds a Syncer from its parts.
func New(src Source, entity Entity, sink Sink, store Store, cfg Config, log *zap.Logger, now func() time.Time) *Syncer {
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
	return &Syncer{src: src, entity: entity, sink: sink, store: store, cfg: cfg, log: log, now: now, ProgressEvery: 10 * time.Second}
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
	// AllowMassDelete lets this pass make the deletes the brake would
	// hold back (Config.Deletes).
	AllowMassDelete bool
	// gate, set by RunStreams, holds the pass's deletes until its turn.
	gate *deleteGate
}
