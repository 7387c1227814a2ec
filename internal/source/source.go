// Package source reads the user's query from a SQL database (MariaDB/MySQL,
// PostgreSQL or SQLite) page by page, by keyset on (cursor, tiebreaker), up to an upper
// bound taken from the database clock.
//
// The user's SELECT is wrapped as a derived table:
//
//	SELECT * FROM (<query>) AS cometsync_src WHERE <keyset> ORDER BY c, t LIMIT ?
//
// so the cursor and tiebreaker are named as the query's result columns (their
// aliases, if any). MariaDB merges such a derived table into the outer query
// (PostgreSQL pulls it up) and uses an index on (cursor, tiebreaker) of the
// driving table, as long as the query is mergeable: no GROUP BY, DISTINCT,
// LIMIT, UNION or aggregates.
//
// What differs between databases is one dialect per database (mysql.go,
// postgres.go, sqlite.go); the rest is the same for all.
//
// Rows whose cursor is NULL are never read by ReadPage or counted by Count:
// NULL compares as neither before nor after any position.
package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"go.uber.org/zap"
)

// The units Config.IntegerUnit names (and UnitMicroseconds).
const (
	UnitSeconds      = "seconds"
	UnitMilliseconds = "milliseconds"
)

// alias names the wrapped user query.
const alias = "cometsync_src"

// keysPerQuery bounds the IN list of ReadKeys.
const keysPerQuery = 500

// Config says what to read and how.
type Config struct {
	// Driver is "mysql" (MariaDB, MySQL), "postgres" or "sqlite".
	Driver string
	// DSN is the driver's data source name, used as given. For mysql,
	// parseTime decides whether date-time cursors are read as KindTime
	// (true) or KindText (false); both work. For postgres, either of pgx's
	// forms (a postgres:// URL or keyword=value pairs).
	DSN string
	// Query is the user's SELECT; it is wrapped as a derived table. A
	// trailing ";" is ignored.
	Query string
	// Cursor is the name of the result column that orders changes: a
	// DATETIME, TIMESTAMP or DATE (PostgreSQL: timestamptz, timestamp or
	// date), or an integer (unix time in IntegerUnit).
	// In SQLite, date-time text must be UTC in the form
	// 'YYYY-MM-DD HH:MM:SS[.SSS]'.
	Cursor string
	// Tiebreaker is the name of a unique, non-NULL result column that orders
	// rows sharing one cursor value.
	Tiebreaker string
	// Lag keeps the newest changes out of a pass: rows whose cursor is later
	// than the database clock minus Lag are left for a later pass. It must
	// be longer than the longest write transaction (plus replica lag).
	Lag time.Duration
	// Section is the config section that holds the query and cursor
	// ("users", "groups", "members"), for the keys errors name; "" means
	// "source", the earlier form.
	Section string
	// BoundByMax makes a pass's upper bound the largest cursor value the
	// query returns, not the database clock: for a cursor that is not a
	// time (the binlog feed's backfill pages by the tiebreaker alone, and
	// the binlog carries the changes made after it). Lag and IntegerUnit
	// do not apply.
	BoundByMax bool
	// IntegerUnit is the unit of an integer cursor, "seconds",
	// "milliseconds" or "microseconds"; it converts Lag. "" detects it from
	// the data (see Unit); a unit the data contradicts is refused.
	IntegerUnit string
	// ConnectTimeout bounds how long Open retries a database it cannot
	// reach; 0 means 15 s, negative means a single try.
	ConnectTimeout time.Duration
}

// Position is the keyset checkpoint: the last (cursor, tiebreaker) delivered.
// A Position with no Key (KindNone) stands for "every row with a cursor after
// Cursor", which is how a configured start (see ParseStart) is expressed.
type Position struct {
	Cursor Value `json:"cursor"`
	Key    Value `json:"key"`
}

// Row is one row of the query.
type Row struct {
	// Cursor and Key are the row's cursor and tiebreaker values. Cursor is
	// KindNone only in rows from ReadKeys whose cursor is NULL.
	Cursor, Key Value
	// Values are the row's values aligned with Columns(), as the driver
	// returned them ([]byte values are the row's own copies).
	Values []any
}

// Source reads the user's query. It is safe for concurrent use.
type Source struct {
	cfg Config
	d   dialect
	db  *sqlx.DB
	log *zap.Logger

	from    string // the wrapped query: (<query>) AS cometsync_src
	cursor  string // quoted cursor column
	key     string // quoted tiebreaker column
	columns string // the select list
	raw     bool   // columns ends with copies of the cursor and key

	mu       sync.Mutex
	kind     Kind        // the cursor's kind, once CursorKind has run
	kindType string      // the cursor's database type name, with kind
	unit     *UnitChoice // the integer unit, once Unit has run
}

