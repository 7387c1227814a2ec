package source

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// NullCursors counts the query's rows whose cursor is NULL. ReadPage and
// Count never see them (NULL is neither before nor after any position), so
// they are never synced until the cursor column has a value.
func (s *Source) NullCursors(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s IS NULL", s.from, s.cursor)); err != nil {
		return 0, fmt.Errorf("count rows with a NULL cursor: %w", err)
	}
	return n, nil
}

// ErrNoPlan is returned by ExplainPage for a driver whose plans it cannot
// read (SQLite).
var ErrNoPlan = errors.New("explain: only MySQL, MariaDB and PostgreSQL plans are read")

// PagePlan is how the database would run ReadPage's query for a page after
// a position, as EXPLAIN tells it.
type PagePlan struct {
	// Table is the table that holds the cursor, as the plan names it (the
	// query's alias for it), or the plan's first table when that is not
	// known.
	Table string
	// Access is EXPLAIN's access type for Table: "ALL" is a full scan;
	// "range", "ref" or "index" use an index. PostgreSQL: the scan node's
	// type, "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan".
	Access string
	// Key is the index used for Table; "" when none is.
	Key string
	// Extra is EXPLAIN's Extra column for Table, e.g. "Using filesort";
	// PostgreSQL: its sort nodes, e.g. "Sort (g.updated_at, g.id)".
	Extra string
	// Materialized reports that the query is not merged into the page
	// query: every page builds all of the query's rows first (GROUP BY,
	// DISTINCT, LIMIT, UNION or an aggregate in the query).
	Materialized bool
	// BaseTable, CursorColumn and TiebreakerColumn are the table and its
	// columns that the cursor and the tiebreaker are, read from the
	// database's rewrite of the query; "" when they are not plain columns
	// of one table (or the database does not say).
	BaseTable, CursorColumn, TiebreakerColumn string
	// Rows is EXPLAIN's estimate of the rows read from Table for one page:
	// the rows each page sorts when the plan is not in index order.
	Rows int64
	// Engine is BaseTable's storage engine, e.g. "InnoDB"; Indexes are its
	// indexes by name ("PRIMARY" for the primary key), each its columns in
	// order. Both are empty when BaseTable is.
	Engine  string
	Indexes map[string][]string

	sorted bool // a sort node in a PostgreSQL plan
}

// FullScan reports whether every page would read the whole table (or the
// whole query): no index serves the keyset.
func (p PagePlan) FullScan() bool {
	return p.Materialized || p.Access == "ALL" || p.Access == "Seq Scan"
}

// Sorts reports whether the plan sorts the rows it reads (a filesort).
func (p PagePlan) Sorts() bool { return p.sorted || strings.Contains(p.Extra, "filesort") }

// InIndexOrder reports whether a page is read in the order of an index on
// (cursor, tiebreaker), without sorting: the only plan whose cost follows
// the page, not the table. An index on the cursor alone counts on InnoDB
// when the tiebreaker is the primary key, which InnoDB appends to it.
func (p PagePlan) InIndexOrder() bool {
	return !p.Materialized && !p.Sorts() && p.Key != "" && p.keysetIndex(p.Indexes[p.Key])
}

// KeysetIndex returns the name of an index of BaseTable that serves the
// keyset (see InIndexOrder), used or not; "" when it has none.
func (p PagePlan) KeysetIndex() string {
	names := make([]string, 0, len(p.Indexes))
	for name := range p.Indexes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if p.keysetIndex(p.Indexes[name]) {
			return name
		}
	}
	return ""
}

// keysetIndex reports whether an index on cols is read in (cursor,
// tiebreaker) order.
func (p PagePlan) keysetIndex(cols []string) bool {
	if p.CursorColumn == "" || len(cols) == 0 || !strings.EqualFold(cols[0], p.CursorColumn) {
		return false
	}
	if len(cols) >= 2 {
		return strings.EqualFold(cols[1], p.TiebreakerColumn)
	}
	pk := p.Indexes["PRIMARY"]
	return strings.EqualFold(p.Engine, "InnoDB") && len(pk) == 1 && strings.EqualFold(pk[0], p.TiebreakerColumn)
}

// ExplainPage explains the query ReadPage runs (PageSQL(true)) for the page
// after the position, up to upper: MySQL and MariaDB from EXPLAIN and the
// rewritten query, PostgreSQL from EXPLAIN (FORMAT JSON). SQLite returns
// ErrNoPlan.
func (s *Source) ExplainPage(ctx context.Context, after Position, upper Value, limit int) (PagePlan, error) {
	return s.d.explain(ctx, s, after, upper, limit)
}
