package source

import (
	"context"
	"errors"
	"fmt"
)

// CursorRange is where the query's cursor values lie against a pass's upper
// bound. Rows beyond the bound are not read by the pass; when they are all
// or most of the table, the cursor is almost surely not what the bound
// assumes (an integer cursor in another unit, a date-time cursor in another
// time zone, or future-dated rows).
type CursorRange struct {
	// Upper is the bound the range was compared with.
	Upper Value
	// Min and Max are the smallest and largest cursor values; KindNone when
	// no row has a cursor.
	Min, Max Value
	// Beyond counts the rows whose cursor is after Upper.
	Beyond int64
	// AtOrBelow counts the rows whose cursor is not after Upper, but only
	// up to Beyond+1: enough to tell whether most rows are beyond.
	AtOrBelow int64
}

// MostlyBeyond reports whether all or most (more than half) of the rows
// with a cursor are beyond the upper bound.
func (r CursorRange) MostlyBeyond() bool { return r.Beyond > 0 && r.Beyond > r.AtOrBelow }

// CursorRange compares the cursor's values with upper, a pass's upper
// bound (from UpperBound). Its cost follows the rows beyond the bound, not
// the table: a count of the rows after upper, a count of those not after it
// that stops at one more than that, and the smallest and largest cursor
// values, each read from the cursor's index when there is one. Rows with a
// NULL cursor are not counted (see NullCursors).
func (s *Source) CursorRange(ctx context.Context, upper Value) (CursorRange, error) {
	if upper.IsZero() {
		return CursorRange{}, errors.New("cursor range: no upper bound (take one with UpperBound)")
	}
	r := CursorRange{Upper: upper}
	q := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s > %s", s.from, s.cursor, s.ph(1))
	if err := s.db.GetContext(ctx, &r.Beyond, q, upper.Arg()); err != nil {
		return CursorRange{}, fmt.Errorf("cursor range: count the rows beyond the upper bound: %w", s.lost(err))
	}
	q = fmt.Sprintf("SELECT COUNT(*) FROM (SELECT 1 AS one FROM %s WHERE %s <= %s LIMIT %s) AS cometsync_below", s.from, s.cursor, s.ph(1), s.ph(2))
	if err := s.db.GetContext(ctx, &r.AtOrBelow, q, upper.Arg(), r.Beyond+1); err != nil {
		return CursorRange{}, fmt.Errorf("cursor range: count the rows up to the upper bound: %w", s.lost(err))
	}
	var err error
	if r.Min, err = s.edgeCursor(ctx, "ASC"); err != nil {
		return CursorRange{}, fmt.Errorf("cursor range: read the smallest cursor value: %w", s.lost(err))
	}
	if r.Max, err = s.edgeCursor(ctx, "DESC"); err != nil {
		return CursorRange{}, fmt.Errorf("cursor range: read the largest cursor value: %w", s.lost(err))
	}
	return r, nil
}
