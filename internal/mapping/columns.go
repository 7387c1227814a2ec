package mapping

import (
	"fmt"
	"strings"
	"time"
)

// ColumnError is a problem with the query's result columns, found by New.
type ColumnError struct {
	// Column is the column's name as the query returns it.
	Column string
	// Problem is the sentence naming the column, e.g.
	// `required column "name" is missing`.
	Problem string
	// Known, for a column that is not an import field, lists the columns
	// allowed instead; Error shows it in parentheses after Problem.
	Known string
}

// Error returns the problem prefixed with the config key it concerns.
func (e *ColumnError) Error() string {
	s := "source.query: " + e.Problem
	if e.Known != "" {
		s += " (known: " + e.Known + ")"
	}
	return s
}

// ColumnErrors are every problem New found with the query's columns, in
// the order of the columns, then the missing ones. errors.As finds the
// first as a *ColumnError.
type ColumnErrors []*ColumnError

// Error lists every problem, one a line, and the known columns once.
func (e ColumnErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "source.query: %d problems with the query's columns:", len(e))
	known := ""
	for _, ce := range e {
		b.WriteString("\n  ")
		b.WriteString(ce.Problem)
		if ce.Known != "" {
			known = ce.Known
		}
	}
	if known != "" {
		b.WriteString("\n  known columns: ")
		b.WriteString(known)
	}
	return b.String()
}

// Unwrap returns each problem, for errors.As and errors.Is.
func (e ColumnErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, ce := range e {
		out[i] = ce
	}
	return out
}

// columnProblems collects what New finds, so that one run names them all.
type columnProblems []*ColumnError

func (p *columnProblems) add(column, format string, args ...any) {
	*p = append(*p, &ColumnError{Column: column, Problem: fmt.Sprintf(format, args...)})
}

// err is nil without problems, the *ColumnError itself for one, and
// ColumnErrors for several.
func (p columnProblems) err() error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return p[0]
	}
	return ColumnErrors(p)
}

// New checks the query's result columns once, at start-up, and returns a
// Mapper for rows with exactly these columns in this order.
//
// Column names match import fields case-insensitively. cursorColumn and
// tiebreakerColumn (source.cursor.column and .tiebreaker) must be among the
// columns; they are ignored by Map unless they are import fields themselves
// (a tiebreaker "guid" is both). An empty name is not checked. Times written
// as text without a zone are read in loc; nil means UTC. The error is a
// *ColumnError for one problem and ColumnErrors for several: every unknown,
// duplicated or missing column is named at once.
func New(columns []string, cursorColumn, tiebreakerColumn string, loc *time.Location) (*Mapper, error) {
	if loc == nil {
		loc = time.UTC
	}
	m := &Mapper{columns: append([]string(nil), columns...), loc: loc}
	for f := range m.index {
		m.index[f] = -1
	}
	var found columnProblems
	cursorSeen, tiebreakerSeen := false, false
	known := strings.Join(fieldNames[:], ", ") + alsoAllowed(cursorColumn, tiebreakerColumn)
	for i, col := range columns {
		name := strings.ToLower(strings.TrimSpace(col))
		if name == "" {
			found.add(col, "column %d has no name; give it one with AS", i+1)
			continue
		}
		isCursor := cursorColumn != "" && strings.EqualFold(name, strings.TrimSpace(cursorColumn))
		isTiebreaker := tiebreakerColumn != "" && strings.EqualFold(name, strings.TrimSpace(tiebreakerColumn))
		cursorSeen = cursorSeen || isCursor
		tiebreakerSeen = tiebreakerSeen || isTiebreaker
		f, ok := lookupField(name)
		switch {
		case !ok && (isCursor || isTiebreaker):
		case !ok:
			found.add(col, "column %q is not an import field", col)
			found[len(found)-1].Known = known
		case m.index[f] >= 0:
			found.add(col, "column %q appears twice (columns %d and %d)", col, m.index[f]+1, i+1)
		default:
			m.index[f] = i
		}
	}
	for _, f := range []field{fGUID, fName, fType} {
		if m.index[f] < 0 {
			found.add(fieldNames[f], "required column %q is missing", fieldNames[f])
		}
	}
	if m.index[fOwnerUID] < 0 {
		for f := fOwnerName; f < numFields; f++ {
			if m.index[f] >= 0 {
				name := m.columns[m.index[f]]
				found.add(name, "column %q needs the column \"owner_uid\": owner details are sent only for a row that names its owner", name)
			}
		}
	}
	if cursorColumn != "" && !cursorSeen {
		found.add(cursorColumn, "cursor column %q (source.cursor.column) is missing from the query's columns", cursorColumn)
	}
	if tiebreakerColumn != "" && !tiebreakerSeen {
		found.add(tiebreakerColumn, "tiebreaker column %q (source.cursor.tiebreaker) is missing from the query's columns", tiebreakerColumn)
	}
	if err := found.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// alsoAllowed names the cursor columns for the unknown-column message.
func alsoAllowed(cursor, tiebreaker string) string {
	switch {
	case cursor != "" && tiebreaker != "":
		return fmt.Sprintf("; the cursor column %q and the tiebreaker %q are also allowed", cursor, tiebreaker)
	case cursor != "":
		return fmt.Sprintf("; the cursor column %q is also allowed", cursor)
	case tiebreaker != "":
		return fmt.Sprintf("; the tiebreaker %q is also allowed", tiebreaker)
	}
	return ""
}

func lookupField(name string) (field, bool) {
	for f, n := range fieldNames {
		if n == name {
			return field(f), true
		}
	}
	return 0, false
}
