package mapping

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ColumnError is a problem with the query's result columns, found by New.
type ColumnError struct {
	// Key is the config key of the query, e.g. "users.query"; empty means
	// "source.query".
	Key string
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
	s := queryKey(e.Key) + ": " + e.Problem
	if e.Known != "" {
		s += " (known: " + e.Known + ")"
	}
	return s
}

func queryKey(key string) string {
	if key == "" {
		return "source.query"
	}
	return key
}

// ColumnErrors are every problem New found with the query's columns, in
// the order of the columns, then the missing ones. errors.As finds the
// first as a *ColumnError.
type ColumnErrors []*ColumnError

// Error lists every problem, one a line, and the known columns once.
func (e ColumnErrors) Error() string {
	var b strings.Builder
	key := ""
	if len(e) > 0 {
		key = e[0].Key
	}
	fmt.Fprintf(&b, "%s: %d problems with the query's columns:", queryKey(key), len(e))
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

func (p *columnProblems) add(key, column, format string, args ...any) {
	*p = append(*p, &ColumnError{Key: key, Column: column, Problem: fmt.Sprintf(format, args...)})
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
	return newGroups(groupSchema, columns, cursorColumn, tiebreakerColumn, loc)
}

// NewGroups is New for a query configured in the groups section: the
// problems name groups.query and groups.cursor instead of source.query and
// source.cursor.
func NewGroups(columns []string, cursorColumn, tiebreakerColumn string, loc *time.Location) (*Mapper, error) {
	s := groupSchema
	s.section = "groups"
	return newGroups(s, columns, cursorColumn, tiebreakerColumn, loc)
}

func newGroups(s schema, columns []string, cursorColumn, tiebreakerColumn string, loc *time.Location) (*Mapper, error) {
	b, err := s.bind(columns, cursorColumn, tiebreakerColumn, loc, func(b *binding, found *columnProblems) {
		if b.index[fOwnerUID] >= 0 {
			return
		}
		for f := fOwnerName; f < numFields; f++ {
			if b.index[f] >= 0 {
				name := b.columns[b.index[f]]
				found.add(b.key, name, "column %q needs the column \"owner_uid\": owner details are sent only for a row that names its owner", name)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return &Mapper{binding: *b}, nil
}

// schema is one entity's import fields: their column names, in field
// order, the required ones, and the config section whose query selects
// them.
type schema struct {
	section  string // "source", "users", "members"
	names    []string
	required []field
}

// binding is a query's result columns bound to a schema's fields. Map
// methods only read it.
type binding struct {
	key     string // the query's config key, e.g. "users.query"
	columns []string
	names   []string
	// index holds, per import field, the position of its column in a row,
	// or -1 when the query does not select it.
	index []int
	loc   *time.Location
}

// bind checks columns against the schema: every unknown, duplicated or
// missing column, then what check adds, then a missing cursor column.
func (s schema) bind(columns []string, cursorColumn, tiebreakerColumn string, loc *time.Location, check func(*binding, *columnProblems)) (*binding, error) {
	if loc == nil {
		loc = time.UTC
	}
	b := &binding{key: s.section + ".query", columns: append([]string(nil), columns...), names: s.names, index: make([]int, len(s.names)), loc: loc}
	for f := range b.index {
		b.index[f] = -1
	}
	var found columnProblems
	cursorSeen, tiebreakerSeen := false, false
	known := strings.Join(s.names, ", ") + alsoAllowed(cursorColumn, tiebreakerColumn)
	for i, col := range columns {
		name := strings.ToLower(strings.TrimSpace(col))
		if name == "" {
			found.add(b.key, col, "column %d has no name; give it one with AS", i+1)
			continue
		}
		isCursor := cursorColumn != "" && strings.EqualFold(name, strings.TrimSpace(cursorColumn))
		isTiebreaker := tiebreakerColumn != "" && strings.EqualFold(name, strings.TrimSpace(tiebreakerColumn))
		cursorSeen = cursorSeen || isCursor
		tiebreakerSeen = tiebreakerSeen || isTiebreaker
		f := slices.Index(s.names, name)
		switch {
		case f < 0 && (isCursor || isTiebreaker):
		case f < 0:
			found.add(b.key, col, "column %q is not an import field", col)
			found[len(found)-1].Known = known
		case b.index[f] >= 0:
			found.add(b.key, col, "column %q appears twice (columns %d and %d)", col, b.index[f]+1, i+1)
		default:
			b.index[f] = i
		}
	}
	for _, f := range s.required {
		if b.index[f] < 0 {
			found.add(b.key, s.names[f], "required column %q is missing", s.names[f])
		}
	}
	if check != nil {
		check(b, &found)
	}
	if cursorColumn != "" && !cursorSeen {
		found.add(b.key, cursorColumn, "cursor column %q (%s.cursor.column) is missing from the query's columns", cursorColumn, s.section)
	}
	if tiebreakerColumn != "" && !tiebreakerSeen {
		found.add(b.key, tiebreakerColumn, "tiebreaker column %q (%s.cursor.tiebreaker) is missing from the query's columns", tiebreakerColumn, s.section)
	}
	if err := found.err(); err != nil {
		return nil, err
	}
	return b, nil
}

// column is the result column field f is mapped from, as the query names
// it; the field must be bound.
func (b *binding) column(f field) string { return b.columns[b.index[f]] }

// Columns returns the query's result columns, as given to the constructor.
func (b *binding) Columns() []string {
	return append([]string(nil), b.columns...)
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
