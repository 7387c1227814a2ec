package source

import (
	"context"
	"fmt"
)

// DuplicateKeys returns the values of column, trimmed and lowercased (as
// CometChat and the mapping treat a guid), that more than one row of the
// query with a cursor not after upper has. It reads the whole range once,
// grouped by the database; what it returns is usually small (a set of
// collisions), not the table.
func (s *Source) DuplicateKeys(ctx context.Context, column string, upper Value) (map[string]bool, error) {
	if upper.IsZero() {
		return nil, fmt.Errorf("find duplicate keys: no upper bound (take one with UpperBound)")
	}
	q := fmt.Sprintf("SELECT k FROM (SELECT LOWER(TRIM(%s)) AS k FROM %s WHERE %s <= ?) AS cometsync_keys GROUP BY k HAVING COUNT(*) > 1",
		s.quote(column), s.from, s.cursor)
	rows, err := s.db.QueryContext(ctx, q, upper.Arg())
	if err != nil {
		return nil, fmt.Errorf("find duplicate keys of %s: %w", column, lost(err))
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k *string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("find duplicate keys of %s: %w", column, err)
		}
		if k != nil {
			out[*k] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find duplicate keys of %s: %w", column, lost(err))
	}
	return out, nil
}
