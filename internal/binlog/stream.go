package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// errUntil ends Stream once it reached its until position.
var errUntil = errors.New("reached the until position")

// handlerError carries the handler's error out of Stream unchanged.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// Stream reads the binlog from `from` and hands the keys of the changed
// rows of cfg.Tables to handle, in order, synchronously (see the package
// doc for batching, slicing and positions). With until not nil it returns
// nil once it has reached until (at once when from is there already). It
// reconnects on lost connections; it returns an error wrapping ErrPurged
// when the binlog it needs is gone, handle's error unchanged, and
// ctx.Err() on cancel.
func Stream(ctx context.Context, cfg Config, from Position, until *Position, handle func(ctx context.Context, b Batch) error) error {
	c, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.close()
	if from.Flavor == "" {
		from.Flavor = c.flavor
	}
	if from.GTID == "" && from.File == "" {
		return errors.New("binlog: stream: the start position is empty (take one from Current)")
	}
	if until != nil {
		done, err := reached(from, *until)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	s := &stream{c: c, tables: newTables(c), pos: from, until: until, handle: handle, log: c.log.Named("binlog")}
	backoff := 100 * time.Millisecond
	for {
		progressed, err := s.run(ctx)
		switch {
		case errors.Is(err, errUntil):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrPurged):
			return fmt.Errorf("binlog: resume from %s: %w", s.pos, err)
		}
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if denied(err) {
			return fmt.Errorf("%w: reading the binlog needs the REPLICATION SLAVE privilege (see `cometsync check`)", err)
		}
		if progressed {
			backoff = 100 * time.Millisecond
		}
		s.log.Warn("binlog connection lost; reconnecting", zap.String("position", s.pos.String()),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// denied reports whether err is the server refusing the user, which no
// reconnect mends. MariaDB answers a binlog dump without REPLICATION SLAVE
// with 1045, as for a wrong password.
func denied(err error) bool {
	var my *gomysql.MyError
	if !errors.As(err, &my) {
		return false
	}
	switch my.Code {
	case gomysql.ER_ACCESS_DENIED_ERROR, gomysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, gomysql.ER_DBACCESS_DENIED_ERROR, gomysql.ER_TABLEACCESS_DENIED_ERROR:
		return true
	}
	return false
}

// stream is one Stream's state across reconnects.
type stream struct {
	c      *conn
	tables *tables
	pos    Position // the last position handed over with Commit=true (or from)
	until  *Position
	handle func(context.Context, Batch) error
	log    *zap.Logger
}

// reader is one connection's reading: from s.pos until an error.
type reader struct {
	s   *stream
	cur Position        // after the last event read
	set gomysql.GTIDSet // the GTID set after the last commit, nil without GTIDs

	gtid    func() error // adds the open transaction's GTID to set at its commit
	inTx    bool
	done    *pending // committed, not yet handed over; its position is doneAt
	doneAt  Position
	open    *pending // the open transaction
	sliced  bool     // the open transaction was handed over in part already
	flushBy time.Time
	handed  bool
}

// run reads one connection's worth of events. progressed says whether it
// handed anything over (to reset the reconnect backoff).
func (s *stream) run(ctx context.Context) (progressed bool, err error) {
	bs, st, err := s.c.syncer(s.pos)
	if err != nil {
		return false, err
	}
	defer bs.Close()
	r := &reader{s: s, cur: s.pos, done: newPending(), open: newPending(), doneAt: s.pos}
	if s.pos.GTID != "" {
		if r.set, err = gomysql.ParseGTIDSet(s.c.flavor, s.pos.GTID); err != nil {
			return false, fmt.Errorf("binlog: gtid %q: %w", s.pos.GTID, err)
		}
	}
	defer func() { progressed = r.handed }()
	for {
		ev, err := r.next(ctx, st)
		if err != nil {
			if ctx.Err() == nil {
				// Hand over what committed before the break: it is not
				// read again after the reconnect.
				if ferr := r.flush(ctx); ferr != nil {
					return r.handed, ferr
				}
			}
			return r.handed, classify(err)
		}
		if ev == nil {
			if err := r.flush(ctx); err != nil {
				return r.handed, err
			}
			continue
		}
		if err := r.event(ctx, ev); err != nil {
			return r.handed, err
		}
	}
}

// next waits for the next event, or returns nil, nil when the coalescing
// window of the committed keys closes first.
func (r *reader) next(ctx context.Context, st *replication.BinlogStreamer) (*replication.BinlogEvent, error) {
	if r.flushBy.IsZero() {
		return st.GetEvent(ctx)
	}
	wait := time.Until(r.flushBy)
	if wait <= 0 {
		return nil, nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ev, err := st.GetEvent(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	return ev, err
}

// event handles one binlog event.
func (r *reader) event(ctx context.Context, ev *replication.BinlogEvent) error {
	if _, ok := ev.Event.(*replication.HeartbeatEvent); ok {
		return nil // says where the server is, not where this read is
	}
	if ev.Header.LogPos != 0 {
		r.cur.Offset = ev.Header.LogPos
	}
	at := time.Unix(int64(ev.Header.Timestamp), 0)
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.cur.File, r.cur.Offset = string(e.NextLogName), uint32(e.Position)
	case *replication.MariadbGTIDEvent:
		// MariaDB's GTID event opens the transaction (no BEGIN follows),
		// but for a standalone statement (DDL), which it commits itself.
		r.inTx = !e.IsStandalone()
		gtid := e.GTID
		r.gtid = func() error {
			if set, ok := r.set.(*gomysql.MariadbGTIDSet); ok {
				return set.AddSet(&gtid)
			}
			return nil
		}
	case *replication.GTIDEvent:
		r.mysqlGTID(e, gomysql.Tag{})
	case *replication.GtidTaggedLogEvent:
		r.mysqlGTID(&e.GTIDEvent, e.Tag)
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch strings.ToUpper(q) {
		case "BEGIN", "START TRANSACTION":
			r.inTx = true
			return nil
		case "COMMIT", "ROLLBACK":
			// Non-transactional tables end their group so, not with an XID.
			return r.commit(ctx, at)
		}
		if strings.HasPrefix(strings.ToUpper(q), "SAVEPOINT") || strings.HasPrefix(strings.ToUpper(q), "ROLLBACK TO") {
			return nil
		}
		r.s.tables.changed(q)
		if !r.inTx {
			return r.commit(ctx, at)
		}
	case *replication.XIDEvent:
		return r.commit(ctx, at)
	case *replication.RowsEvent:
		return r.rows(ctx, ev.Header, e, at)
	case *replication.TransactionPayloadEvent:
		for _, sub := range e.Events {
			if err := r.event(ctx, sub); err != nil {
				return err
			}
		}
		return nil
	}
	if !r.inTx {
		// Between transactions every position is a safe resume point:
		// let it reach until (a rotate after the last commit, say).
		return r.checkUntil(ctx)
	}
	return nil
}

func (r *reader) mysqlGTID(e *replication.GTIDEvent, tag gomysql.Tag) {
	sid, gno := e.SID, e.GNO
	r.gtid = func() error {
		set, ok := r.set.(*gomysql.MysqlGTIDSet)
		if !ok {
			return nil
		}
		u, err := uuid.FromBytes(sid)
		if err != nil {
			return fmt.Errorf("binlog: gtid event: %w", err)
		}
		set.AddGTIDWithTag(u, tag, gno)
		return nil
	}
}

// rows adds the keys of a rows event to the open transaction.
func (r *reader) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent, at time.Time) error {
	if len(e.Rows) == 0 {
		return nil // a table not asked for: not even decoded
	}
	idx, cols, ok, err := r.s.tables.keyIndex(ctx, e)
	if !ok {
		return nil
	}
	if errors.Is(err, errSchema) {
		r.s.log.Error("skipping a rows event", zap.String("position", r.cur.String()), zap.Error(err))
		return nil
	}
	if err != nil {
		return err
	}
	action, step := Insert, 1
	switch h.EventType {
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.PARTIAL_UPDATE_ROWS_EVENT, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		action, step = Update, 2 // before image, after image
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		action = Delete
	}
	for i, row := range e.Rows {
		if i%step == 0 {
			r.open.count(cols.name, action, 1)
		}
		r.open.touch(at)
		if idx >= len(row) || row[idx] == nil {
			continue // no key in this image (binlog_row_image=MINIMAL) or NULL
		}
		r.open.add(cols.name, normalizeKey(row[idx], cols.unsigned))
		if r.open.n >= SliceKeys {
			if err := r.slice(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// slice hands over a big transaction's keys so far: first what committed
// before it, then this slice, whose position must not be persisted.
func (r *reader) slice(ctx context.Context) error {
	if err := r.flush(ctx); err != nil {
		return err
	}
	if err := r.give(ctx, r.open.batch(r.doneAt, false)); err != nil {
		return err
	}
	r.open, r.sliced = newPending(), true
	return nil
}

// commit ends the open transaction: its keys join the committed ones, and
// the position moves past it.
func (r *reader) commit(ctx context.Context, at time.Time) error {
	r.inTx = false
	if r.gtid != nil {
		if err := r.gtid(); err != nil {
			return err
		}
		r.gtid = nil
	}
	if r.set != nil {
		r.cur.GTID = r.set.String()
	}
	r.done.merge(r.open)
	r.done.touch(at)
	r.open = newPending()
	r.doneAt = r.cur
	if r.sliced || r.done.n >= CoalesceKeys {
		r.sliced = false
		if err := r.flush(ctx); err != nil {
			return err
		}
	} else if r.flushBy.IsZero() {
		r.flushBy = time.Now().Add(idleWindow)
	}
	if r.done.n > 0 {
		// Keys are waiting: the short window.
		if by := time.Now().Add(CoalesceWindow); by.Before(r.flushBy) {
			r.flushBy = by
		}
	}
	return r.checkUntil(ctx)
}

// checkUntil hands over everything and ends the run once until is reached
// at a point between transactions.
func (r *reader) checkUntil(ctx context.Context) error {
	if r.s.until == nil {
		return nil
	}
	ok, err := reached(r.cur, *r.s.until)
	if err != nil || !ok {
		return err
	}
	r.doneAt = r.cur
	if err := r.flush(ctx); err != nil {
		return err
	}
	return errUntil
}

// flush hands over the committed keys, if there are any or the position
// moved.
func (r *reader) flush(ctx context.Context) error {
	r.flushBy = time.Time{}
	if r.doneAt == r.s.pos && r.done.empty() {
		return nil
	}
	if err := r.give(ctx, r.done.batch(r.doneAt, true)); err != nil {
		return err
	}
	r.s.pos = r.doneAt
	r.done = newPending()
	return nil
}

func (r *reader) give(ctx context.Context, b Batch) error {
	if err := r.s.handle(ctx, b); err != nil {
		return handlerError{err}
	}
	r.handed = true
	return nil
}

// reached reports whether p is at or past until: by GTID set where both
// have one, by file and offset otherwise.
func reached(p, until Position) (bool, error) {
	if p.GTID != "" && until.GTID != "" {
		flavor := p.Flavor
		if flavor == "" {
			flavor = until.Flavor
		}
		a, err := gomysql.ParseGTIDSet(flavor, p.GTID)
		if err != nil {
			return false, fmt.Errorf("binlog: gtid %q: %w", p.GTID, err)
		}
		b, err := gomysql.ParseGTIDSet(flavor, until.GTID)
		if err != nil {
			return false, fmt.Errorf("binlog: until gtid %q: %w", until.GTID, err)
		}
		return a.Contain(b), nil
	}
	if until.GTID != "" && until.File == "" {
		return false, fmt.Errorf("binlog: cannot compare %s with the until position %s", p, until)
	}
	if p.File == "" {
		return false, fmt.Errorf("binlog: cannot compare %s with the until position %s", p, until)
	}
	return gomysql.Position{Name: p.File, Pos: p.Offset}.Compare(gomysql.Position{Name: until.File, Pos: until.Offset}) >= 0, nil
}
