package source

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// UnitMicroseconds is the unit of an integer cursor of epoch microseconds.
const UnitMicroseconds = "microseconds"

// perSecond is how many of each unit a second holds.
var perSecond = map[string]int64{UnitSeconds: 1, UnitMilliseconds: 1_000, UnitMicroseconds: 1_000_000}

// The years an epoch value must fall in, read in a unit, for that unit to
// be detected: the windows of the three units do not overlap, so a value
// inside one is unambiguous.
var (
	plausibleFrom = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	plausibleTo   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// DetectUnit returns the unit in which n is an epoch time between 1980 and
// 2200: seconds (about 1e9), milliseconds (about 1e12) or microseconds
// (about 1e15). ok is false for any other value, whose unit cannot be told
// from its magnitude.
func DetectUnit(n int64) (unit string, ok bool) {
	for _, u := range []string{UnitSeconds, UnitMilliseconds, UnitMicroseconds} {
		per := perSecond[u]
		if n >= plausibleFrom*per && n < plausibleTo*per {
			return u, true
		}
	}
	return "", false
}

// UnitError is a configured source.cursor.integer_unit that the data
// contradicts: a config problem, found before anything is read.
type UnitError struct {
	Column     string // source.cursor.column
	Configured string // source.cursor.integer_unit
	Detected   string // the unit the values' magnitude says
	Sample     int64  // the largest cursor value
}

func (e *UnitError) Error() string {
	return fmt.Sprintf("source.cursor.integer_unit: %q, but the cursor column %q holds %s: its largest value, %d, is %s in %s "+
		"(in %s it would be %s); set integer_unit: %s, or leave it out to use the unit detected from the data",
		e.Configured, e.Column, e.Detected, e.Sample, epochTime(e.Sample, e.Detected), e.Detected,
		e.Configured, epochTime(e.Sample, e.Configured), e.Detected)
}

// UnitChoice is how the unit of an integer cursor was decided.
type UnitChoice struct {
	// Unit is the unit in use: the configured one, else the detected one,
	// else seconds.
	Unit string
	// Configured is source.cursor.integer_unit; "" when it is not set.
	Configured string
	// Detected is the unit the largest cursor value's magnitude says; ""
	// when the query has no rows with a cursor, or the magnitude is
	// ambiguous (see DetectUnit).
	Detected string
	// Max is the largest cursor value; KindNone when no row has a cursor.
	Max Value
}

// Unit decides the unit of an integer cursor, once: the configured
// IntegerUnit when the data does not contradict it (else a *UnitError),
// or, when none is configured, the unit detected from the magnitude of the
// largest cursor value (seconds when there is no row or the magnitude is
// ambiguous). The choice is logged. For a date-time cursor it returns the
// configured unit, or seconds, with nothing detected.
func (s *Source) Unit(ctx context.Context) (UnitChoice, error) {
	kind, err := s.CursorKind(ctx)
	if err != nil {
		return UnitChoice{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unit != nil {
		return *s.unit, nil
	}
	c := UnitChoice{Unit: s.cfg.IntegerUnit, Configured: s.cfg.IntegerUnit}
	if c.Unit == "" {
		c.Unit = UnitSeconds
	}
	if kind == KindInt {
		if c.Max, err = s.edgeCursor(ctx, "DESC"); err != nil {
			return UnitChoice{}, fmt.Errorf("read the largest cursor value: %w", s.lost(err))
		}
		if c.Max.Kind == KindInt {
			c.Detected, _ = DetectUnit(c.Max.Int)
		}
		switch {
		case c.Configured != "" && c.Detected != "" && c.Detected != c.Configured:
			return UnitChoice{}, &UnitError{Column: s.cfg.Cursor, Configured: c.Configured, Detected: c.Detected, Sample: c.Max.Int}
		case c.Configured != "":
		case c.Detected != "":
			c.Unit = c.Detected
			s.log.Info("integer cursor unit detected from the data; set source.cursor.integer_unit to fix it",
				zap.String("unit", c.Unit), zap.String("largest_value", c.Max.Readable(c.Unit)))
		default:
			s.log.Info("integer cursor unit not set and not told by the data (no rows, or an unusual magnitude): using seconds; "+
				"set source.cursor.integer_unit if that is wrong", zap.String("largest_value", c.Max.String()))
		}
	}
	s.unit = &c
	return c, nil
}

// edgeCursor reads the smallest (order "ASC") or largest ("DESC") non-NULL
// cursor value; KindNone when there is none. ORDER BY … LIMIT 1 reads one
// index entry where MIN/MAX over a join could not.
func (s *Source) edgeCursor(ctx context.Context, order string) (Value, error) {
	rows, err := s.query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s IS NOT NULL ORDER BY %s %s LIMIT 1",
		s.columns, s.from, s.cursor, s.cursor, order))
	if err != nil || len(rows) == 0 {
		return Value{}, err
	}
	return rows[0].Cursor, nil
}

// Readable returns the value for people: an integer cursor in unit
// ("seconds", "milliseconds" or "microseconds") with its UTC time beside
// it, "1733131200000 (2024-12-02 09:20:00 UTC)"; anything else as String.
// An integer whose time is outside the years 1 to 9999 is shown alone. An
// empty unit is told from the value's magnitude (see DetectUnit), and an
// integer it cannot tell is shown alone.
func (v Value) Readable(unit string) string {
	if v.Kind != KindInt {
		return v.String()
	}
	if unit == "" {
		unit, _ = DetectUnit(v.Int)
	}
	if t := epochTime(v.Int, unit); t != "" {
		return strconv.FormatInt(v.Int, 10) + " (" + t + ")"
	}
	return v.String()
}

// epochTime renders n, an epoch time in unit, as UTC ("2024-12-02 09:20:00
// UTC", with fractional seconds when there are any); "" when unit is not
// one or the time falls outside the years 1 to 9999.
func epochTime(n int64, unit string) string {
	per, ok := perSecond[unit]
	if !ok {
		return ""
	}
	sec, frac := floorDiv(n, per), n-floorDiv(n, per)*per
	// Years 1 to 9999 are about ±2.5e11 seconds from 1970.
	if sec < -62135596800 || sec > 253402300799 {
		return ""
	}
	t := time.Unix(sec, frac*(1_000_000_000/per)).UTC()
	return t.Format("2006-01-02 15:04:05.999999") + " UTC"
}
