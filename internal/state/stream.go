package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// deliveredIndex makes guids unique in delivered and serves Known. A bulk
// load drops it while it appends, and it is built again when the load
// ends, or by the next Open if the process died first.
// Streams are the names of the state's streams, in the order a pass runs
// them: a member needs its user and its group.
var Streams = []string{"users", "groups", "members"}

// streamSchema is a stream's tables: <stream>_delivered, a row for every
// object delivered, and <stream>_row_errors, the rows that failed.
const streamSchema = `
CREATE TABLE IF NOT EXISTS {delivered} (
	object_key   TEXT NOT NULL, -- unique: see deliveredIndex
	hash         BLOB NOT NULL,
	present      INTEGER NOT NULL,
	delivered_at INTEGER NOT NULL,
	row_key      TEXT           -- the row that owns the key; NULL for deliveries of format 1
);
CREATE TABLE IF NOT EXISTS {errors} (
	row_key    TEXT PRIMARY KEY,
	key_json   TEXT NOT NULL,
	object_key TEXT NOT NULL,
	code       TEXT NOT NULL,
	message    TEXT NOT NULL,
	attempts   INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	parked     INTEGER NOT NULL DEFAULT 0,
	row_hash   BLOB NOT NULL
);
`

// deliveredIndex makes keys unique in <stream>_delivered and serves Known.
// A bulk load drops it while it appends, and it is built again when the
// load ends, or by the next Open if the process died first.
const deliveredIndex = `CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {delivered}(object_key)`

// rowIndex serves OwnedBy: which keys a source row owns, to delete the old
// key of a row whose key changed. A bulk load drops and builds it with
// deliveredIndex.
const rowIndex = `CREATE INDEX IF NOT EXISTS {rowindex} ON {delivered}(row_key)`

// Stream is one stream's part of the state: its checkpoint, fingerprint,
// full-pass mode, delivered objects and row errors. Get it with
// Store.Stream.
type Stream struct {
	*Store
	name string
	// bulk is set between BeginBulkLoad and EndBulkLoad: the delivered
	// table has no index, Known knows nothing and Apply appends.
	bulk bool
}

// Name is the stream's name.
func (s *Stream) Name() string { return s.name }

// sql fills a statement's table names in.
func (s *Stream) sql(q string) string { return streamSQL(s.name, q) }

func streamSQL(name, q string) string {
	return strings.NewReplacer("{delivered}", name+"_delivered", "{errors}", name+"_row_errors", "{index}", name+"_delivered_key", "{rowindex}", name+"_delivered_row").Replace(q)
}

// key is the stream's meta key for k.
func (s *Stream) key(k string) string { return s.name + "." + k }

// Delivered counts the objects the state holds as delivered.
func (s *Stream) DeliveredCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, s.sql(`SELECT count(*) FROM {delivered}`)).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count delivered %s: %w", s.name, err)
	}
	return n, nil
}

// Meta keys.
const (
	keyCheckpoint  = "checkpoint"
	keyFingerprint = "fingerprint"
	keyLastPass    = "last_pass"
	keyFullPass    = "full_pass"
	keySyncedUntil = "synced_until"
	keyLastSuccess = "last_success"
	keyHeldDeletes = "deletes_held"
)

// BeginBulkLoad switches a first backfill to appending. When delivered is
// empty (a first pass, or a state started afresh), every row of the pass is
// new to the state, and keeping the guid index up to date row by row costs
// a random B-tree page read and write per row once the table outgrows
// SQLite's page cache (about 25 µs a row at a million rows, the largest
// cost of a large backfill). Instead the index is dropped, deliveries are
// appended, and EndBulkLoad builds the index once, sorted. It reports
// whether bulk mode is on; with a non-empty table it does nothing.
func (s *Stream) BeginBulkLoad(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.sql(`SELECT count(*) FROM (SELECT 1 FROM {delivered} LIMIT 1)`)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("state: begin bulk load: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	for _, q := range []string{`DROP INDEX IF EXISTS {index}`, `DROP INDEX IF EXISTS {rowindex}`} {
		if _, err := s.db.ExecContext(ctx, s.sql(q)); err != nil {
			return false, fmt.Errorf("state: begin bulk load: %w", err)
		}
	}
	s.bulk = true
	return true, nil
}

