// Package state is cometsync's local memory, kept in one SQLite file: the
// checkpoint, a hash of every group last delivered, the rows that failed,
// the fingerprint of the query and mapping, and the last pass's figures.
// Every change of a batch is written in one transaction, so a crash leaves
// either all of it or none of it.
package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// schemaVersion is the state's format, kept in SQLite's user_version. A
// build refuses a state written in a newer format rather than misread it,
// and migrates an older one in place (see migrate.go).
//
//	1: delivered(guid, hash, present, delivered_at), row_errors, meta
//	2: delivered.row_key: the source row that owns each guid
const schemaVersion = 2

const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS delivered (
	guid         TEXT NOT NULL, -- unique: see deliveredIndex
	hash         BLOB NOT NULL,
	present      INTEGER NOT NULL,
	delivered_at INTEGER NOT NULL,
	row_key      TEXT           -- the row that owns the guid; NULL for deliveries of format 1
);
CREATE TABLE IF NOT EXISTS row_errors (
	row_key    TEXT PRIMARY KEY,
	key_json   TEXT NOT NULL,
	guid       TEXT NOT NULL,
	code       TEXT NOT NULL,
	message    TEXT NOT NULL,
	attempts   INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	parked     INTEGER NOT NULL DEFAULT 0,
	row_hash   BLOB NOT NULL
);
`

// deliveredIndex makes guids unique in delivered and serves Known. A bulk
// load drops it while it appends, and it is built again when the load
// ends, or by the next Open if the process died first.
const deliveredIndex = `CREATE UNIQUE INDEX IF NOT EXISTS delivered_guid ON delivered(guid)`

// Meta keys.
const (
	keyCheckpoint  = "checkpoint"
	keyFingerprint = "fingerprint"
	keyLastPass    = "last_pass"
	keyFullPass    = "full_pass"
	keySyncedUntil = "synced_until"
	keyLastSuccess = "last_success"
)

// LockedError says another cometsync process holds the state file.
type LockedError struct{ Path string }

func (e *LockedError) Error() string {
	return fmt.Sprintf("state %s is in use by another cometsync process (an overlapping CronJob run or a second container?); "+
		"let it finish, or give this one its own state.path", e.Path)
}

// Options tune Open.
type Options struct {
	// ReadOnly opens without taking the lock and without creating the file,
	// for `status` and `errors` while a daemon runs.
	ReadOnly bool
	// ParkAfter is the number of attempts after which a failing row is
	// parked: still listed, retried only when its content changes.
	ParkAfter int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Store is an open state file.
type Store struct {
	db   *sql.DB
	lock *os.File
	opts Options
	path string
	// bulk is set between BeginBulkLoad and EndBulkLoad: delivered has no
	// index, Known knows nothing and Apply appends.
	bulk bool
	// owners is false for a read-only state of format 1, which has no
	// row_key column (it is not migrated: an older daemon may be running).
	owners bool
}

// ErrNoState means a read-only open found no state file: nothing has run yet.
var ErrNoState = errors.New("no state yet")

// Open opens (creating it if needed) the state at path and takes an OS lock
// on path+".lock" that the kernel releases if the process dies.
func Open(path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ParkAfter <= 0 {
		opts.ParkAfter = 10
	}
	s := &Store{opts: opts, path: path}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)"
	if opts.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoState
		}
		dsn += "&mode=ro"
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("state: create directory: %w", err)
		}
		lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("state: open lock file: %w", err)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &LockedError{Path: path}
			}
			return nil, fmt.Errorf("state: lock %s: %w", path, err)
		}
		s.lock = lock
		// WAL with NORMAL sync: a commit survives a process crash (power
		// loss may lose the last ones, which are then re-sent). A larger
		// cache and rarer checkpoints cut the cost of a batch's upserts.
		dsn += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(16384)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		s.unlock()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and this keeps the
	// batch transactions strictly ordered.
	db.SetMaxOpenConns(1)
	s.db = db
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		s.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if version > schemaVersion {
		s.Close()
		return nil, fmt.Errorf("state %s was written by a newer cometsync (state format %d, this build knows %d): "+
			"run the newer version, or give this one its own state.path", path, version, schemaVersion)
	}
	s.owners = version >= 2 || !opts.ReadOnly
	if !opts.ReadOnly {
		if err := migrate(db, version); err != nil {
			s.Close()
			return nil, fmt.Errorf("state: prepare %s: %w", path, err)
		}
		if err := s.indexDelivered(context.Background()); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// BeginBulkLoad switches a first backfill to appending. When delivered is
// empty (a first pass, or a state started afresh), every row of the pass is
// new to the state, and keeping the guid index up to date row by row costs
// a random B-tree page read and write per row once the table outgrows
// SQLite's page cache (about 25 µs a row at a million rows, the largest
// cost of a large backfill). Instead the index is dropped, deliveries are
// appended, and EndBulkLoad builds the index once, sorted. It reports
// whether bulk mode is on; with a non-empty table it does nothing.
func (s *Store) BeginBulkLoad(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM delivered LIMIT 1)`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("state: begin bulk load: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := s.db.ExecContext(ctx, `DROP INDEX IF EXISTS delivered_guid`); err != nil {
		return false, fmt.Errorf("state: begin bulk load: %w", err)
	}
	s.bulk = true
	return true, nil
}

