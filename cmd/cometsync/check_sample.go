package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/syncer"
)

// duplicatesTimeout bounds check's GROUP BY over the whole query.
const duplicatesTimeout = 15 * time.Second

// checkSample maps the sample and prints it, then fails when most of it is
// invalid for one reason, or when rows map to one guid.
func checkSample(ctx context.Context, ns config.NamedStream, entity syncer.Entity, src *source.Source, rows []source.Row, c *checker) {
	fmt.Fprintf(c.w, "\nsample of %d rows, as they would be sent:\n", len(rows))
	invalid := 0
	reasons := map[mapping.FieldError]int{}
	owners := map[string][]string{} // guid -> the keys of the sampled rows mapped to it
	var guids []string
	for _, r := range rows {
		o, err := entity.Map(r.Values)
		if o.Key != "" {
			if owners[o.Key] == nil {
				guids = append(guids, o.Key)
			}
			owners[o.Key] = append(owners[o.Key], r.Key.String())
		}
		if err != nil {
			invalid++
			var fe *mapping.FieldError
			if errors.As(err, &fe) {
				reasons[*fe]++
			}
			fmt.Fprintf(c.w, "  row %s: ROW ERROR %v (it would be recorded in the error store, not sent)\n", r.Key, err)
			continue
		}
		b, _ := json.Marshal(o.Value)
		fmt.Fprintf(c.w, "  row %s: %s\n", r.Key, b)
	}
	fmt.Fprintln(c.w)
	checkInvalid(ns, reasons, invalid, len(rows), c)

	var sampled []string
	for _, guid := range guids {
		if keys := owners[guid]; len(keys) > 1 {
			sampled = append(sampled, fmt.Sprintf("%q (rows %s)", guid, strings.Join(keys, ", ")))
		}
	}
	checkDuplicates(ctx, ns, entity.KeyColumns(), src, sampled, len(rows), c)
}

// checkInvalid fails when most sampled rows are invalid in the same field:
// a mapping mistake, not bad rows. reasons counts the sampled rows by field
// error.
func checkInvalid(ns config.NamedStream, reasons map[mapping.FieldError]int, invalid, sampled int, c *checker) {
	if invalid == 0 {
		return
	}
	byField := map[string]int{}
	example := map[string]mapping.FieldError{} // the field's most common error
	for fe, k := range reasons {
		byField[fe.Field] += k
		if ex, ok := example[fe.Field]; !ok || k > reasons[ex] || k == reasons[ex] && fe.Message < ex.Message {
			example[fe.Field] = fe
		}
	}
	top := ""
	for f, k := range byField {
		if k > byField[top] || k == byField[top] && f < top {
			top = f
		}
	}
	if 2*byField[top] > sampled {
		ex := example[top]
		c.bad("%s.query: %d of %d sampled rows are invalid for the same reason, %s: %s; a pass would record nearly every row "+
			"as a row error and send none. Fix the column %s in %s.query (e.g. CASE %s WHEN ... THEN ... END AS %s for a coded value)",
			ns.Key, byField[top], sampled, ex.Field, ex.Message, top, ns.Key, top, top)
		return
	}
	c.note("%d of %d sampled rows break CometChat's constraints; they are kept in the error store, the rest sync", invalid, sampled)
}

// checkDuplicates fails when rows map to the same guid: a pass would send
// only the first (the others are DUPLICATE_KEY row errors). It counts them
// in the whole query with a GROUP BY, bounded by duplicatesTimeout, and
// falls back to the sample.
func checkDuplicates(ctx context.Context, ns config.NamedStream, keyCols []string, src *source.Source, sampled []string, n int, c *checker) {
	q := ns.Key + ".query"
	guid, advice := "guid", "a guid must belong to one row: select a unique key as guid, e.g. CONCAT(team_id, '-', name) AS guid "+
		"for names unique per team, or the primary key"
	switch ns.Name {
	case config.StreamUsers:
		guid, advice = "uid", "a uid must belong to one row: select a unique column as uid"
	case config.StreamMembers:
		guid, advice = "member id", "a membership (guid, uid) must belong to one row: select each user's membership of a group once"
	}
	if len(keyCols) != 1 {
		// A key of several columns is counted in the sample only.
		if len(sampled) > 0 {
			c.bad("%s: DUPLICATE_KEY: %d of %d sampled %ss are the %s of more than one row: %s; %s", q, len(sampled), n, guid, guid,
				strings.Join(firstN(sampled, 3), ", "), advice)
		}
		return
	}
	dctx, cancel := context.WithTimeout(ctx, duplicatesTimeout)
	defer cancel()
	d, err := src.Duplicates(dctx, keyCols[0], 3)
	switch {
	case err == nil && d.Values > 0:
		var ex []string
		for _, e := range d.Examples {
			ex = append(ex, fmt.Sprintf("%q (%d rows, keys %s … %s)", e.Value, e.Rows, e.First, e.Last))
		}
		c.bad("%s: DUPLICATE_KEY: %d %ss are each the %s of more than one row (%d rows in all), e.g. %s; a pass syncs one row "+
			"of each and records the others as DUPLICATE_KEY row errors; %s", q, d.Values, guid, guid, d.Rows, strings.Join(ex, ", "), advice)
	case err == nil:
		c.ok("%s: every %s belongs to one row (checked over the whole query)", q, guid)
	case len(sampled) > 0:
		c.bad("%s: DUPLICATE_KEY: %d of %d sampled %ss are the %s of more than one row: %s; %s (the whole query was not checked: %v)",
			q, len(sampled), n, guid, guid, strings.Join(firstN(sampled, 3), ", "), advice, err)
	default:
		c.note("%s: no two sampled rows share a %s; the whole query was not checked (%v)", q, guid, err)
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