// EndBulkLoad builds the guid index again after a bulk load. It must run
// even when the pass failed or was interrupted; give it a context that
// outlives the pass's (it takes about a second a million rows).
func (s *Stream) EndBulkLoad(ctx context.Context) error {
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
func (s *Stream) indexDelivered(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, s.sql(deliveredIndex))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		_, err = s.db.ExecContext(ctx, s.sql(`DELETE FROM {delivered} WHERE rowid NOT IN (SELECT max(rowid) FROM {delivered} GROUP BY object_key)`))
		if err == nil {
			_, err = s.db.ExecContext(ctx, s.sql(deliveredIndex))
		}
	}
	if err == nil {
		_, err = s.db.ExecContext(ctx, s.sql(rowIndex))
	}
	if err != nil {
		return fmt.Errorf("state: index delivered %s: %w", s.name, err)
	}
	return nil
}

// Checkpoint is the last acknowledged position, as the syncer wrote it;
// nil before the first acknowledged batch.
func (s *Stream) Checkpoint(ctx context.Context) (json.RawMessage, error) {
	return s.metaJSON(ctx, s.key(keyCheckpoint))
}

// Fingerprint is the query+mapping fingerprint of the last full sync; ""
// when none was recorded.
func (s *Stream) Fingerprint(ctx context.Context) (string, error) {
	v, _, err := s.meta(ctx, s.key(keyFingerprint))
	return v, err
}

// SetFingerprint records the fingerprint the state now follows.
func (s *Stream) SetFingerprint(ctx context.Context, fp string) error {
	return setMeta(ctx, s.db, s.key(keyFingerprint), fp)
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
func (s *Stream) FullPass(ctx context.Context) (string, error) {
	v, _, err := s.meta(ctx, s.key(keyFullPass))
	return v, err
}

// StartFullPass forgets the checkpoint and marks a full pass of this mode
// as running.
func (s *Stream) StartFullPass(ctx context.Context, mode string) error {
	if mode != FullResync && mode != FullRescan {
		return fmt.Errorf("state: unknown full pass %q", mode)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, s.key(keyCheckpoint)); err != nil {
		return fmt.Errorf("state: reset checkpoint: %w", err)
	}
	if err := setMeta(ctx, tx, s.key(keyFullPass), mode); err != nil {
		return err
	}
	return tx.Commit()
}

// FinishFullPass marks the full pass complete.
func (s *Stream) FinishFullPass(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, s.key(keyFullPass))
	if err != nil {
		return fmt.Errorf("state: finish the full pass: %w", err)
	}
	return nil
}

// SyncedUntil is the upper bound of the last pass that completed, as the
// syncer encoded it: every row up to it was delivered. nil before any.
func (s *Stream) SyncedUntil(ctx context.Context) (json.RawMessage, error) {
	return s.metaJSON(ctx, s.key(keySyncedUntil))
}

// SetSyncedUntil records the upper bound of a pass that completed.
func (s *Stream) SetSyncedUntil(ctx context.Context, v json.RawMessage) error {
	return setMeta(ctx, s.db, s.key(keySyncedUntil), string(v))
}

// HeldDeletes reports that the brake held back the deletes of the
// stream's last pass that got as far as its deletes: the next pass looks
// for rows' old keys among every row it reads, as those rows' new keys
// were delivered already.
func (s *Stream) HeldDeletes(ctx context.Context) (bool, error) {
	v, _, err := s.meta(ctx, s.key(keyHeldDeletes))
	return v == "1", err
}

// SetHeldDeletes records whether the brake held back the pass's deletes.
func (s *Stream) SetHeldDeletes(ctx context.Context, held bool) error {
	if !held {
		_, err := s.db.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, s.key(keyHeldDeletes))
		if err != nil {
			return fmt.Errorf("state: record the held deletes: %w", err)
		}
		return nil
	}
	return setMeta(ctx, s.db, s.key(keyHeldDeletes), "1")
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
func (s *Stream) Known(ctx context.Context, guids []string) (map[string]Delivered, error) {
	out := make(map[string]Delivered, len(guids))
	if s.bulk {
		return out, nil
	}
	err := s.lookUp(ctx, `SELECT object_key, hash, present, COALESCE(row_key, '') FROM {delivered} INDEXED BY {index} WHERE object_key IN `, guids,
		func(d Delivered) { out[d.Key] = d })
	if err != nil {
		return nil, fmt.Errorf("state: read delivered hashes: %w", err)
	}
	return out, nil
}

