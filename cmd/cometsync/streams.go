package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/entities"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/syncer"
)

// streamParts is one configured stream wired to its source: the source
// reading its query, and the entity mapping its rows.
type streamParts struct {
	config.NamedStream
	src    *source.Source
	entity syncer.Entity
	// fingerprint identifies the stream's query and mapping.
	fingerprint string
	unit        source.UnitChoice
	start       *source.Value
	// softDeletes is set when the query selects a deleted column.
	softDeletes bool
}

// sourceConfig is what source.Open needs for one stream.
//
// In binlog mode the backfill's bound is the largest cursor value, not the
// clock (the binlog carries what comes after), and a stream with no
// cursor.column pages by its tiebreaker alone.
func sourceConfig(cfg *config.Config, ns config.NamedStream) source.Config {
	sc := source.Config{
		Driver: cfg.Source.Driver, DSN: cfg.Source.DSN, Query: ns.Query,
		Cursor: ns.Cursor.Column, Tiebreaker: ns.Cursor.Tiebreaker,
		Lag: ns.Cursor.Lag.Duration(), IntegerUnit: ns.Cursor.IntegerUnit,
		Section: ns.Key,
	}
	if ns.Key == "source" {
		sc.Section = "" // the earlier form
	}
	if cfg.Source.Mode == config.ModeBinlog {
		sc.BoundByMax, sc.Lag = true, 0
		if strings.TrimSpace(sc.Cursor) == "" {
			sc.Cursor = sc.Tiebreaker
		}
	}
	return sc
}

// openStream connects to the source for one stream, checks its query's
// columns against the entity's mapping, and settles its cursor's unit and
// start. Errors are already classified for the exit code.
func openStream(ctx context.Context, cfg *config.Config, ns config.NamedStream, client *cometchat.Client, log *zap.Logger) (_ *streamParts, err error) {
	sp := &streamParts{NamedStream: ns}
	sp.src, err = source.Open(ctx, sourceConfig(cfg, ns), log.Named("source").With(zap.String("stream", ns.Name)))
	if err != nil {
		return nil, failedErr(fmt.Errorf("source (%s): %w (check source.dsn and that the database is reachable)", ns.Name, err))
	}
	defer func() {
		if err != nil {
			sp.src.Close()
		}
	}()
	cols, err := sp.src.Columns(ctx)
	if err != nil {
		return nil, classifySourceErr(err)
	}
	// The integer cursor's unit, configured or detected from the data; a
	// configured one the data contradicts stops here, as a config error.
	if cfg.Source.Mode == config.ModeBinlog {
		sp.unit = source.UnitChoice{Unit: source.UnitSeconds} // no clock: the unit is not used
	} else if sp.unit, err = sp.src.Unit(ctx); err != nil {
		return nil, classifySourceErr(err)
	}
	if sp.entity, sp.fingerprint, err = newEntity(ns, cols, sp.unit.Unit, client); err != nil {
		return nil, usageErr(err)
	}
	sp.softDeletes = sp.entity != nil && isSoftDeleting(sp.entity)
	if ns.Cursor.Start != "" {
		kind, err := sp.src.CursorKind(ctx)
		if err != nil {
			return nil, classifySourceErr(err)
		}
		v, err := source.ParseStart(ns.Cursor.Start, kind == source.KindInt)
		if err != nil {
			return nil, usageErr(fmt.Errorf("config: %s.cursor.start: %w", ns.Key, err))
		}
		sp.start = &v
	}
	return sp, nil
}

// newEntity builds the stream's entity over the query's columns, and the
// fingerprint of its query and mapping. unit is the integer cursor's unit
// in use ("seconds" where earlier releases defaulted to it, so a state
// synced then keeps its fingerprint).
func newEntity(ns config.NamedStream, cols []string, unit string, client *cometchat.Client) (syncer.Entity, string, error) {
	mapped, deletedAt := entities.WithoutDeleted(cols)
	e, fp, err := newEntityOf(ns, mapped, unit, client)
	if err != nil || deletedAt < 0 {
		return e, fp, err
	}
	return entities.SoftDeletes{Entity: e, At: deletedAt}, fp + "+deleted", nil
}

// isSoftDeleting reports whether the stream's query selects a deleted
// column.
func isSoftDeleting(e syncer.Entity) bool {
	_, ok := e.(entities.SoftDeletes)
	return ok
}

// newEntityOf builds the entity over the mapped columns.
func newEntityOf(ns config.NamedStream, cols []string, unit string, client *cometchat.Client) (syncer.Entity, string, error) {
	c := ns.Cursor
	switch ns.Name {
	case config.StreamUsers:
		m, err := mapping.NewUsers(cols, c.Column, c.Tiebreaker, time.UTC)
		if err != nil {
			return nil, "", err
		}
		return entities.Users{Mapper: m, API: client, Permanent: ns.Delete == "permanent"}, m.Fingerprint(ns.Query, c.Column, c.Tiebreaker, unit), nil
	case config.StreamMembers:
		via, err := entities.ParseVia(ns.Via)
		if err != nil {
			return nil, "", err
		}
		m, err := mapping.NewMembers(cols, c.Column, c.Tiebreaker, time.UTC)
		if err != nil {
			return nil, "", err
		}
		return entities.Members{Mapper: m, API: client, Via: via}, m.Fingerprint(ns.Query, c.Column, c.Tiebreaker, unit, via.String()), nil
	default:
		newGroups := mapping.NewGroups
		if ns.Key == "source" {
			newGroups = mapping.New // the earlier form: errors name source.query
		}
		m, err := newGroups(cols, c.Column, c.Tiebreaker, time.UTC)
		if err != nil {
			return nil, "", err
		}
		return entities.Groups{Mapper: m, API: client}, m.Fingerprint(ns.Query, c.Column, c.Tiebreaker, unit), nil
	}
}
