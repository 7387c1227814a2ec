package source

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// dialect is what differs between databases: how to connect, quote, bind,
// read the clock and the plan, and tell a lost connection from an answer.
// Each database is one file (mysql.go, postgres.go, sqlite.go) that
// registers its dialect in dialects; the rest of the package is the same
// for all of them.
type dialect interface {
	// open returns the database for dsn, with the dialect's defaults
	// applied; the driver's own messages go to log. It does not connect.
	open(dsn string, log *zap.Logger) (*sql.DB, error)
	// quote quotes a column name.
	quote(name string) string
	// placeholder is the n-th (from 1) argument's placeholder: ? or $n.
	placeholder(n int) string
	// selectList is the select list of every read of rows given the quoted
	// cursor and tiebreaker; rawCopies reports that it ends with a copy of
	// each, which the rows' Cursor and Key are read from.
	selectList(cursor, key string) (list string, rawCopies bool)
	// keysetAfter is the WHERE clause of rows after a position and not
	// after the upper bound, over the quoted cursor and tiebreaker, whose
	// arguments 1 to 4 are the position's cursor, its cursor again, its
	// key and the upper bound.
	keysetAfter(cursor, key string) string
	// cursorKind decides the cursor's kind from its database type name.
	cursorKind(ctx context.Context, s *Source, dbType string) (Kind, error)
	// clockMicros is a query for the database clock as unix microseconds.
	clockMicros() string
	// upperBound is a query for the database clock minus lag, in the form
	// a date-time cursor of type dbType is compared with, and its
	// arguments.
	upperBound(dbType string, lag time.Duration) (string, []any)
	// asText is a SQL expression of col as text, for LOWER and TRIM.
	asText(col string) string
	// byteOrder is a SQL expression that sorts the text of the parts,
	// concatenated, in byte order (as Go compares strings).
	byteOrder(parts []string) string
	// minMax are SQL expressions of the smallest and largest col of a group.
	minMax(col string) (lowest, highest string)
	// valueOf turns a value the driver returned into a cursor or key Value.
	valueOf(x any) (Value, error)
	// answered reports whether err is the database's own answer (access
	// denied, a syntax error), as opposed to no connection at all.
	answered(err error) bool
	// lost explains an error that means the connection broke or the
	// database stopped answering; other errors come back as they are.
	lost(err error) error
	// explain explains the page query after a position.
	explain(ctx context.Context, s *Source, after Position, upper Value, limit int) (PagePlan, error)
}

// dialects makes a dialect for each Config.Driver; each dialect's file
// adds itself.
var dialects = map[string]func() dialect{}

// driverNames lists the supported drivers, for messages.
func driverNames() string {
	names := make([]string, 0, len(dialects))
	for n := range dialects {
		names = append(names, fmt.Sprintf("%q", n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// questionMarks is the placeholder of dialects that bind by position with ?.
func questionMarks(int) string { return "?" }

// quoteDouble quotes an identifier in double quotes (standard SQL).
func quoteDouble(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// orKeyset is keysetAfter in the form MariaDB and SQLite turn into index
// ranges: both branches of the OR become ranges of an index on (cursor,
// tiebreaker), read in index order; a row constructor comparison, (c, t) >
// (?, ?), would be a full scan there.
func orKeyset(cursor, key string) string {
	return fmt.Sprintf("(%[1]s > ? OR (%[1]s = ? AND %[2]s > ?)) AND %[1]s <= ?", cursor, key)
}