// lookUp runs q, which ends in "IN ", over keys a chunk at a time, and
// gives each delivered object it selects to fn. A read-only store that
// finds the index missing (a writer is in a bulk load) finds nothing
// rather than scan the table.
func (s *Stream) lookUp(ctx context.Context, q string, keys []string, fn func(Delivered)) error {
	for start := 0; start < len(keys); start += 500 {
		chunk := keys[start:min(start+500, len(keys))]
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		rows, err := s.db.QueryContext(ctx, s.sql(q+`(?`+strings.Repeat(",?", len(chunk)-1)+`)`), args...)
		if err != nil && s.opts.ReadOnly && strings.Contains(err.Error(), "no such index") {
			return nil
		}
		if err != nil {
			return err
		}
		for rows.Next() {
			var d Delivered
			if err := rows.Scan(&d.Key, &d.Hash, &d.Present, &d.RowKey); err != nil {
				rows.Close()
				return err
			}
			fn(d)
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	return nil
}

// OwnedBy returns the delivered objects that these source rows own, by row
// key: a row whose key changed owns its old key until that is deleted, and
// a row that vanished owns what it delivered. Objects kept deactivated
// (no hash) are left out: there is nothing more to delete. During a bulk
// load it knows nothing, like Known.
func (s *Stream) OwnedBy(ctx context.Context, rowKeys []string) (map[string][]Delivered, error) {
	out := map[string][]Delivered{}
	if s.bulk {
		return out, nil
	}
	err := s.lookUp(ctx, `SELECT object_key, hash, present, row_key FROM {delivered} INDEXED BY {rowindex} WHERE length(hash) > 0 AND row_key IN `, rowKeys,
		func(d Delivered) { out[d.RowKey] = append(out[d.RowKey], d) })
	if err != nil {
		return nil, fmt.Errorf("state: read the keys rows own: %w", err)
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
	// Forgotten are keys deleted from CometChat: the state forgets them
	// (for the groups stream, with their memberships in the members
	// stream: deleting a group drops its members).
	Forgotten  []string
	Delivered  []Delivered
	Failed     []Failure
	Cleared    []string        // row keys whose errors are resolved
	Checkpoint json.RawMessage // new checkpoint, nil to leave it
}

// Apply writes one batch's outcome atomically. A failure's attempts grow
// by one while its content stays the same and restart at one when it
// changed; at ParkAfter attempts it is parked.
func (s *Stream) Apply(ctx context.Context, c Changes) error {
	if len(c.Delivered) == 0 && len(c.Failed) == 0 && len(c.Cleared) == 0 && len(c.Forgotten) == 0 && c.Checkpoint == nil {
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
		q := s.sql(`INSERT INTO {delivered}(object_key, hash, present, delivered_at, row_key) VALUES(?,?,?,?,?)
			ON CONFLICT(object_key) DO UPDATE SET hash=excluded.hash, present=excluded.present, delivered_at=excluded.delivered_at, row_key=excluded.row_key`)
		if s.bulk {
			q = s.sql(`INSERT INTO {delivered}(object_key, hash, present, delivered_at, row_key) VALUES(?,?,?,?,?)`)
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
	for _, k := range c.Forgotten {
		if _, err := tx.ExecContext(ctx, s.sql(`DELETE FROM {delivered} WHERE object_key = ?`), k); err != nil {
			return fmt.Errorf("state: forget %s: %w", k, err)
		}
		if s.name == "groups" {
			// The member ids of a group are "<guid>_member_<uid>": a range
			// of the members' key index.
			prefix := k + "_member_"
			if _, err := tx.ExecContext(ctx, streamSQL("members", `DELETE FROM {delivered} WHERE object_key >= ? AND object_key < ?`),
				prefix, prefix+"\xff"); err != nil {
				return fmt.Errorf("state: forget the members of %s: %w", k, err)
			}
		}
	}
	for _, k := range c.Cleared {
		if _, err := tx.ExecContext(ctx, s.sql(`DELETE FROM {errors} WHERE row_key = ?`), k); err != nil {
			return fmt.Errorf("state: clear row error %s: %w", k, err)
		}
	}
	for _, f := range c.Failed {
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO {errors}(row_key, key_json, object_key, code, message, attempts, first_seen, last_seen, parked, row_hash)
			VALUES(?,?,?,?,?,1,?,?,?,?)
			ON CONFLICT(row_key) DO UPDATE SET
				key_json=excluded.key_json, object_key=excluded.object_key, code=excluded.code, message=excluded.message,
				attempts = CASE WHEN {errors}.row_hash = excluded.row_hash THEN {errors}.attempts + 1 ELSE 1 END,
				parked = CASE WHEN {errors}.row_hash = excluded.row_hash THEN {errors}.attempts + 1 >= ? ELSE 1 >= ? END,
				last_seen=excluded.last_seen, row_hash=excluded.row_hash`),
			f.RowKey, string(f.KeyJSON), f.GUID, f.Code, f.Message, now, now, boolInt(1 >= s.opts.ParkAfter), []byte(f.RowHash),
			s.opts.ParkAfter, s.opts.ParkAfter); err != nil {
			return fmt.Errorf("state: record row error %s: %w", f.RowKey, err)
		}
	}
	if c.Checkpoint != nil {
		if err := setMeta(ctx, tx, s.key(keyCheckpoint), string(c.Checkpoint)); err != nil {
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
func (s *Stream) RetryKeys(ctx context.Context) ([]json.RawMessage, error) {
	rows, err := s.db.QueryContext(ctx, s.sql(`SELECT key_json FROM {errors} WHERE parked = 0 ORDER BY first_seen, row_key`))
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
func (s *Stream) ErrorKeys(ctx context.Context) (map[string]ErrorKey, error) {
	rows, err := s.db.QueryContext(ctx, s.sql(`SELECT row_key, parked, row_hash FROM {errors}`))
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
	Stream    string    `json:"stream"`
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
func (s *Stream) RowErrors(ctx context.Context) ([]RowError, error) {
	rows, err := s.db.QueryContext(ctx, s.sql(`SELECT row_key, object_key, code, message, attempts, first_seen, last_seen, parked
		FROM {errors} ORDER BY first_seen, row_key`))
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
		e.Stream = s.name
		out = append(out, e)
	}
	return out, rows.Err()
}

// FailedRows counts the rows in the error store and how many are parked.
func (s *Stream) FailedRows(ctx context.Context) (total, parked int, err error) {
	err = s.db.QueryRowContext(ctx, s.sql(`SELECT COUNT(*), COALESCE(SUM(parked), 0) FROM {errors}`)).Scan(&total, &parked)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("state: count row errors: %w", err)
	}
	return total, parked, nil
}

// Keys calls fn with every key the state holds as delivered, in byte
// order, and whether CometChat keeps it deactivated (a user deleted
// without permanent). The state is read in one statement: fn must not use
// the state.
func (s *Stream) Keys(ctx context.Context, fn func(key string) error) error {
	// The key alone: the unique index covers it, so SQLite reads the
	// index in order and never the table (a row lookup per key, in random
	// order, was most of a reconcile's time).
	rows, err := s.db.QueryContext(ctx, s.sql(`SELECT object_key FROM {delivered} INDEXED BY {index} ORDER BY object_key`))
	if err != nil {
		return fmt.Errorf("state: list delivered %s: %w", s.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return fmt.Errorf("state: list delivered %s: %w", s.name, err)
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return rows.Err()
}

// KeptKeys are the keys the state keeps without a hash: objects CometChat
// keeps deactivated (users deleted by default), which a reconcile does not
// delete again. One read of the table, in its own order.
func (s *Stream) KeptKeys(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, s.sql(`SELECT object_key FROM {delivered} WHERE length(hash) = 0`))
	if err != nil {
		return nil, fmt.Errorf("state: list deactivated %s: %w", s.name, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, fmt.Errorf("state: list deactivated %s: %w", s.name, err)
		}
		out[key] = true
	}
	return out, rows.Err()
}
