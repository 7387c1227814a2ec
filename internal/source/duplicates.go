package source

import (
	"context"
	"fmt"
	"strings"
)

// DuplicateKeys returns the values of columns, trimmed and lowercased (as
// CometChat and the mapping treat ids), that more than one row of the query
// with a cursor not after upper has. It reads the whole range once,
// grouped by the database; what it returns is usually small (a set of
// collisions), not the table. A NULL in a key is left out: such a row is
// invalid anyway.
func (s *Source) DuplicateKeys(ctx context.Context, columns []string, upper Value) ([][]string, error) {
	if upper.IsZero() {
		return nil, fmt.Errorf("find duplicate keys: no upper bound (take one with UpperBound)")
	}
	if len(columns) == 0 {
		return nil, fmt.Errorf("find duplicate keys: no key column")
	}
	keys := make([]string, len(columns))
	names := make([]string, len(columns))
	for i, c := range columns {
		keys[i] = fmt.Sprintf("LOWER(TRIM(%s)) AS k%d", s.quote(c), i)
		names[i] = fmt.Sprintf("k%d", i)
	}
	list := strings.Join(names, ", ")
	q := fmt.Sprintf("SELECT %s FROM (SELECT %s FROM %s WHERE %s <= ?) AS cometsync_keys GROUP BY %s HAVING COUNT(*) > 1",
		list, strings.Join(keys, ", "), s.from, s.cursor, list)
	what := strings.Join(columns, ", ")
	rows, err := s.db.QueryContext(ctx, q, upper.Arg())
	if err != nil {
		return nil, fmt.Errorf("find duplicate keys of %s: %w", what, lost(err))
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]*string, len(columns))
		ptrs := make([]any, len(columns))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("find duplicate keys of %s: %w", what, err)
		}
		parts := make([]string, len(columns))
		null := false
		for i, v := range vals {
			if v == nil {
				null = true
				break
			}
			parts[i] = *v
		}
		if !null {
			out = append(out, parts)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find duplicate keys of %s: %w", what, lost(err))
	}
	return out, nil
}
