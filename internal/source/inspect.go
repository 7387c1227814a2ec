package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
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
var ErrNoPlan = errors.New("explain: only MySQL and MariaDB plans are read")

// PagePlan is how the database would run ReadPage's query for a page after
// a position, as EXPLAIN tells it.
type PagePlan struct {
	// Table is the table that holds the cursor, as the plan names it (the
	// query's alias for it), or the plan's first table when that is not
	// known.
	Table string
	// Access is EXPLAIN's access type for Table: "ALL" is a full scan;
	// "range", "ref" or "index" use an index.
	Access string
	// Key is the index used for Table; "" when none is.
	Key string
	// Extra is EXPLAIN's Extra column for Table, e.g. "Using filesort".
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
}

// FullScan reports whether every page would read the whole table (or the
// whole query): no index serves the keyset.
func (p PagePlan) FullScan() bool { return p.Materialized || p.Access == "ALL" }

// Sorts reports whether the plan sorts the rows it reads (a filesort).
func (p PagePlan) Sorts() bool { return strings.Contains(p.Extra, "filesort") }

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
// after the position, up to upper. For MySQL and MariaDB only: other drivers
// return ErrNoPlan.
func (s *Source) ExplainPage(ctx context.Context, after Position, upper Value, limit int) (PagePlan, error) {
	if s.cfg.Driver != DriverMySQL {
		return PagePlan{}, ErrNoPlan
	}
	_, args := s.keyset(&after, upper)
	args = append(args, limit)
	// One connection: SHOW WARNINGS reads the note its EXPLAIN left.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return PagePlan{}, fmt.Errorf("explain: %w", err)
	}
	defer conn.Close()
	// MariaDB writes its rewrite of the query as a note only for EXPLAIN
	// EXTENDED, which MySQL 8 no longer accepts (its EXPLAIN always does).
	steps, err := explainRows(ctx, conn, "EXPLAIN EXTENDED "+s.PageSQL(true), args)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1064 { // syntax error
		steps, err = explainRows(ctx, conn, "EXPLAIN "+s.PageSQL(true), args)
	}
	if err != nil {
		return PagePlan{}, fmt.Errorf("explain: %w", err)
	}
	if len(steps) == 0 {
		return PagePlan{}, errors.New("explain: no plan")
	}
	var plan PagePlan
	alias, schema := "", ""
	if note, err := rewriteNote(ctx, conn); err == nil {
		alias, plan.BaseTable, plan.CursorColumn, plan.TiebreakerColumn = orderByColumns(note)
		schema = schemaOf(note, plan.BaseTable)
	}
	step := steps[0]
	for _, st := range steps {
		if alias != "" && st["table"] == alias {
			step = st
		}
		if strings.HasPrefix(st["table"], "<derived") {
			plan.Materialized = true
		}
	}
	plan.Table, plan.Access, plan.Key, plan.Extra = step["table"], step["type"], step["key"], step["Extra"]
	plan.Rows, _ = strconv.ParseInt(step["rows"], 10, 64)
	if plan.Materialized {
		plan.BaseTable, plan.CursorColumn, plan.TiebreakerColumn = "", "", ""
	}
	if plan.BaseTable != "" {
		if plan.Engine, plan.Indexes, err = tableIndexes(ctx, conn, schema, plan.BaseTable); err != nil {
			return PagePlan{}, fmt.Errorf("explain: read the indexes of %s: %w", plan.BaseTable, err)
		}
	}
	return plan, nil
}

// tableIndexes reads a table's engine and its indexes' columns, in
// schema ("" for the current database).
func tableIndexes(ctx context.Context, conn *sql.Conn, schema, table string) (string, map[string][]string, error) {
	var engine sql.NullString
	err := conn.QueryRowContext(ctx, "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ?",
		schema, table).Scan(&engine)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", nil, err
	}
	rows, err := conn.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, schema, table)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	indexes := map[string][]string{}
	for rows.Next() {
		var name string
		var col sql.NullString // NULL for an index on an expression
		if err := rows.Scan(&name, &col); err != nil {
			return "", nil, err
		}
		indexes[name] = append(indexes[name], col.String)
	}
	return engine.String, indexes, rows.Err()
}