// Open opens the database, checks that it answers, and returns a Source
// that logs to log (a nil log discards).
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Source{cfg: cfg, d: dialects[cfg.Driver](), log: log.Named("source")}
	query := strings.TrimRight(strings.TrimSpace(cfg.Query), "; \t\r\n")
	// The newlines keep a trailing "-- comment" in the query from
	// swallowing the closing parenthesis.
	s.from = "(\n" + query + "\n) AS " + alias
	s.cursor = s.quote(cfg.Cursor)
	s.key = s.quote(cfg.Tiebreaker)
	s.columns, s.raw = s.d.selectList(s.cursor, s.key)

	sqlDB, err := s.d.open(cfg.DSN, s.log)
	if err != nil {
		return nil, err
	}
	db := sqlx.NewDb(sqlDB, cfg.Driver)
	if err := s.connect(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to the source database (%s): %w", cfg.Driver, err)
	}
	s.db = db
	s.log.Debug("opened", zap.String("driver", cfg.Driver))
	return s, nil
}

// lost explains an error that means the connection broke or the database
// stopped answering, in the dialect's words.
func (s *Source) lost(err error) error { return s.d.lost(err) }

// key is the config key k of the section holding the query, e.g.
// "groups.cursor.column".
func (c Config) key(k string) string {
	if c.Section == "" {
		return "source." + k
	}
	return c.Section + "." + k
}

func (c Config) validate() error {
	switch {
	case dialects[c.Driver] == nil:
		return fmt.Errorf("source.driver: %q is not supported (want one of %s)", c.Driver, driverNames())
	case c.DSN == "":
		return errors.New("source.dsn: empty")
	case strings.TrimSpace(c.Query) == "":
		return errors.New(c.key("query") + ": empty")
	case c.Cursor == "":
		return errors.New(c.key("cursor.column") + ": empty")
	case c.Tiebreaker == "":
		return errors.New(c.key("cursor.tiebreaker") + ": empty")
	case c.Lag < 0:
		return fmt.Errorf("%s: %s is negative", c.key("cursor.lag"), c.Lag)
	case c.IntegerUnit != "" && perSecond[c.IntegerUnit] == 0:
		return fmt.Errorf("%s: %q is not a unit (want %q, %q or %q)", c.key("cursor.integer_unit"), c.IntegerUnit, UnitSeconds, UnitMilliseconds, UnitMicroseconds)
	}
	return nil
}

// connect pings the database, retrying for up to ConnectTimeout while it
// cannot be reached (a database restarting, a sidecar proxy starting with
// the pod). An answer from the server, such as access denied, is final.
func (s *Source) connect(ctx context.Context, db *sqlx.DB) error {
	limit := s.cfg.ConnectTimeout
	if limit == 0 {
		limit = 15 * time.Second
	}
	deadline := time.Now().Add(limit)
	wait := 250 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || s.d.answered(err) || ctx.Err() != nil || limit < 0 || time.Now().Add(wait).After(deadline) {
			return err
		}
		s.log.Info("source database not reachable yet; retrying", zap.Error(err), zap.Duration("wait", wait))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Close closes the database.
func (s *Source) Close() error { return s.db.Close() }

// quote quotes a column name for the dialect.
func (s *Source) quote(name string) string { return s.d.quote(name) }

// ph is the n-th (from 1) argument's placeholder.
func (s *Source) ph(n int) string { return s.d.placeholder(n) }

// ColumnError is a configured column that the query does not return: a
// config problem, found before anything is read.
type ColumnError struct {
	Key     string // the config key naming the column
	Column  string
	Columns []string // what the query returns
	Query   string   // the config key of the query
}

func (e *ColumnError) Error() string {
	return fmt.Sprintf("%s: %q is not a column of %s (columns: %s)", e.Key, e.Column, e.Query, strings.Join(e.Columns, ", "))
}

// Columns returns the names of the query's result columns, the names
// Row.Values is aligned with. It fails when the cursor or tiebreaker column
// is not among them, or when the query does not run.
func (s *Source) Columns(ctx context.Context) ([]string, error) {
	cols, err := s.columnTypes(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
	}
	return names, nil
}

// columnTypes runs the query for no rows and checks the configured columns.
func (s *Source) columnTypes(ctx context.Context) ([]*sql.ColumnType, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+s.from+" WHERE 1=0")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.cfg.key("query"), err)
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.cfg.key("query"), err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
	}
	for _, want := range []struct{ field, name string }{
		{s.cfg.key("cursor.column"), s.cfg.Cursor},
		{s.cfg.key("cursor.tiebreaker"), s.cfg.Tiebreaker},
	} {
		if indexOf(names, want.name) < 0 {
			return nil, &ColumnError{Key: want.field, Column: want.name, Columns: names, Query: s.cfg.key("query")}
		}
	}
	return cols, rows.Close()
}

