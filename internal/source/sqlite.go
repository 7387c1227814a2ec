package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DriverSQLite is SQLite, through modernc.org/sqlite.
const DriverSQLite = "sqlite"

func init() { dialects[DriverSQLite] = func() dialect { return sqliteDialect{} } }

// sqliteDialect is SQLite's SQL. Its clock is this process's clock.
type sqliteDialect struct{}

func (sqliteDialect) open(dsn string, _ *zap.Logger) (*sql.DB, error) {
	db, err := sql.Open(DriverSQLite, dsn)
	if err != nil {
		return nil, fmt.Errorf("open source database: %w", err)
	}
	return db, nil
}

func (sqliteDialect) quote(name string) string { return quoteDouble(name) }

func (sqliteDialect) placeholder(n int) string { return questionMarks(n) }

// selectList adds raw copies of the cursor and the tiebreaker:
// modernc.org/sqlite turns text in a column declared DATETIME into
// time.Time, and would send it back in Go's time.String() form, which
// compares wrongly with the stored text. An expression has no declared
// type, so these two come back exactly as stored.
func (sqliteDialect) selectList(cursor, key string) (string, bool) {
	return fmt.Sprintf("*, +%s AS cometsync_cursor, +%s AS cometsync_key", cursor, key), true
}

func (sqliteDialect) keysetAfter(cursor, key string) string { return orKeyset(cursor, key) }

// cursorKind decides by the declared type (INT in it is KindInt), then by a
// stored value: SQLite lets a column declared DATETIME hold unix times.
func (sqliteDialect) cursorKind(ctx context.Context, s *Source, declType string) (Kind, error) {
	if strings.Contains(declType, "INT") {
		return KindInt, nil
	}
	var typ string
	err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT typeof(%s) FROM %s WHERE %s IS NOT NULL LIMIT 1", s.cursor, s.from, s.cursor)).Scan(&typ)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return KindText, nil
	case err != nil:
		return KindNone, fmt.Errorf("%s: %w", s.cfg.key("cursor.column"), err)
	case typ == "integer":
		return KindInt, nil
	case typ == "text":
		return KindText, nil
	default:
		return KindNone, fmt.Errorf("%s: %q holds %s values; want integers or 'YYYY-MM-DD HH:MM:SS.SSS' text", s.cfg.key("cursor.column"), s.cfg.Cursor, typ)
	}
}

func (sqliteDialect) clockMicros() string {
	return "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000"
}

// upperBound is UTC 'YYYY-MM-DD HH:MM:SS.SSS' text minus the lag.
func (sqliteDialect) upperBound(_ string, lag time.Duration) (string, []any) {
	lagMillis := lag.Milliseconds()
	return "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', ?)", []any{fmt.Sprintf("-%d.%03d seconds", lagMillis/1000, lagMillis%1000)}
}

func (sqliteDialect) asText(col string) string { return col }

func (sqliteDialect) byteOrder(parts []string) string { return strings.Join(parts, " || ") }

func (sqliteDialect) minMax(col string) (string, string) {
	return "MIN(" + col + ")", "MAX(" + col + ")"
}

// valueOf refuses a time.Time: it would be sent back in a form that
// compares wrongly with the stored text.
func (sqliteDialect) valueOf(x any) (Value, error) {
	if _, ok := x.(time.Time); ok {
		return Value{}, errors.New("SQLite returned a time.Time; remove _texttotime from source.dsn so that cursors and keys are compared as the stored text")
	}
	return ValueOf(x)
}

// answered: none is told apart; Open retries any error within its timeout.
func (sqliteDialect) answered(error) bool { return false }

func (sqliteDialect) lost(err error) error { return err }

func (sqliteDialect) explain(context.Context, *Source, Position, Value, int) (PagePlan, error) {
	return PagePlan{}, ErrNoPlan
}
