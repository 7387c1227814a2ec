package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
)

// DriverMySQL is MariaDB or MySQL, through github.com/go-sql-driver/mysql.
const DriverMySQL = "mysql"

func init() { dialects[DriverMySQL] = func() dialect { return &mysqlDialect{} } }

// mysqlDialect is MariaDB's and MySQL's SQL.
type mysqlDialect struct {
	parseTime bool // the DSN's parseTime, once open has run
}

// DefaultReadTimeout is the MySQL driver's readTimeout when the DSN sets
// none: a database that stops answering without closing the connection (a
// frozen server, a partition) fails the read instead of hanging the pass,
// and the daemon, forever. Long enough for any query a pass runs. It is
// PostgreSQL's default statement_timeout too.
const DefaultReadTimeout = 5 * time.Minute

func (d *mysqlDialect) open(dsn string, log *zap.Logger) (*sql.DB, error) {
	mc, err := mysqlConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("source.dsn: %w", err)
	}
	d.parseTime = mc.ParseTime
	// The driver's own messages ("closing bad idle connection" after a
	// database restart) go to the process's log, not as plain text into
	// a JSON log stream.
	mc.Logger = driverLogger{log.Named("mysql")}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("source.dsn: %w", err)
	}
	return sql.OpenDB(conn), nil
}

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

// driverLogger hands the MySQL driver's messages to zap.
type driverLogger struct{ log *zap.Logger }

func (l driverLogger) Print(v ...any) { l.log.Warn(strings.TrimSpace(fmt.Sprint(v...))) }

func (*mysqlDialect) quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

func (*mysqlDialect) placeholder(n int) string { return questionMarks(n) }

func (*mysqlDialect) selectList(string, string) (string, bool) { return "*", false }

func (*mysqlDialect) keysetAfter(cursor, key string) string { return orKeyset(cursor, key) }

// cursorKind: any integer type is KindInt; DATETIME, TIMESTAMP and DATE are
// KindTime with parseTime=true, else KindText.
func (d *mysqlDialect) cursorKind(_ context.Context, s *Source, dbType string) (Kind, error) {
	switch {
	case strings.Contains(dbType, "INT"):
		return KindInt, nil
	case dbType == "DATETIME" || dbType == "TIMESTAMP" || dbType == "DATE":
		if d.parseTime {
			return KindTime, nil
		}
		return KindText, nil
	}
	return KindNone, fmt.Errorf("%s: %q has type %s; want an integer, DATETIME, TIMESTAMP or DATE column", s.cfg.key("cursor.column"), s.cfg.Cursor, dbType)
}

func (*mysqlDialect) clockMicros() string {
	return "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
}

// upperBound is NOW(6) minus the lag, as the driver reads a DATETIME.
func (*mysqlDialect) upperBound(_ string, lag time.Duration) (string, []any) {
	// An int64 formatted into the SQL is safe, and avoids a parameter
	// whose type would decide the result's type.
	return fmt.Sprintf("SELECT NOW(6) - INTERVAL %d MICROSECOND", lag.Microseconds()), nil
}

func (*mysqlDialect) asText(col string) string { return col }

func (*mysqlDialect) byteOrder(parts []string) string {
	return "CAST(CONCAT(" + strings.Join(parts, ", ") + ") AS BINARY)"
}

func (*mysqlDialect) minMax(col string) (string, string) {
	return "MIN(" + col + ")", "MAX(" + col + ")"
}

func (*mysqlDialect) valueOf(x any) (Value, error) { return ValueOf(x) }

func (*mysqlDialect) answered(err error) bool {
	var answered *mysql.MySQLError
	return errors.As(err, &answered)
}

// lost explains the MySQL driver's "invalid connection": the connection
// broke, or the database did not answer within readTimeout.
func (*mysqlDialect) lost(err error) error {
	if errors.Is(err, mysql.ErrInvalidConn) {
		return fmt.Errorf("%w: the connection broke, or the database did not answer within the DSN's readTimeout (%s unless set)",
			err, DefaultReadTimeout)
	}
	return err
}