// indexOf finds a column by name: exactly, else ignoring case (as both
// MariaDB and SQLite resolve column names).
func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	for i, n := range names {
		if strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

// CursorKind tells whether the cursor column is an integer (KindInt) or a
// date and time, read as KindTime (mysql with parseTime=true) or KindText
// (mysql with parseTime=false, and SQLite text). It decides the kind of
// UpperBound. MariaDB types: any integer type; DATETIME, TIMESTAMP, DATE.
// SQLite: a declared type with INT in it, or an integer stored in the first
// row that has a cursor, is KindInt; anything else is KindText. PostgreSQL:
// smallint, integer, bigint are KindInt; timestamptz, timestamp and date
// KindTime.
func (s *Source) CursorKind(ctx context.Context) (Kind, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kind != KindNone {
		return s.kind, nil
	}
	cols, err := s.columnTypes(ctx)
	if err != nil {
		return KindNone, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
	}
	dbType := strings.ToUpper(cols[indexOf(names, s.cfg.Cursor)].DatabaseTypeName())

	kind, err := s.d.cursorKind(ctx, s, dbType)
	if err != nil {
		return KindNone, err
	}
	s.kindType = dbType
	s.kind = kind
	return kind, nil
}

// UpperBound returns the database clock minus Lag, in the cursor's kind: the
// pass's fixed upper bound, to be taken once per pass and given to every
// ReadPage and Count of that pass. MariaDB: NOW(6) minus Lag for a date-time
// cursor, as the driver reads it; for an integer cursor, UTC_TIMESTAMP(6) as
// unix time minus Lag, in the unit Unit decides, rounded down. SQLite: UTC
// 'YYYY-MM-DD HH:MM:SS.SSS' text, or unix time in that unit. (SQLite's
// clock is this process's clock.) PostgreSQL: clock_timestamp() (the
// statement's clock, not the transaction's now()) minus Lag, as the
// cursor's type: timestamptz, or timestamp in the session's zone for a
// timestamp or date cursor. A configured unit the data contradicts is
// a *UnitError.
func (s *Source) UpperBound(ctx context.Context) (Value, error) {
	if s.cfg.BoundByMax {
		return s.maxCursor(ctx)
	}
	kind, err := s.CursorKind(ctx)
	if err != nil {
		return Value{}, err
	}
	if kind == KindInt {
		// The clock in microseconds; the rest is exact integer arithmetic.
		unit, err := s.Unit(ctx)
		if err != nil {
			return Value{}, err
		}
		var nowMicros int64
		if err := s.db.GetContext(ctx, &nowMicros, s.d.clockMicros()); err != nil {
			return Value{}, fmt.Errorf("read the database clock: %w", s.lost(err))
		}
		return Value{Kind: KindInt, Int: floorDiv(nowMicros-s.cfg.Lag.Microseconds(), 1_000_000/perSecond[unit.Unit])}, nil
	}
	s.mu.Lock()
	dbType := s.kindType
	s.mu.Unlock()
	q, args := s.d.upperBound(dbType, s.cfg.Lag)
	var raw any
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&raw); err != nil {
		return Value{}, fmt.Errorf("read the database clock: %w", s.lost(err))
	}
	v, err := ValueOf(raw)
	if err != nil {
		return Value{}, fmt.Errorf("read the database clock: %w", err)
	}
	return v, nil
}

// floorDiv divides rounding toward minus infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// keyset returns the WHERE clause for rows after the position (when after)
// and not after the upper bound, and its arguments, in the dialect's form
// (see dialect.keysetAfter).
func (s *Source) keyset(after *Position, upper Value) (string, []any) {
	if after == nil {
		return fmt.Sprintf("%s <= %s", s.cursor, s.ph(1)), []any{upper.Arg()}
	}
	return s.d.keysetAfter(s.cursor, s.key), []any{after.Cursor.Arg(), after.Cursor.Arg(), after.Key.Arg(), upper.Arg()}
}

// PageSQL returns the SQL ReadPage runs, for a first page (after false) or
// a page after a position; its arguments are the position's cursor, cursor
// again and key (when after), the upper bound, and the limit.
func (s *Source) PageSQL(after bool) string {
	var pos *Position
	if after {
		pos = &Position{}
	}
	where, args := s.keyset(pos, Value{})
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s, %s LIMIT %s", s.columns, s.from, where, s.cursor, s.key, s.ph(len(args)+1))
}

// ReadPage reads at most limit rows after the position (from the start when
// after is nil) whose cursor is not after upper, in (cursor, tiebreaker)
// order. The page is read into memory and the result set closed before it
// returns: a result set held open while the caller works would be cut by
// MySQL's net_write_timeout.
func (s *Source) ReadPage(ctx context.Context, after *Position, upper Value, limit int) ([]Row, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read page: limit %d, want at least 1", limit)
	}
	if upper.IsZero() {
		return nil, errors.New("read page: no upper bound (take one with UpperBound)")
	}
	_, args := s.keyset(after, upper)
	rows, err := s.query(ctx, s.PageSQL(after != nil), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read page: %w", s.lost(err))
	}
	if len(rows) > limit {
		return nil, fmt.Errorf("read page: the database returned %d rows for LIMIT %d", len(rows), limit)
	}
	return rows, nil
}

