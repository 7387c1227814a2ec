package source

import (
	"context"
	"fmt"
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
	norm := s.asKey(col)
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
