package source

import (
	"context"
	"fmt"
	"strings"
)

// Duplicates are the values of a column that more than one row of the
// query holds, compared as the mapping compares guids: trimmed and
// lowercased.
type Duplicates struct {
	// Values counts the distinct values more than one row holds, and Rows
	// the rows that hold them.
	Values, Rows int64
	// Examples are the first few of them.
	Examples []Duplicate
}

// Duplicate is one value more than one row holds.
type Duplicate struct {
	Value string // trimmed and lowercased
	Rows  int64
	// First and Last are the smallest and largest tiebreaker of its rows.
	First, Last Value
}

// Duplicates groups the query's rows that have a cursor by column (a
// result column, such as the one mapped to guid), trimmed and lowercased,
// and returns the values that more than one row holds, with up to examples
// of them. It reads the whole query: bound it with ctx.
func (s *Source) Duplicates(ctx context.Context, column string, examples int) (Duplicates, error) {
	col := s.quote(column)
	norm := fmt.Sprintf("LOWER(TRIM(%s))", s.d.asText(col))
	lowest, highest := s.d.minMax(s.key)
	q := fmt.Sprintf(`SELECT %[1]s, COUNT(*), %[2]s, %[3]s FROM %[4]s WHERE %[5]s IS NOT NULL AND %[6]s IS NOT NULL
		GROUP BY %[1]s HAVING COUNT(*) > 1`, norm, lowest, highest, s.from, s.cursor, col)
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return Duplicates{}, fmt.Errorf("find duplicate values of %s: %w", column, s.lost(err))
	}
	defer rows.Close()
	var d Duplicates
	for rows.Next() {
		var (
			dup         Duplicate
			value       any
			first, last any
		)
		if err := rows.Scan(&value, &dup.Rows, &first, &last); err != nil {
			return Duplicates{}, fmt.Errorf("find duplicate values of %s: %w", column, s.lost(err))
		}
		d.Values++
		d.Rows += dup.Rows
		if len(d.Examples) >= examples {
			continue
		}
		dup.Value = fmt.Sprint(value)
		if b, ok := value.([]byte); ok {
			dup.Value = string(b)
		}
		if dup.First, err = s.valueOf(first); err != nil {
			return Duplicates{}, fmt.Errorf("find duplicate values of %s: tiebreaker: %w", column, err)
		}
		if dup.Last, err = s.valueOf(last); err != nil {
			return Duplicates{}, fmt.Errorf("find duplicate values of %s: tiebreaker: %w", column, err)
		}
		d.Examples = append(d.Examples, dup)
	}
	if err := rows.Err(); err != nil {
		return Duplicates{}, fmt.Errorf("find duplicate values of %s: %w", column, s.lost(err))
	}
	return d, nil
}

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
		keys[i] = fmt.Sprintf("LOWER(TRIM(%s)) AS k%d", s.d.asText(s.quote(c)), i)
		names[i] = fmt.Sprintf("k%d", i)
	}
	list := strings.Join(names, ", ")
	q := fmt.Sprintf("SELECT %s%s FROM (SELECT %s FROM %s WHERE %s <= %s) AS cometsync_keys GROUP BY %s HAVING COUNT(*) > 1",
		s.d.bigGroupBy(), list, strings.Join(keys, ", "), s.from, s.cursor, s.ph(1), list)
	what := strings.Join(columns, ", ")
	rows, err := s.db.QueryContext(ctx, q, upper.Arg())
	if err != nil {
		return nil, fmt.Errorf("find duplicate keys of %s: %w", what, s.lost(err))
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
		return nil, fmt.Errorf("find duplicate keys of %s: %w", what, s.lost(err))
	}
	return out, nil
}
