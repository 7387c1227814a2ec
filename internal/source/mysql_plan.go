package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// explain reads EXPLAIN of the page query and, from the note with the
// database's rewrite of the query, the table and columns behind the cursor
// and the tiebreaker, and that table's indexes.
func (mysqlDialect) explain(ctx context.Context, s *Source, after Position, upper Value, limit int) (PagePlan, error) {
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
