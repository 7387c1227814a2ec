package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/source"
)

// checkQuery checks the columns against the mapping, the cursor (its unit,
// its range against the upper bound, its NULLs), the keyset's index, and
// maps a sample.
func checkQuery(ctx context.Context, cfg *config.Config, ns config.NamedStream, src *source.Source, sample int, c *checker) {
	gs := ns.Stream
	cols, err := src.Columns(ctx)
	if err != nil {
		c.bad("%s.query: %v", ns.Key, err)
		return
	}
	entity, _, err := newEntity(ns, cols, "", nil)
	if err != nil {
		c.bad("%v", err)
		return
	}
	c.ok("%s.query: columns %v map to import fields", ns.Key, cols)
	upper, unit, ok := checkCursor(ctx, ns, src, c)
	if !ok {
		return
	}
	if n, err := src.Count(ctx, nil, upper); err == nil {
		perMinute := cfg.CometChat.RateLimits.ImportPerMinute * cfg.CometChat.BatchSize
		c.ok("source: %d rows to sync on a first pass (%s at %s groups a minute: cometchat.rate_limits.import_per_minute %d × batch_size %d)",
			n, backfillTime(n, perMinute), thousands(perMinute), cfg.CometChat.RateLimits.ImportPerMinute, cfg.CometChat.BatchSize)
	}
	checkRange(ctx, ns, src, upper, unit, c)
	switch n, err := src.NullCursors(ctx); {
	case err != nil:
		c.warn("source: could not count the rows whose %s is NULL: %v", gs.Cursor.Column, err)
	case n > 0:
		col := gs.Cursor.Column
		c.warn("source: %d row(s) have a NULL %s: a pass never reads them (NULL is not after any checkpoint), so they are never synced "+
			"until %s has a value: set it in the table (and make the column NOT NULL), or select e.g. "+
			"COALESCE(%s, <another column that is never NULL>) AS %s in source.query (which the index cannot serve)", n, col, col, col, col)
	}
	rows, err := src.ReadPage(ctx, nil, upper, max(sample, 1))
	if err != nil {
		c.bad("source: read a sample: %v", err)
		return
	}
	checkIndex(ctx, cfg, ns, src, upper, rows, c)
	checkSample(ctx, ns, entity, src, rows, c)
}

// checkCursor prints the cursor's kind, its unit when it is an integer, and
// the pass's upper bound; ok is false when a pass cannot start.
func checkCursor(ctx context.Context, ns config.NamedStream, src *source.Source, c *checker) (upper source.Value, unit string, ok bool) {
	cur := ns.Cursor
	kind, err := src.CursorKind(ctx)
	if err != nil {
		c.bad("%v", err)
		return upper, "", false
	}
	choice, err := src.Unit(ctx)
	var ue *source.UnitError
	switch {
	case errors.As(err, &ue):
		c.bad("%v", err)
		return upper, "", false
	case err != nil:
		c.bad("source: %v", err)
		return upper, "", false
	}
	if upper, err = src.UpperBound(ctx); err != nil {
		c.bad("source: read the database clock: %v", err)
		return upper, "", false
	}
	bound := fmt.Sprintf("this pass would read up to %s (database clock - %s lag)", upper.Readable(choice.Unit), cur.Lag)
	switch {
	case kind != source.KindInt:
		c.ok("source.cursor: %s is a %s cursor; %s", cur.Column, kind, bound)
	case choice.Configured != "":
		c.ok("source.cursor: %s is an integer cursor in %s (source.cursor.integer_unit); %s", cur.Column, choice.Unit, bound)
	case choice.Detected != "":
		c.ok("source.cursor: %s is an integer cursor in %s, detected from its largest value %s (set source.cursor.integer_unit to fix it); %s",
			cur.Column, choice.Unit, choice.Max.Readable(choice.Unit), bound)
	default:
		largest := "the query has no rows yet"
		if !choice.Max.IsZero() {
			largest = fmt.Sprintf("its largest value, %s, is no epoch time in seconds, milliseconds or microseconds", choice.Max)
		}
		c.note("source.cursor: %s is an integer cursor read in seconds: source.cursor.integer_unit is not set and %s; "+
			"set it if the column holds epoch milliseconds or microseconds", cur.Column, largest)
		c.ok("source.cursor: %s", bound)
	}
	return upper, choice.Unit, true
}

// checkRange prints where the cursor's values lie, and fails when all or
// most rows are beyond the pass's upper bound: a pass would read none of
// them, with no error.
func checkRange(ctx context.Context, ns config.NamedStream, src *source.Source, upper source.Value, unit string, c *checker) {
	cur := ns.Cursor
	r, err := src.CursorRange(ctx, upper)
	switch {
	case err != nil:
		c.warn("source: could not compare %s with the upper bound: %v", cur.Column, err)
		return
	case r.Max.IsZero():
		return // no rows: the row count said so
	}
	span := fmt.Sprintf("%s runs from %s to %s", cur.Column, r.Min.Readable(unit), r.Max.Readable(unit))
	switch {
	case r.MostlyBeyond():
		share := "most"
		if r.AtOrBelow == 0 {
			share = "all"
		}
		c.bad("source.cursor: %s of the rows (%d) have a %s after this pass's upper bound %s (%s), so a pass reads none of them and reports no error: %s",
			share, r.Beyond, cur.Column, upper.Readable(unit), span, beyondCause(upper, unit))
	case r.Beyond > 0:
		c.note("source.cursor: %s; %d row(s) are after this pass's upper bound %s and are left for a later pass", span, r.Beyond, upper.Readable(unit))
	default:
		c.ok("source.cursor: %s; no row is after this pass's upper bound", span)
	}
}

