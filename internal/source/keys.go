package source

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Keys reads every row of the query (whatever its cursor) and calls fn
// with the values of the key columns, as text, in the byte order of the
// key the mapping makes of them: each trimmed and lowercased, joined by
// sep. It reads keys only, in one statement, for a reconcile's merge with
// the keys the state holds; fn must be quick, as the result set stays open
// while it runs. NULL parts are passed as "".
func (s *Source) Keys(ctx context.Context, columns []string, sep string, fn func(parts []string) error) error {
	if len(columns) == 0 {
		return fmt.Errorf("list keys: no key column")
	}
	sel := make([]string, len(columns))
	norm := make([]string, len(columns))
	for i, c := range columns {
		q := s.quote(c)
		sel[i] = q
		norm[i] = fmt.Sprintf("COALESCE(%s, '')", s.asKey(q))
	}
	joined := make([]string, 0, 2*len(norm))
	for i, n := range norm {
		if i > 0 {
			joined = append(joined, quoteText(sep))
		}
		joined = append(joined, n)
	}
	order := s.d.byteOrder(joined)
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(sel, ", "), s.from, order)
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("list keys: %w", s.lost(err))
	}
	defer rows.Close()
	return eachKey(rows, len(columns), false, fn, func(err error) error {
		return fmt.Errorf("list keys: %w", s.lost(err))
	})
}

// KeysUpTo reads the rows of the query with a cursor not after upper and
// calls fn with the values of the key columns, as text, each trimmed and
// lowercased (as CometChat and the mapping treat ids), in no order. A row
// with a NULL part is left out: it is invalid anyway. It is one plain
// statement with no GROUP BY or ORDER BY, so the database streams it (a
// million (guid, uid) pairs of a join in under a second, where grouping
// them took MariaDB 25 s); fn must be quick, as the result set stays open
// while it runs, and parts is reused between calls.
func (s *Source) KeysUpTo(ctx context.Context, columns []string, upper Value, fn func(parts []string) error) error {
	if upper.IsZero() {
		return fmt.Errorf("list keys: no upper bound (take one with UpperBound)")
	}
	if len(columns) == 0 {
		return fmt.Errorf("list keys: no key column")
	}
	keys := make([]string, len(columns))
	for i, c := range columns {
		keys[i] = s.asKey(s.quote(c))
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s <= %s", strings.Join(keys, ", "), s.from, s.cursor, s.ph(1))
	what := strings.Join(columns, ", ")
	rows, err := s.db.QueryContext(ctx, q, upper.Arg())
	if err != nil {
		return fmt.Errorf("list keys of %s: %w", what, s.lost(err))
	}
	defer rows.Close()
	return eachKey(rows, len(columns), true, fn, func(err error) error {
		return fmt.Errorf("list keys of %s: %w", what, s.lost(err))
	})
}

// eachKey calls fn with each row of rows, n columns as text, reusing parts
// between calls. A NULL part leaves the row out when skipNull is set, and
// is "" otherwise. An error of fn is returned as it is, one of reading
// through wrap.
func eachKey(rows *sql.Rows, n int, skipNull bool, fn func(parts []string) error, wrap func(error) error) error {
	vals := make([]sql.RawBytes, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	parts := make([]string, n)
rows:
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return wrap(err)
		}
		for i, v := range vals {
			if v == nil && skipNull {
				continue rows
			}
			parts[i] = string(v)
		}
		if err := fn(parts); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return wrap(err)
	}
	return nil
}

// asKey is a SQL expression of the quoted column col as the mapping
// compares ids: as text, trimmed and lowercased.
func (s *Source) asKey(col string) string {
	return fmt.Sprintf("LOWER(TRIM(%s))", s.d.asText(col))
}

// quoteText is a SQL string literal of s.
func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
