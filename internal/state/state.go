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
//	3: a pair of tables per stream (users, groups, members):
//	   <stream>_delivered(object_key, ...), <stream>_row_errors(..., object_key, ...),
//	   and the stream's meta keys prefixed "<stream>."; format 2's tables
//	   and keys are the groups stream's
const schemaVersion = 3

const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`

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
	db      *sql.DB
	lock    *os.File
	opts    Options
	path    string
	streams map[string]*Stream
	// tmp is the folder of a migrated copy that a read-only Open made of
	// an older state; removed by Close.
	tmp string
}

// Stream returns the named stream's part of the state (one of Streams).
func (s *Store) Stream(name string) *Stream {
	if st, ok := s.streams[name]; ok {
		return st
	}
	panic(fmt.Sprintf("state: unknown stream %q", name))
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
	s.streams = map[string]*Stream{}
	for _, name := range Streams {
		s.streams[name] = &Stream{Store: s, name: name}
	}
	if opts.ReadOnly && version < schemaVersion && version > 0 {
		// An older format, read while the older release may still run:
		// read a migrated copy, leave the file alone.
		if err := s.readCopy(path, version); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	if !opts.ReadOnly {
		if err := migrate(db, version); err != nil {
			s.Close()
			return nil, fmt.Errorf("state: prepare %s: %w", path, err)
		}
		for _, st := range s.streams {
			if err := st.indexDelivered(context.Background()); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	return s, nil
}

// readCopy replaces the read-only connection to a state of an older format
// with one to a migrated copy of it, in a temporary folder.
func (s *Store) readCopy(path string, version int) error {
	dir, err := os.MkdirTemp("", "cometsync-state-copy-")
	if err != nil {
		return fmt.Errorf("state: read %s (format %d): %w", path, version, err)
	}
	s.tmp = dir
	copyPath := filepath.Join(dir, "state.db")
	if _, err := s.db.Exec(`VACUUM INTO ?`, copyPath); err != nil {
		return fmt.Errorf("state: read %s (format %d): copy: %w", path, version, err)
	}
	s.db.Close()
	db, err := sql.Open("sqlite", "file:"+copyPath)
	if err != nil {
		return fmt.Errorf("state: read %s (format %d): %w", path, version, err)
	}
	db.SetMaxOpenConns(1)
	s.db = db
	if err := migrate(db, version); err != nil {
		return fmt.Errorf("state: read %s (format %d): migrate a copy: %w", path, version, err)
	}
	for _, st := range s.streams {
		if err := st.indexDelivered(context.Background()); err != nil {
			return err
		}
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
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
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