// EndBulkLoad builds the guid index again after a bulk load. It must run
// even when the pass failed or was interrupted; give it a context that
// outlives the pass's (it takes about a second a million rows).
func (s *Store) EndBulkLoad(ctx context.Context) error {
	if !s.bulk {
		return nil
	}
	if err := s.indexDelivered(ctx); err != nil {
		return err
	}
	s.bulk = false
	return nil
}

// indexDelivered builds the guid index if it is missing. A guid delivered
// twice while it was off (two source rows with one guid) keeps its latest
// delivery, as an upsert would have.
func (s *Store) indexDelivered(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, deliveredIndex)
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		_, err = s.db.ExecContext(ctx, `DELETE FROM delivered WHERE rowid NOT IN (SELECT max(rowid) FROM delivered GROUP BY guid)`)
		if err == nil {
			_, err = s.db.ExecContext(ctx, deliveredIndex)
		}
	}
	if err != nil {
		return fmt.Errorf("state: index delivered groups: %w", err)
	}
	return nil
}

func (s *Store) unlock() {
	if s.lock != nil {
		syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

// Close closes the database and releases the lock.
func (s *Store) Close() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
	}
	s.unlock()
	return err
}

func (s *Store) meta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && strings.Contains(err.Error(), "no such table")) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("state: read %s: %w", key, err)
	}
	return v, true, nil
}

// metaJSON reads a meta value stored as JSON; nil when there is none.
func (s *Store) metaJSON(ctx context.Context, key string) (json.RawMessage, error) {
	v, ok, err := s.meta(ctx, key)
	if err != nil || !ok {
		return nil, err
	}
	return json.RawMessage(v), nil
}