// beyondCause names the likely cause of a cursor beyond the upper bound,
// and the key to set.
func beyondCause(upper source.Value, unit string) string {
	if upper.Kind == source.KindInt {
		return fmt.Sprintf("the cursor is read as epoch %s (source.cursor.integer_unit): if it holds another unit, set integer_unit "+
			"to seconds, milliseconds or microseconds; if it is not epoch time at all, use a date-time or epoch column as source.cursor.column", unit)
	}
	return "the column likely holds times in a time zone ahead of the database clock (NOW() in the connection's time zone), or the rows are " +
		"future-dated: if it holds UTC, add time_zone=%27%2B00%3A00%27 to source.dsn; otherwise set the connection's time_zone to the column's zone"
}

// checkIndex explains the page query of a pass that has caught up (after
// the upper bound) and warns unless a page is read in the order of an index
// on (cursor, tiebreaker): anything else reads, and sorts, more than the
// page on every page.
func checkIndex(ctx context.Context, cfg *config.Config, ns config.NamedStream, src *source.Source, upper source.Value, rows []source.Row, c *checker) {
	cur := ns.Cursor
	if len(rows) == 0 {
		c.note("source: the query has no rows yet, so its index on (%s, %s) was not checked", cur.Column, cur.Tiebreaker)
		return
	}
	plan, err := src.ExplainPage(ctx, source.Position{Cursor: upper, Key: rows[0].Key}, upper, cfg.Source.PageSize)
	switch {
	case errors.Is(err, source.ErrNoPlan):
		c.note("source: the index on (%s, %s) is checked for mysql only; make sure the table has one", cur.Column, cur.Tiebreaker)
	case err != nil:
		c.warn("source: could not check the index of the keyset read: %v", err)
	case plan.Materialized:
		c.warn("source.query: the database cannot merge the query into the keyset read (it has GROUP BY, DISTINCT, LIMIT, UNION " +
			"or an aggregate), so every page of a pass builds all of its rows first; keep source.query a plain SELECT with joins")
	case plan.InIndexOrder():
		c.ok("source: the keyset read uses the index %s of %s in (%s, %s) order, without sorting (EXPLAIN: type %s)",
			plan.Key, plan.Table, cur.Column, cur.Tiebreaker, plan.Access)
	case plan.KeysetIndex() != "" && plan.Rows <= int64(cfg.Source.PageSize):
		// On a table this small the optimizer's choice says nothing of the
		// plan a large one gets, and a sort of one page costs nothing.
		c.note("source: %s has the index %s on (%s, %s); on a table this small (EXPLAIN: about %d rows) the database does not use it yet: "+
			"run check again once it holds more than source.page_size (%d) rows", plan.BaseTable, plan.KeysetIndex(), cur.Column, cur.Tiebreaker,
			plan.Rows, cfg.Source.PageSize)
	default:
		c.warn("source: the keyset read is not in index order of (%s, %s): %s; each page of a pass reads and sorts about %s rows "+
			"(EXPLAIN: type %s, key %s, %s; rows %d) to return %d, so a first pass grows with the square of the table; %s",
			cur.Column, cur.Tiebreaker, planProblem(plan), thousands(int(plan.Rows)), plan.Access, orNone(plan.Key), plan.Extra,
			plan.Rows, cfg.Source.PageSize, indexAdvice(plan, cur))
	}
}

// planProblem says why a plan is not in index order.
func planProblem(p source.PagePlan) string {
	switch {
	case p.CursorColumn == "":
		return "the cursor or the tiebreaker is an expression, not a column of one table, so no index can serve it"
	case p.Key == "":
		return "no index is used, every page scans " + p.BaseTable
	case p.KeysetIndex() != "" && p.KeysetIndex() != p.Key:
		return fmt.Sprintf("the database chose the index %s (for the query's WHERE) over %s", p.Key, p.KeysetIndex())
	default:
		return fmt.Sprintf("the database uses the index %s, which is not on (%s, %s)", p.Key, p.CursorColumn, p.TiebreakerColumn)
	}
}

// indexAdvice says what to do about a plan out of index order.
func indexAdvice(p source.PagePlan, cur config.Cursor) string {
	if p.CursorColumn == "" {
		return fmt.Sprintf("select plain columns of the table as %s and %s (e.g. g.updated_at AS %s), indexed together", cur.Column, cur.Tiebreaker, cur.Column)
	}
	if have := p.KeysetIndex(); have != "" {
		return fmt.Sprintf("make the database use %s: e.g. FROM %s FORCE INDEX (%s) in source.query", have, sqlName(p.BaseTable), sqlName(have))
	}
	return fmt.Sprintf("add one: CREATE INDEX %s ON %s (%s, %s);", sqlName(p.BaseTable+"_"+p.CursorColumn+"_"+p.TiebreakerColumn),
		sqlName(p.BaseTable), sqlName(p.CursorColumn), sqlName(p.TiebreakerColumn))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// sqlName backquotes a MySQL identifier unless it is a plain one (or a
// placeholder in angle brackets).
func sqlName(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if ch := s[i]; !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			plain = false
		}
	}
	if plain || strings.HasPrefix(s, "<") {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}
