// Package source reads the user's query from a SQL database (MariaDB/MySQL or
// SQLite) page by page, by keyset on (cursor, tiebreaker), up to an upper
// bound taken from the database clock.
//
// The user's SELECT is wrapped as a derived table:
//
//	SELECT * FROM (<query>) AS cometsync_src WHERE <keyset> ORDER BY c, t LIMIT ?
//
// so the cursor and tiebreaker are named as the query's result columns (their
// aliases, if any). MariaDB merges such a derived table into the outer query
// and uses an index on (cursor, tiebreaker) of the driving table, as long as
// the query is mergeable: no GROUP BY, DISTINCT, LIMIT, UNION or aggregates.
//
// Rows whose cursor is NULL are never read by ReadPage or counted by Count:
// NULL compares as neither before nor after any position.
package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"go.uber.org/zap"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// The drivers Config.Driver names.
const (
	DriverMySQL  = "mysql"  // MariaDB or MySQL, through github.com/go-sql-driver/mysql
	DriverSQLite = "sqlite" // SQLite, through modernc.org/sqlite
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
	// Driver is "mysql" (MariaDB, MySQL) or "sqlite".
	Driver string
	// DSN is the driver's data source name, used as given. For mysql,
	// parseTime decides whether date-time cursors are read as KindTime
	// (true) or KindText (false); both work.
	DSN string
	// Query is the user's SELECT; it is wrapped as a derived table. A
	// trailing ";" is ignored.
	Query string
	// Cursor is the name of the result column that orders changes: a
	// DATETIME, TIMESTAMP or DATE, or an integer (unix time in IntegerUnit).
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
	cfg       Config
	db        *sqlx.DB
	log       *zap.Logger
	parseTime bool // mysql DSN's parseTime

	from    string // the wrapped query: (<query>) AS cometsync_src
	cursor  string // quoted cursor column
	key     string // quoted tiebreaker column
	columns string // the select list

	mu   sync.Mutex
	kind Kind        // the cursor's kind, once CursorKind has run
	unit *UnitChoice // the integer unit, once Unit has run
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
	s := &Source{cfg: cfg, log: log.Named("source")}
	var mc *mysql.Config
	if cfg.Driver == DriverMySQL {
		var err error
		if mc, err = mysqlConfig(cfg.DSN); err != nil {
			return nil, fmt.Errorf("source.dsn: %w", err)
		}
		s.parseTime = mc.ParseTime
		// The driver's own messages ("closing bad idle connection" after a
		// database restart) go to the process's log, not as plain text into
		// a JSON log stream.
		mc.Logger = driverLogger{s.log.Named("mysql")}
	}

	query := strings.TrimRight(strings.TrimSpace(cfg.Query), "; \t\r\n")
	// The newlines keep a trailing "-- comment" in the query from
	// swallowing the closing parenthesis.
	s.from = "(\n" + query + "\n) AS " + alias
	s.cursor = s.quote(cfg.Cursor)
	s.key = s.quote(cfg.Tiebreaker)
	s.columns = "*"
	if cfg.Driver == DriverSQLite {
		// modernc.org/sqlite turns text in a column declared DATETIME into
		// time.Time, and would send it back in Go's time.String() form,
		// which compares wrongly with the stored text. An expression has no
		// declared type, so these two come back exactly as stored.
		s.columns = fmt.Sprintf("*, +%s AS cometsync_cursor, +%s AS cometsync_key", s.cursor, s.key)
	}

	var db *sqlx.DB
	if mc != nil {
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("source.dsn: %w", err)
		}
		db = sqlx.NewDb(sql.OpenDB(conn), cfg.Driver)
	} else {
		var err error
		if db, err = sqlx.Open(cfg.Driver, cfg.DSN); err != nil {
			return nil, fmt.Errorf("open source database: %w", err)
		}
	}
	if err := s.connect(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to the source database (%s): %w", cfg.Driver, err)
	}
	s.db = db
	s.log.Debug("opened", zap.String("driver", cfg.Driver))
	return s, nil
}

// DefaultReadTimeout is the MySQL driver's readTimeout when the DSN sets
// none: a database that stops answering without closing the connection (a
// frozen server, a partition) fails the read instead of hanging the pass,
// and the daemon, forever. Long enough for any query a pass runs.
const DefaultReadTimeout = 5 * time.Minute

// mysqlConfig parses a MySQL DSN and applies cometsync's defaults.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if mc.ReadTimeout == 0 {
		mc.ReadTimeout = DefaultReadTimeout
	}
	return mc, nil
}