func setMeta(ctx context.Context, ex execer, key, value string) error {
	_, err := ex.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES(?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("state: write %s: %w", key, err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Checkpoint is the last acknowledged position, as the syncer wrote it;
// nil before the first acknowledged batch.
func (s *Store) Checkpoint(ctx context.Context) (json.RawMessage, error) {
	return s.metaJSON(ctx, keyCheckpoint)
}

// Fingerprint is the query+mapping fingerprint of the last full sync; ""
// when none was recorded.
func (s *Store) Fingerprint(ctx context.Context) (string, error) {
	v, _, err := s.meta(ctx, keyFingerprint)
	return v, err
}

// SetFingerprint records the fingerprint the state now follows.
func (s *Store) SetFingerprint(ctx context.Context, fp string) error {
	return setMeta(ctx, s.db, keyFingerprint, fp)
}

// A full pass re-reads every row from the start. FullResync sends every
// object whatever the hashes say (CometChat lost groups or was changed
// elsewhere); FullRescan sends only the objects whose hash changed (a bulk
// fix that did not touch the cursor, a joined table that changed, a new
// mapping).
const (
	FullResync = "resync"
	FullRescan = "rescan"
)

// FullPass reports the full pass that started and has not completed ("" for
// none): the next pass goes on with it from the checkpoint.
func (s *Store) FullPass(ctx context.Context) (string, error) {
	v, _, err := s.meta(ctx, keyFullPass)
	return v, err
}

// StartFullPass forgets the checkpoint and marks a full pass of this mode
// as running.
func (s *Store) StartFullPass(ctx context.Context, mode string) error {
	if mode != FullResync && mode != FullRescan {
		return fmt.Errorf("state: unknown full pass %q", mode)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, keyCheckpoint); err != nil {
		return fmt.Errorf("state: reset checkpoint: %w", err)
	}
	if err := setMeta(ctx, tx, keyFullPass, mode); err != nil {
		return err
	}
	return tx.Commit()
}

// FinishFullPass marks the full pass complete.
func (s *Store) FinishFullPass(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, keyFullPass)
	if err != nil {
		return fmt.Errorf("state: finish the full pass: %w", err)
	}
	return nil
}

// SyncedUntil is the upper bound of the last pass that completed, as the
// syncer encoded it: every row up to it was delivered. nil before any.
func (s *Store) SyncedUntil(ctx context.Context) (json.RawMessage, error) {
	return s.metaJSON(ctx, keySyncedUntil)
}

// SetSyncedUntil records the upper bound of a pass that completed.
func (s *Store) SetSyncedUntil(ctx context.Context, v json.RawMessage) error {
	return setMeta(ctx, s.db, keySyncedUntil, string(v))
}

// LastPass returns what SetLastPass stored (nil when nothing was).
func (s *Store) LastPass(ctx context.Context) (json.RawMessage, error) {
	return s.metaJSON(ctx, keyLastPass)
}

// SetLastPass stores the figures of the pass that just ended.
func (s *Store) SetLastPass(ctx context.Context, summary json.RawMessage) error {
	return setMeta(ctx, s.db, keyLastPass, string(summary))
}

// LastSuccess is when the last pass that completed ended; zero before any.
func (s *Store) LastSuccess(ctx context.Context) (time.Time, error) {
	v, ok, err := s.meta(ctx, keyLastSuccess)
	if err != nil || !ok {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("state: read last success %q: %w", v, err)
	}
	return t, nil
}

// SetLastSuccess records when a pass completed.
func (s *Store) SetLastSuccess(ctx context.Context, t time.Time) error {
	return setMeta(ctx, s.db, keyLastSuccess, t.UTC().Format(time.RFC3339Nano))
}

// Delivered is what the state remembers of a group it delivered. The
// table holds one of these for every group ever delivered, and a pass looks
// up a page's guids in it, so it is kept small: at a million groups its
// index must stay mostly in SQLite's page cache.
type Delivered struct {
	Key     string // the object's id in CometChat: guid, uid or member id
	Hash    string // hash of the object last acknowledged by CometChat (opaque bytes)
	Present uint32 // which optional fields that object had
	// RowKey is the source row that owns the guid (its tiebreaker as
	// text): a second row that maps to the same guid is a duplicate, not
	// an update. "" for a delivery recorded before owners were (format 1):
	// the next row to deliver it becomes its owner.
	RowKey string
}

// Known returns what the state remembers of these guids. It is a hint: the
// API's answer always wins.
//
// During a bulk load it knows nothing: the table was empty when the load
// began. A read-only store that finds the index missing (a writer is in a
// bulk load) also answers nothing rather than scan the table.
func (s *Store) Known(ctx context.Context, guids []string) (map[string]Delivered, error) {
	out := make(map[string]Delivered, len(guids))
	if s.bulk {
		return out, nil
	}
	for start := 0; start < len(guids); start += 500 {
		chunk := guids[start:min(start+500, len(guids))]
		owner := "COALESCE(row_key, '')"
		if !s.owners {
			owner = "''"
		}
		q := `SELECT guid, hash, present, ` + owner + ` FROM delivered INDEXED BY delivered_guid WHERE guid IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		args := make([]any, len(chunk))
		for i, g := range chunk {
			args[i] = g
		}
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil && s.opts.ReadOnly && strings.Contains(err.Error(), "no such index") {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("state: read delivered hashes: %w", err)
		}
		for rows.Next() {
			var d Delivered
			if err := rows.Scan(&d.Key, &d.Hash, &d.Present, &d.RowKey); err != nil {
				rows.Close()
				return nil, fmt.Errorf("state: read delivered hashes: %w", err)
			}
			out[d.Key] = d
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("state: read delivered hashes: %w", err)
		}
	}
	return out, nil
}

// Failure is one row that could not be delivered in a pass.
type Failure struct {
	RowKey  string          // the tiebreaker as text: the identity of the row
	KeyJSON json.RawMessage // the tiebreaker as the source needs it to re-read the row
	GUID    string          // "" when the row has no usable guid
	Code    string          // CometChat's code, or ours for invalid rows (INVALID_ROW)
	Message string
	RowHash string // identifies the row's content, to tell a changed row from a retry
}

// Changes is everything one batch changed, applied in one transaction.
type Changes struct {
	Delivered  []Delivered
	Failed     []Failure
	Cleared    []string        // row keys whose errors are resolved
	Checkpoint json.RawMessage // new checkpoint, nil to leave it
}

// Apply writes one batch's outcome atomically. A failure's attempts grow
// by one while its content stays the same and restart at one when it
// changed; at ParkAfter attempts it is parked.
func (s *Store) Apply(ctx context.Context, c Changes) error {
	if len(c.Delivered) == 0 && len(c.Failed) == 0 && len(c.Cleared) == 0 && c.Checkpoint == nil {
		return nil
	}
	now := s.opts.Now().Unix()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: begin: %w", err)
	}
	defer tx.Rollback()
	// Prepared once per batch rather than parsed again for every row: SQLite
	// parses and plans each statement it is given, which costs more than
	// the write, and the collector that calls Apply is the one serial step
	// of a pass. (A multi-row INSERT would need a statement journal.)
	if len(c.Delivered) > 0 {
		q := `INSERT INTO delivered(guid, hash, present, delivered_at, row_key) VALUES(?,?,?,?,?)
			ON CONFLICT(guid) DO UPDATE SET hash=excluded.hash, present=excluded.present, delivered_at=excluded.delivered_at, row_key=excluded.row_key`
		if s.bulk {
			q = `INSERT INTO delivered(guid, hash, present, delivered_at, row_key) VALUES(?,?,?,?,?)`
		}
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("state: record deliveries: %w", err)
		}
		defer stmt.Close()
		// The transaction is bound to ctx already (database/sql rolls it
		// back when ctx ends); a cancellable context on every statement
		// would only cost the driver a goroutine per row to watch it.
		rowCtx := context.WithoutCancel(ctx)
		for _, d := range c.Delivered {
			if _, err := stmt.ExecContext(rowCtx, d.Key, []byte(d.Hash), d.Present, now, nullText(d.RowKey)); err != nil {
				return fmt.Errorf("state: record delivery of %s: %w", d.Key, err)
			}
		}
	}
	for _, k := range c.Cleared {
		if _, err := tx.ExecContext(ctx, `DELETE FROM row_errors WHERE row_key = ?`, k); err != nil {
			return fmt.Errorf("state: clear row error %s: %w", k, err)
		}
	}
	for _, f := range c.Failed {
		if _, err := tx.ExecContext(ctx, `INSERT INTO row_errors(row_key, key_json, guid, code, message, attempts, first_seen, last_seen, parked, row_hash)
			VALUES(?,?,?,?,?,1,?,?,?,?)
			ON CONFLICT(row_key) DO UPDATE SET
				key_json=excluded.key_json, guid=excluded.guid, code=excluded.code, message=excluded.message,
				attempts = CASE WHEN row_errors.row_hash = excluded.row_hash THEN row_errors.attempts + 1 ELSE 1 END,
				parked = CASE WHEN row_errors.row_hash = excluded.row_hash THEN row_errors.attempts + 1 >= ? ELSE 1 >= ? END,
				last_seen=excluded.last_seen, row_hash=excluded.row_hash`,
			f.RowKey, string(f.KeyJSON), f.GUID, f.Code, f.Message, now, now, boolInt(1 >= s.opts.ParkAfter), []byte(f.RowHash),
			s.opts.ParkAfter, s.opts.ParkAfter); err != nil {
			return fmt.Errorf("state: record row error %s: %w", f.RowKey, err)
		}
	}
	if c.Checkpoint != nil {
		if err := setMeta(ctx, tx, keyCheckpoint, string(c.Checkpoint)); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: commit: %w", err)
	}
	return nil
}

// nullText stores "" as NULL.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RetryKeys lists the keys of failed rows that are not parked: every pass
// re-reads them, whatever the watermark.
func (s *Store) RetryKeys(ctx context.Context) ([]json.RawMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key_json FROM row_errors WHERE parked = 0 ORDER BY first_seen, row_key`)
	if err != nil {
		return nil, fmt.Errorf("state: list rows to retry: %w", err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("state: list rows to retry: %w", err)
		}
		out = append(out, json.RawMessage(k))
	}
	return out, rows.Err()
}

// ErrorKey is what a pass needs to know of a row in the error store.
type ErrorKey struct {
	Parked  bool
	RowHash string // the content the row failed with
}

// ErrorKeys maps the key of every row in the error store to its state. A
// parked row is retried only when its content hash changes.
func (s *Store) ErrorKeys(ctx context.Context) (map[string]ErrorKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT row_key, parked, row_hash FROM row_errors`)
	if err != nil {
		return nil, fmt.Errorf("state: list row errors: %w", err)
	}
	defer rows.Close()
	out := map[string]ErrorKey{}
	for rows.Next() {
		var k string
		var e ErrorKey
		if err := rows.Scan(&k, &e.Parked, &e.RowHash); err != nil {
			return nil, fmt.Errorf("state: list row errors: %w", err)
		}
		out[k] = e
	}
	return out, rows.Err()
}

// RowError is a failed row as `cometsync errors` shows it.
type RowError struct {
	RowKey    string    `json:"key"`
	GUID      string    `json:"guid,omitempty"`
	Code      string    `json:"code"`
	Message   string    `json:"message"`
	Attempts  int       `json:"attempts"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Parked    bool      `json:"parked"`
}

// RowErrors lists every failed row, parked ones included, oldest first.
func (s *Store) RowErrors(ctx context.Context) ([]RowError, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT row_key, guid, code, message, attempts, first_seen, last_seen, parked
		FROM row_errors ORDER BY first_seen, row_key`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil
		}
		return nil, fmt.Errorf("state: list row errors: %w", err)
	}
	defer rows.Close()
	out := []RowError{}
	for rows.Next() {
		var e RowError
		var first, last int64
		if err := rows.Scan(&e.RowKey, &e.GUID, &e.Code, &e.Message, &e.Attempts, &first, &last, &e.Parked); err != nil {
			return nil, fmt.Errorf("state: list row errors: %w", err)
		}
		e.FirstSeen, e.LastSeen = time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// FailedRows counts the rows in the error store and how many are parked.
func (s *Store) FailedRows(ctx context.Context) (total, parked int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(parked), 0) FROM row_errors`).Scan(&total, &parked)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("state: count row errors: %w", err)
	}
	return total, parked, nil
}
