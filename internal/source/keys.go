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
		norm[i] = fmt.Sprintf("COALESCE(LOWER(TRIM(%s)), '')", s.d.asText(q))
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
	vals := make([]any, len(columns))
	ptrs := make([]any, len(columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	parts := make([]string, len(columns))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("list keys: %w", s.lost(err))
		}
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				parts[i] = ""
			case []byte:
				parts[i] = string(x)
			default:
				parts[i] = fmt.Sprint(x)
			}
		}
		if err := fn(parts); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list keys: %w", s.lost(err))
	}
	return nil
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
		keys[i] = fmt.Sprintf("LOWER(TRIM(%s))", s.d.asText(s.quote(c)))
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s <= %s", strings.Join(keys, ", "), s.from, s.cursor, s.ph(1))
	what := strings.Join(columns, ", ")
	rows, err := s.db.QueryContext(ctx, q, upper.Arg())
	if err != nil {
		return fmt.Errorf("list keys of %s: %w", what, s.lost(err))
	}
	defer rows.Close()
	vals := make([]sql.RawBytes, len(columns))
	ptrs := make([]any, len(columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	parts := make([]string, len(columns))
rows:
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("list keys of %s: %w", what, s.lost(err))
		}
		for i, v := range vals {
			if v == nil {
				continue rows
			}
			parts[i] = string(v)
		}
		if err := fn(parts); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list keys of %s: %w", what, s.lost(err))
	}
	return nil
}

// quoteText is a SQL string literal of s.
func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