// lost explains the MySQL driver's "invalid connection": the connection
// broke, or the database did not answer within readTimeout.
func lost(err error) error {
	if errors.Is(err, mysql.ErrInvalidConn) {
		return fmt.Errorf("%w: the connection broke, or the database did not answer within the DSN's readTimeout (%s unless set)",
			err, DefaultReadTimeout)
	}
	return err
}

// driverLogger hands the MySQL driver's messages to zap.
type driverLogger struct{ log *zap.Logger }

func (l driverLogger) Print(v ...any) { l.log.Warn(strings.TrimSpace(fmt.Sprint(v...))) }

func (c Config) validate() error {
	switch {
	case c.Driver != DriverMySQL && c.Driver != DriverSQLite:
		return fmt.Errorf("source.driver: %q is not supported (want %q or %q)", c.Driver, DriverMySQL, DriverSQLite)
	case c.DSN == "":
		return errors.New("source.dsn: empty")
	case strings.TrimSpace(c.Query) == "":
		return errors.New("source.query: empty")
	case c.Cursor == "":
		return errors.New("source.cursor.column: empty")
	case c.Tiebreaker == "":
		return errors.New("source.cursor.tiebreaker: empty")
	case c.Lag < 0:
		return fmt.Errorf("source.cursor.lag: %s is negative", c.Lag)
	case c.IntegerUnit != "" && perSecond[c.IntegerUnit] == 0:
		return fmt.Errorf("source.cursor.integer_unit: %q is not a unit (want %q, %q or %q)", c.IntegerUnit, UnitSeconds, UnitMilliseconds, UnitMicroseconds)
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
		var answered *mysql.MySQLError
		if err == nil || errors.As(err, &answered) || ctx.Err() != nil || limit < 0 || time.Now().Add(wait).After(deadline) {
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
func (s *Source) quote(name string) string {
	if s.cfg.Driver == DriverMySQL {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// ColumnError is a configured column that the query does not return: a
// config problem, found before anything is read.
type ColumnError struct {
	Key     string // the config key naming the column
	Column  string
	Columns []string // what the query returns
}

func (e *ColumnError) Error() string {
	return fmt.Sprintf("%s: %q is not a column of source.query (columns: %s)", e.Key, e.Column, strings.Join(e.Columns, ", "))
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
		return nil, fmt.Errorf("source.query: %w", err)
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("source.query: %w", err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
	}
	for _, want := range []struct{ field, name string }{
		{"source.cursor.column", s.cfg.Cursor},
		{"source.cursor.tiebreaker", s.cfg.Tiebreaker},
	} {
		if indexOf(names, want.name) < 0 {
			return nil, &ColumnError{Key: want.field, Column: want.name, Columns: names}
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
// row that has a cursor, is KindInt; anything else is KindText.
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

	var kind Kind
	if s.cfg.Driver == DriverMySQL {
		switch {
		case strings.Contains(dbType, "INT"):
			kind = KindInt
		case dbType == "DATETIME" || dbType == "TIMESTAMP" || dbType == "DATE":
			kind = KindText
			if s.parseTime {
				kind = KindTime
			}
		default:
			return KindNone, fmt.Errorf("source.cursor.column: %q has type %s; want an integer, DATETIME, TIMESTAMP or DATE column", s.cfg.Cursor, dbType)
		}
	} else {
		kind, err = s.sqliteCursorKind(ctx, dbType)
		if err != nil {
			return KindNone, err
		}
	}
	s.kind = kind
	return kind, nil
}

// sqliteCursorKind decides by the declared type, then by a stored value:
// SQLite lets a column declared DATETIME hold unix times.
func (s *Source) sqliteCursorKind(ctx context.Context, declType string) (Kind, error) {
	if strings.Contains(declType, "INT") {
		return KindInt, nil
	}
	var typ string
	err := s.db.GetContext(ctx, &typ, fmt.Sprintf("SELECT typeof(%s) FROM %s WHERE %s IS NOT NULL LIMIT 1", s.cursor, s.from, s.cursor))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return KindText, nil
	case err != nil:
		return KindNone, fmt.Errorf("source.cursor.column: %w", err)
	case typ == "integer":
		return KindInt, nil
	case typ == "text":
		return KindText, nil
	default:
		return KindNone, fmt.Errorf("source.cursor.column: %q holds %s values; want integers or 'YYYY-MM-DD HH:MM:SS.SSS' text", s.cfg.Cursor, typ)
	}
}

// UpperBound returns the database clock minus Lag, in the cursor's kind: the
// pass's fixed upper bound, to be taken once per pass and given to every
// ReadPage and Count of that pass. MariaDB: NOW(6) minus Lag for a date-time
// cursor, as the driver reads it; for an integer cursor, UTC_TIMESTAMP(6) as
// unix time minus Lag, in the unit Unit decides, rounded down. SQLite: UTC
// 'YYYY-MM-DD HH:MM:SS.SSS' text, or unix time in that unit. (SQLite's
// clock is this process's clock.) A configured unit the data contradicts is
// a *UnitError.
func (s *Source) UpperBound(ctx context.Context) (Value, error) {
	kind, err := s.CursorKind(ctx)
	if err != nil {
		return Value{}, err
	}
	lagMicros := s.cfg.Lag.Microseconds()
	if kind == KindInt {
		// The clock in microseconds; the rest is exact integer arithmetic.
		q := "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
		if s.cfg.Driver == DriverSQLite {
			q = "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000"
		}
		unit, err := s.Unit(ctx)
		if err != nil {
			return Value{}, err
		}
		var nowMicros int64
		if err := s.db.GetContext(ctx, &nowMicros, q); err != nil {
			return Value{}, fmt.Errorf("read the database clock: %w", lost(err))
		}
		return Value{Kind: KindInt, Int: floorDiv(nowMicros-lagMicros, 1_000_000/perSecond[unit.Unit])}, nil
	}

	var (
		raw any
		q   string
		arg []any
	)
	if s.cfg.Driver == DriverMySQL {
		// lagMicros is an int64, so formatting it into the SQL is safe, and
		// avoids a parameter whose type would decide the result's type.
		q = fmt.Sprintf("SELECT NOW(6) - INTERVAL %d MICROSECOND", lagMicros)
	} else {
		q = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', ?)"
		lagMillis := s.cfg.Lag.Milliseconds()
		arg = []any{fmt.Sprintf("-%d.%03d seconds", lagMillis/1000, lagMillis%1000)}
	}
	if err := s.db.QueryRowContext(ctx, q, arg...).Scan(&raw); err != nil {
		return Value{}, fmt.Errorf("read the database clock: %w", lost(err))
	}
	v, err := ValueOf(raw)
	if err != nil {
		return Value{}, fmt.Errorf("read the database clock: %w", lost(err))
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
// and not after the upper bound, and its arguments.
//
// MariaDB turns both branches of the OR into ranges of an index on
// (cursor, tiebreaker) and reads them in index order; a row constructor
// comparison, (c, t) > (?, ?), would be a full scan. The OR form is also
// what SQLite's planner turns into a range.
func (s *Source) keyset(after *Position, upper Value) (string, []any) {
	if after == nil {
		return fmt.Sprintf("%s <= ?", s.cursor), []any{upper.Arg()}
	}
	where := fmt.Sprintf("(%[1]s > ? OR (%[1]s = ? AND %[2]s > ?)) AND %[1]s <= ?", s.cursor, s.key)
	return where, []any{after.Cursor.Arg(), after.Cursor.Arg(), after.Key.Arg(), upper.Arg()}
}

// PageSQL returns the SQL ReadPage runs, for a first page (after false) or
// a page after a position; its arguments are the position's cursor, cursor
// again and key (when after), the upper bound, and the limit.
func (s *Source) PageSQL(after bool) string {
	var pos *Position
	if after {
		pos = &Position{}
	}
	where, _ := s.keyset(pos, Value{})
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s, %s LIMIT ?", s.columns, s.from, where, s.cursor, s.key)
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
		return nil, fmt.Errorf("read page: %w", lost(err))
	}
	if len(rows) > limit {
		return nil, fmt.Errorf("read page: the database returned %d rows for LIMIT %d", len(rows), limit)
	}
	return rows, nil
}

// ReadKeys re-reads the rows whose tiebreaker is one of keys, regardless of
// the position and the upper bound, in (cursor, tiebreaker) order; a key no
// row has is simply absent from the result.
func (s *Source) ReadKeys(ctx context.Context, keys []Value) ([]Row, error) {
	var out []Row
	for start := 0; start < len(keys); start += keysPerQuery {
		chunk := keys[start:min(start+keysPerQuery, len(keys))]
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k.Arg()
		}
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (?%s) ORDER BY %s, %s",
			s.columns, s.from, s.key, strings.Repeat(", ?", len(chunk)-1), s.cursor, s.key)
		rows, err := s.query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read rows by key: %w", lost(err))
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
		return 0, fmt.Errorf("count rows: %w", lost(err))
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
	if s.cfg.Driver == DriverSQLite {
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

// valueOf is ValueOf, refusing a time.Time from SQLite: it would be sent
// back in a form that compares wrongly with the stored text.
func (s *Source) valueOf(x any) (Value, error) {
	if _, ok := x.(time.Time); ok && s.cfg.Driver == DriverSQLite {
		return Value{}, errors.New("SQLite returned a time.Time; remove _texttotime from source.dsn so that cursors and keys are compared as the stored text")
	}
	return ValueOf(x)
}