// maxCursor is the upper bound of BoundByMax: the largest cursor value;
// for an empty result, a bound no row passes.
func (s *Source) maxCursor(ctx context.Context) (Value, error) {
	var raw any
	if err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT MAX(%s) FROM %s", s.cursor, s.from)).Scan(&raw); err != nil {
		return Value{}, fmt.Errorf("read the largest %s: %w", s.cfg.Cursor, s.lost(err))
	}
	if raw == nil {
		return Value{Kind: KindInt, Int: math.MinInt64}, nil
	}
	if b, ok := raw.([]byte); ok {
		// The text protocol gives MAX of an integer as digits.
		if kind, err := s.CursorKind(ctx); err == nil && kind == KindInt {
			n, err := strconv.ParseInt(string(b), 10, 64)
			if err != nil {
				return Value{}, fmt.Errorf("read the largest %s: %w", s.cfg.Cursor, err)
			}
			return Value{Kind: KindInt, Int: n}, nil
		}
	}
	v, err := ValueOf(raw)
	if err != nil {
		return Value{}, fmt.Errorf("read the largest %s: %w", s.cfg.Cursor, err)
	}
	return v, nil
}

// ReadKeys re-reads the rows whose tiebreaker is one of keys, regardless of
// the position and the upper bound, in (cursor, tiebreaker) order; a key no
// row has is simply absent from the result.
func (s *Source) ReadKeys(ctx context.Context, keys []Value) ([]Row, error) {
	var out []Row
	for start := 0; start < len(keys); start += keysPerQuery {
		chunk := keys[start:min(start+keysPerQuery, len(keys))]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, k := range chunk {
			args[i] = k.Arg()
			marks[i] = s.ph(i + 1)
		}
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (%s) ORDER BY %s, %s",
			s.columns, s.from, s.key, strings.Join(marks, ", "), s.cursor, s.key)
		rows, err := s.query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read rows by key: %w", s.lost(err))
		}
		out = append(out, rows...)
	}
	return out, nil
}

// Count returns how many rows ReadPage has yet to read in the same range:
// after the position (or from the start) and not after upper.
func (s *Source) Count(ctx context.Context, after *Position, upper Value) (int64, error) {
	if upper.IsZero() {
		return 0, errors.New("count rows: no upper bound (take one with UpperBound)")
	}
	where, args := s.keyset(after, upper)
	var n int64
	if err := s.db.GetContext(ctx, &n, "SELECT COUNT(*) FROM "+s.from+" WHERE "+where, args...); err != nil {
		return 0, fmt.Errorf("count rows: %w", s.lost(err))
	}
	return n, nil
}

// query runs q and reads every row into memory.
func (s *Source) query(ctx context.Context, q string, args ...any) ([]Row, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	width := len(names) // the query's own columns
	cursorAt, keyAt := indexOf(names, s.cfg.Cursor), indexOf(names, s.cfg.Tiebreaker)
	if s.raw {
		width -= 2
		cursorAt, keyAt = width, width+1 // the raw copies at the end
	}
	if cursorAt < 0 || keyAt < 0 {
		return nil, fmt.Errorf("the query has no column %q or %q (columns: %s)", s.cfg.Cursor, s.cfg.Tiebreaker, strings.Join(names, ", "))
	}

	var out []Row
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		// Scanning into *any copies []byte: the row owns its values.
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := Row{Values: vals[:width:width]}
		if vals[cursorAt] != nil {
			if row.Cursor, err = s.valueOf(vals[cursorAt]); err != nil {
				return nil, fmt.Errorf("cursor column %q: %w", s.cfg.Cursor, err)
			}
		}
		if row.Key, err = s.valueOf(vals[keyAt]); err != nil {
			return nil, fmt.Errorf("tiebreaker column %q (in a row with cursor %q): %w; the tiebreaker must be unique and non-NULL",
				s.cfg.Tiebreaker, row.Cursor.String(), err)
		}
		if n := len(out); n > 0 && out[n-1].Key.equal(row.Key) && out[n-1].Cursor.equal(row.Cursor) {
			return nil, fmt.Errorf("tiebreaker column %q: two rows have cursor %q and key %q; the tiebreaker must be unique, or rows are skipped",
				s.cfg.Tiebreaker, row.Cursor.String(), row.Key.String())
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// valueOf is the dialect's ValueOf.
func (s *Source) valueOf(x any) (Value, error) { return s.d.valueOf(x) }
