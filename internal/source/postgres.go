package source

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
)

// DriverPostgres is PostgreSQL, through github.com/jackc/pgx/v5/stdlib.
const DriverPostgres = "postgres"

func init() { dialects[DriverPostgres] = func() dialect { return &postgresDialect{} } }

// postgresDialect is PostgreSQL's SQL.
type postgresDialect struct {
	readTimeout time.Duration // once open has run
}

// The defaults a PostgreSQL DSN gets when it sets none of its own.
const (
	// pgConnectTimeout bounds one attempt to connect (connect_timeout).
	pgConnectTimeout = 10 * time.Second
	// pgKeepAlive is the TCP keepalive interval: a peer that vanished is
	// noticed on an idle connection too.
	pgKeepAlive = 30 * time.Second
)

// PostgresConfig parses a PostgreSQL DSN, in either of pgx's forms, and
// applies cometsync's defaults: statement_timeout DefaultReadTimeout, so
// the server ends a statement that runs too long; connect_timeout 10 s; and
// a read timeout a little longer than statement_timeout on every read from
// the connection, so that a database that stops answering (a frozen server,
// a partition), which cannot send that error, fails the read instead of
// hanging the pass. It returns the config and that read timeout.
func PostgresConfig(dsn string) (*pgx.ConnConfig, time.Duration, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, 0, err
	}
	st, ok := cfg.RuntimeParams["statement_timeout"]
	if !ok {
		st = strconv.FormatInt(DefaultReadTimeout.Milliseconds(), 10)
		cfg.RuntimeParams["statement_timeout"] = st
	}
	timeout, err := parsePGDuration(st)
	if err != nil {
		return nil, 0, fmt.Errorf("statement_timeout %q: %w", st, err)
	}
	if timeout == 0 { // no limit on the server: keep one on the client
		timeout = DefaultReadTimeout
	}
	readTimeout := timeout + timeout/10 + time.Second
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "cometsync"
	}
	dialer := &net.Dialer{KeepAlive: pgKeepAlive, Timeout: cfg.ConnectTimeout}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &readDeadlineConn{Conn: c, timeout: readTimeout}, nil
	}
	return cfg, readTimeout, nil
}

// parsePGDuration reads a PostgreSQL time setting: milliseconds, or a
// number with a unit (us, ms, s, min, h, d).
func parsePGDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	units := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
		"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i > 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if unit, ok := units[strings.TrimSpace(s[i:])]; ok && err == nil {
			return time.Duration(n * float64(unit)), nil
		}
	}
	return 0, errors.New("want milliseconds, or a number and a unit (ms, s, min, h)")
}

// readDeadlineConn gives every read a deadline: the client-side end of a
// statement the server cannot end itself.
type readDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *readDeadlineConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (d *postgresDialect) open(dsn string, _ *zap.Logger) (*sql.DB, error) {
	cfg, readTimeout, err := PostgresConfig(dsn)
	if err != nil {
		// pgx's messages hide the password.
		return nil, fmt.Errorf("source.dsn: %w", err)
	}
	d.readTimeout = readTimeout
	return stdlib.OpenDB(*cfg), nil
}

func (*postgresDialect) quote(name string) string { return quoteDouble(name) }

func (*postgresDialect) placeholder(n int) string { return "$" + strconv.Itoa(n) }

func (*postgresDialect) selectList(string, string) (string, bool) { return "*", false }

// keysetAfter is a row comparison, which PostgreSQL turns into one range of
// an index on (cursor, tiebreaker), unlike the OR form, whose second branch
// it can only filter. $2 (the cursor again) bounds the range for an index
// on the cursor alone.
func (*postgresDialect) keysetAfter(cursor, key string) string {
	return fmt.Sprintf("(%[1]s, %[2]s) > ($1, $3) AND %[1]s >= $2 AND %[1]s <= $4", cursor, key)
}

// cursorKind: smallint, integer and bigint are KindInt; timestamptz,
// timestamp and date are KindTime (pgx reads them as time.Time, and sends a
// time.Time back as the parameter's type, at full precision).
func (*postgresDialect) cursorKind(_ context.Context, s *Source, dbType string) (Kind, error) {
	switch dbType {
	case "INT2", "INT4", "INT8":
		return KindInt, nil
	case "TIMESTAMPTZ", "TIMESTAMP", "DATE":
		return KindTime, nil
	}
	return KindNone, fmt.Errorf("%s: %q has type %s; want a bigint, integer, timestamptz, timestamp or date column",
		s.cfg.key("cursor.column"), s.cfg.Cursor, strings.ToLower(dbType))
}

// clockMicros uses clock_timestamp(), the statement's clock: now() is the
// transaction's start.
func (*postgresDialect) clockMicros() string {
	return "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
}

// upperBound is clock_timestamp() minus the lag: a timestamptz for a
// timestamptz cursor; for timestamp and date cursors the session zone's wall
// clock as a timestamp, which pgx reads, and sends back, as it is.
func (*postgresDialect) upperBound(dbType string, lag time.Duration) (string, []any) {
	q := fmt.Sprintf("clock_timestamp() - %d * interval '1 microsecond'", lag.Microseconds())
	if dbType != "TIMESTAMPTZ" {
		q = "(" + q + ")::timestamp"
	}
	return "SELECT " + q, nil
}

func (*postgresDialect) asText(col string) string { return "CAST(" + col + " AS text)" }

func (*postgresDialect) byteOrder(parts []string) string {
	return "(" + strings.Join(parts, " || ") + `) COLLATE "C"`
}

// minMax orders by the column's own type: PostgreSQL has no MIN of a uuid.
func (*postgresDialect) minMax(col string) (string, string) {
	return fmt.Sprintf("(array_agg(%[1]s ORDER BY %[1]s))[1]", col), fmt.Sprintf("(array_agg(%[1]s ORDER BY %[1]s DESC))[1]", col)
}

func (*postgresDialect) valueOf(x any) (Value, error) { return ValueOf(x) }

func (*postgresDialect) answered(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// lost explains an error that is not the server's answer: the connection
// broke, or it did not answer within the read timeout.
func (d *postgresDialect) lost(err error) error {
	var ne net.Error
	if err == nil || d.answered(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) ||
		pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed") {
		return fmt.Errorf("%w: the connection broke, or the database did not answer within %s (statement_timeout in the DSN, plus a margin)",
			err, d.readTimeout)
	}
	return err
}