// schemaOf finds, in the rewritten query, the database that qualifies
// table: `db`.`table`; "" when it is not named.
func schemaOf(note, table string) string {
	if table == "" {
		return ""
	}
	for _, c := range identifierChains(note) {
		if n := len(c.parts); n == 2 && c.parts[1] == table {
			return c.parts[0]
		}
	}
	return ""
}

// explainRows runs an EXPLAIN and returns its rows by column name (NULL is "").
func explainRows(ctx context.Context, conn *sql.Conn, q string, args []any) ([]map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]string, len(cols))
		for i, c := range cols {
			row[c] = vals[i].String
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// rewriteNote returns the note (code 1003) in which the database shows the
// query as it rewrote it: fully qualified names, derived tables merged.
func rewriteNote(ctx context.Context, conn *sql.Conn) (string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return "", err
		}
		if code == 1003 {
			return msg, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no rewritten query")
}

// orderByColumns reads, from the rewritten page query, the table alias and
// the columns its ORDER BY resolves to, and the table behind the alias:
//
//	select … from `db`.`chat_groups` `g` left join … order by `db`.`g`.`updated_at`,`db`.`g`.`id` limit 100
//
// gives g, chat_groups, updated_at, id. Anything else (an expression in the
// ORDER BY, two tables) gives "".
func orderByColumns(note string) (alias, table, cursor, tiebreaker string) {
	at := strings.LastIndex(note, " order by ")
	if at < 0 {
		return "", "", "", ""
	}
	// Exactly two plain columns: `…`.`alias`.`column`,`…`.`alias`.`column`.
	names := identifierChains(note)
	var order []chain
	for _, n := range names {
		if n.at > at {
			order = append(order, n)
		}
	}
	start := at + len(" order by ")
	if len(order) < 2 || order[0].at != start || note[order[0].end:order[1].at] != "," ||
		len(order[0].parts) < 2 || len(order[1].parts) < 2 {
		return "", "", "", ""
	}
	if rest := note[order[1].end:]; rest != "" && !strings.HasPrefix(rest, " limit") {
		return "", "", "", ""
	}
	c, t := order[0].parts, order[1].parts
	alias = c[len(c)-2]
	if t[len(t)-2] != alias {
		return "", "", "", ""
	}
	// The FROM clause names the table, then its alias: `db`.`table` `alias`.
	table = alias
	for i := 0; i+1 < len(names); i++ {
		n, next := names[i], names[i+1]
		if n.at < at && len(next.parts) == 1 && next.parts[0] == alias && strings.TrimSpace(note[n.end:next.at]) == "" {
			table = n.parts[len(n.parts)-1]
			break
		}
	}
	return alias, table, c[len(c)-1], t[len(t)-1]
}

// chain is a dotted run of backquoted names, `a`.`b`.`c`, found at
// note[at:end].
type chain struct {
	parts   []string
	at, end int
}

// identifierChains finds the backquoted name chains of SQL text, skipping
// string literals.
func identifierChains(q string) []chain {
	var out []chain
	for i := 0; i < len(q); {
		switch q[i] {
		case '\'':
			i = skipQuoted(q, i, '\'')
		case '`':
			c := chain{at: i}
			for i < len(q) && q[i] == '`' {
				end := skipQuoted(q, i, '`')
				c.parts = append(c.parts, strings.ReplaceAll(q[i+1:end-1], "``", "`"))
				i = end
				if i+1 < len(q) && q[i] == '.' && q[i+1] == '`' {
					i++
				}
			}
			c.end = i
			out = append(out, c)
		default:
			i++
		}
	}
	return out
}

// skipQuoted returns the index after the quoted text that starts at q[i],
// whose quote doubles (or, in strings, a backslash escapes) inside it.
func skipQuoted(q string, i int, quote byte) int {
	for j := i + 1; j < len(q); j++ {
		switch {
		case q[j] == '\\' && quote == '\'':
			j++
		case q[j] == quote && j+1 < len(q) && q[j+1] == quote:
			j++
		case q[j] == quote:
			return j + 1
		}
	}
	return len(q)
}
