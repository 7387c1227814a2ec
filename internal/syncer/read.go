package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/source"
	"github.com/cometsync/cometsync/internal/state"
)

// read produces batches in read order: first the rows in the error store,
// re-read by key whatever the watermark, then the keyset pages.
func (p *pass) read(ctx context.Context, after *source.Position, upper source.Value, work chan<- *batch, results chan<- result) error {
	s := p.s
	emit := func(b *batch) error { return p.emit(ctx, b, work, results) }
	if p.keys != nil {
		return p.readKeyList(ctx, emit)
	}
	if err := p.readRetries(ctx, emit); err != nil {
		return err
	}

	cur := newBatch()
	for {
		rows, err := s.src.ReadPage(ctx, after, upper, s.cfg.PageSize)
		if err != nil {
			return &PassError{Stage: StageSource, Err: err}
		}
		if len(rows) == 0 {
			break
		}
		var ready []*batch
		cur, ready, err = p.classifyPage(ctx, rows, cur, byCursor)
		if err != nil {
			return err
		}
		// A span with nothing to send finishes at once and moves the
		// checkpoint, so a long run of unchanged rows is never re-read.
		if len(cur.items) == 0 {
			ready = append(ready, cur)
			cur = newBatch()
		}
		for _, b := range ready {
			if err := emit(b); err != nil {
				return err
			}
		}
		last := rows[len(rows)-1]
		after = &source.Position{Cursor: last.Cursor, Key: last.Key}
		if len(rows) < s.cfg.PageSize {
			break
		}
	}
	return emit(cur)
}

// emit hands a batch on, numbered in read order.
func (p *pass) emit(ctx context.Context, b *batch, work chan<- *batch, results chan<- result) error {
	if b.empty() {
		return nil
	}
	b.seq = p.seq
	p.seq++
	if b.holdsDelete {
		// The checkpoint stays before this batch until its deletes are
		// made, after the upserts (see pass.finishDeletes).
		p.holdSeq.CompareAndSwap(noHold, int64(b.seq))
	}
	// A batch with nothing to send is finished already; it still goes
	// through the collector so the checkpoint moves in order.
	if len(b.items) == 0 {
		select {
		case results <- result{b: b}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case work <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// How a row came to be read: by the cursor, from the error store, or by
// its key from a feed's event (binlog). Only cursor reads move the
// checkpoint.
type readKind int

const (
	byCursor readKind = iota
	byRetry
	byEvent
)

// classifyPage maps a page of rows and decides each one, adding to cur;
// it returns the batch being filled and the batches that are full, in
// order. Rows from the error store (retry) have no position. The lookup
// of the page's guids in the state and their claims are one step against
// the collector (claimMu); the batches are emitted by the caller, outside
// it, as emitting can wait for the collector.
func (p *pass) classifyPage(ctx context.Context, rows []source.Row, cur *batch, kind readKind) (*batch, []*batch, error) {
	p.claimMu.Lock()
	defer p.claimMu.Unlock()
	mapped, known, err := p.mapRows(ctx, rows)
	if err != nil {
		return nil, nil, err
	}
	var ready []*batch
	for i := range rows {
		m := &mapped[i]
		switch {
		case kind == byRetry:
			cur.done.Retried++
			p.retried[m.key] = true
			p.classify(cur, m, known, false)
		case p.retried[m.key]:
			// Already handled this pass from the error store, as read
			// after the upper bound was taken: not sent twice.
			cur.rows++
		default:
			p.cursorRead++
			p.classify(cur, m, known, true)
		}
		if kind == byCursor {
			cur.end = &source.Position{Cursor: rows[i].Cursor, Key: rows[i].Key}
		}
		if len(cur.items) >= p.s.cfg.BatchSize {
			ready = append(ready, cur)
			cur = newBatch()
		}
	}
	return cur, ready, nil
}

// readRetries re-reads the rows of the error store that are not parked.
func (p *pass) readRetries(ctx context.Context, emit func(*batch) error) error {
	s := p.s
	raw, err := s.store.RetryKeys(ctx)
	if err != nil {
		return &PassError{Stage: StageState, Err: err}
	}
	if len(raw) == 0 {
		return nil
	}
	keys := make([]source.Value, 0, len(raw))
	for _, r := range raw {
		var v source.Value
		if err := json.Unmarshal(r, &v); err != nil {
			return &PassError{Stage: StageState, Err: fmt.Errorf("row error key %s is unreadable: %w", r, err)}
		}
		keys = append(keys, v)
	}
	return p.readByKey(ctx, keys, byRetry, emit)
}

// readKeyList reads the rows of a feed's batch by key (see RunKeys).
func (p *pass) readKeyList(ctx context.Context, emit func(*batch) error) error {
	if p.retryFirst {
		if err := p.readRetries(ctx, emit); err != nil {
			return err
		}
	}
	return p.readByKey(ctx, p.keys, byEvent, emit)
}

// readByKey re-reads rows by their keys, a page at a time, and decides
// each. A row the source no longer returns was deleted outright: what it
// delivered is deleted (under the brake), and its row error, if any, is
// resolved.
func (p *pass) readByKey(ctx context.Context, keys []source.Value, kind readKind, emit func(*batch) error) error {
	s := p.s
	wanted := make(map[string]source.Value, len(keys))
	for _, v := range keys {
		wanted[v.String()] = v
	}
	for start := 0; start < len(keys); start += s.cfg.PageSize {
		chunk := keys[start:min(start+s.cfg.PageSize, len(keys))]
		rows, err := s.src.ReadKeys(ctx, chunk)
		if err != nil {
			return &PassError{Stage: StageSource, Err: err}
		}
		for i := range rows {
			delete(wanted, rows[i].Key.String())
		}
		cur, ready, err := p.classifyPage(ctx, rows, newBatch(), kind)
		if err != nil {
			return err
		}
		for _, b := range append(ready, cur) {
			if err := emit(b); err != nil {
				return err
			}
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	gone, err := p.vanished(ctx, wanted)
	if err != nil {
		return err
	}
	return emit(gone)
}

// vanished decides the rows that are no longer in the source: each one's
// delivered objects are deleted at the end of the pass, and a row error
// of one that delivered nothing is resolved (it cannot fail any more).
func (p *pass) vanished(ctx context.Context, rows map[string]source.Value) (*batch, error) {
	b := newBatch()
	p.claimMu.Lock()
	defer p.claimMu.Unlock()
	rowKeys := make([]string, 0, len(rows))
	for k := range rows {
		rowKeys = append(rowKeys, k)
	}
	sort.Strings(rowKeys)
	owned, err := p.s.store.OwnedBy(ctx, rowKeys)
	if err != nil {
		return nil, &PassError{Stage: StageState, Err: err}
	}
	for _, k := range rowKeys {
		b.rows++
		_, hadErr := p.errKeys[k]
		objs := owned[k]
		for _, d := range objs {
			p.queueDelete(b, deleteItem{key: d.Key, rowKey: k, keyValue: rows[k], hadErr: hadErr})
		}
		if len(objs) == 0 && hadErr {
			b.changes.Cleared = append(b.changes.Cleared, k)
			b.done.Cleared++
		}
	}
	return b, nil
}

// mappedRow is one row after mapping.
type mappedRow struct {
	ok       bool
	key      string
	keyValue source.Value // the tiebreaker as read, to re-read the row
	obj      Object
	err      error
	values   []any
	// old are other keys the state holds as delivered by this row: its
	// key changed (a group's guid renamed), and they are to be deleted.
	old []string
}

// mapRows maps a page and looks up, in one query, what the state knows of
// its guids.
func (p *pass) mapRows(ctx context.Context, rows []source.Row) ([]mappedRow, map[string]state.Delivered, error) {
	out := make([]mappedRow, len(rows))
	guids := make([]string, 0, len(rows))
	for i, r := range rows {
		o, err := p.s.entity.Map(r.Values)
		out[i] = mappedRow{ok: err == nil, key: r.Key.String(), keyValue: r.Key, obj: o, err: err, values: r.Values}
		if err == nil {
			guids = append(guids, o.Key)
		}
	}
	known, err := p.s.store.Known(ctx, guids)
	if err != nil {
		return nil, nil, &PassError{Stage: StageState, Err: err}
	}
	if err := p.findOldKeys(ctx, out, known); err != nil {
		return nil, nil, err
	}
	return out, known, nil
}

// findOldKeys sets, for each valid row that may have changed its key, the
// other keys the state holds as delivered by that row. A row whose key the
// state already records as its own cannot have changed it since, unless
// the delete of the old one failed (the row is in the error store), so
// most rows of an incremental pass or a rescan cost no lookup.
func (p *pass) findOldKeys(ctx context.Context, rows []mappedRow, known map[string]state.Delivered) error {
	var ask []string
	for i := range rows {
		m := &rows[i]
		if !m.ok {
			continue
		}
		_, hadErr := p.errKeys[m.key]
		if d, ok := known[m.obj.Key]; ok && d.RowKey == m.key && !hadErr && !p.wasHeld {
			continue
		}
		ask = append(ask, m.key)
	}
	if len(ask) == 0 {
		return nil
	}
	owned, err := p.s.store.OwnedBy(ctx, ask)
	if err != nil {
		return &PassError{Stage: StageState, Err: err}
	}
	for i := range rows {
		m := &rows[i]
		for _, d := range owned[m.key] {
			if m.ok && d.Key != m.obj.Key {
				m.old = append(m.old, d.Key)
			}
		}
	}
	return nil
}

// deleteOldKeys deletes, at the end of the pass and under the brake, the
// keys a row owned before its key changed. A key that another row claimed
// in this pass is that row's now, and stays.
func (p *pass) deleteOldKeys(b *batch, m *mappedRow) {
	for _, k := range m.old {
		p.queueDelete(b, deleteItem{key: k, rowKey: m.key, keyValue: m.keyValue, oldKey: true})
	}
}

// queueDelete records, for the end of the pass, the delete of an object the
// state holds as delivered by row d.rowKey, which no longer maps to it; b
// is the batch that asked. A key another row claimed in this pass is that
// row's now and stays; a key already queued is not queued twice.
func (p *pass) queueDelete(b *batch, d deleteItem) {
	if owner, ok := p.claims[d.key]; (ok && owner != d.rowKey) || p.queued[d.key] {
		return
	}
	if p.queued == nil {
		p.queued = map[string]bool{}
	}
	p.queued[d.key] = true
	b.holdsDelete = true
	p.addDelete(d)
}

// classify decides what happens to one row: invalid, parked, a duplicate
// key, unchanged, or sent. fromCursor tells a row read by the cursor from a
// retry of the error store.
func (p *pass) classify(b *batch, m *mappedRow, known map[string]state.Delivered, fromCursor bool) {
	b.rows++
	b.done.Read++
	ek, hadErr := p.errKeys[m.key]
	if !m.ok {
		rowHash := hashValues(m.values)
		if hadErr && ek.Parked && ek.RowHash == rowHash {
			b.done.Parked++
			return
		}
		guid := m.obj.Key // set when the key itself was valid
		b.done.Invalid++
		if !hadErr {
			b.done.NewInvalid++
		}
		if fromCursor {
			p.noteInvalid(m.err)
		}
		b.changes.Failed = append(b.changes.Failed, state.Failure{
			RowKey: m.key, KeyJSON: keyJSON(m.keyValue), GUID: guid, Code: CodeInvalidRow, Message: m.err.Error(), RowHash: rowHash,
		})
		return
	}
	if m.obj.Deleted {
		p.classifyDeleted(b, m, known, hadErr)
		p.deleteOldKeys(b, m)
		return
	}
	h := m.obj.Hash
	if hadErr && ek.Parked && ek.RowHash == h {
		b.done.Parked++
		return
	}
	guid := m.obj.Key
	d, isKnown := known[guid]
	if owner := p.owner(guid, d); owner != "" && owner != m.key {
		p.duplicate(b, m, h, owner, hadErr)
		return
	}
	p.deleteOldKeys(b, m)
	var kn *state.Delivered
	if isKnown {
		kn = &d
		if !p.resync && d.Hash == h {
			b.done.Unchanged++
			if hadErr {
				b.changes.Cleared = append(b.changes.Cleared, m.key)
				b.done.Cleared++
			}
			if d.RowKey == "" {
				// Delivered before owners were recorded: this row owns it.
				p.claim(b, guid, m.key)
				b.changes.Delivered = append(b.changes.Delivered, state.Delivered{Key: guid, Hash: d.Hash, Present: d.Present, RowKey: m.key})
			}
			return
		}
	}
	p.claim(b, guid, m.key)
	b.items = append(b.items, item{key: m.key, keyValue: m.keyValue, obj: m.obj, known: kn})
}

// owner is the row that owns guid: one claimed in this pass, else the one
// the state recorded (d, when the state knows the guid); "" for none.
func (p *pass) owner(guid string, d state.Delivered) string {
	if k, ok := p.claims[guid]; ok {
		return k
	}
	return d.RowKey
}

// claim records that the row with key owns guid from now on in this pass.
// During a bulk load only the guids the source has more than once need it.
func (p *pass) claim(b *batch, guid, key string) {
	if p.bulk && !p.dupGUIDs.has(guid) {
		return
	}
	p.claims[guid] = key
	b.claimed = append(b.claimed, guid)
}

// duplicate records a row that maps to a guid another row owns: it is never
// sent, as that would merge two rows into one CometChat object.
func (p *pass) duplicate(b *batch, m *mappedRow, hash, owner string, hadErr bool) {
	b.done.Duplicate++
	if !hadErr {
		b.done.NewDuplicate++
	}
	b.changes.Failed = append(b.changes.Failed, state.Failure{
		RowKey: m.key, KeyJSON: keyJSON(m.keyValue), GUID: m.obj.Key, Code: CodeDuplicateKey, RowHash: hash,
		Message: fmt.Sprintf("%q is already the key of row %s, and this row %s maps to it too: never sent, as CometChat "+
			"would merge the two rows into one object; select a key that is unique per row, e.g. CONCAT(team_id, '-', name) AS guid",
			m.obj.Key, owner, m.key),
	})
}

// noteInvalid counts an invalid row read by the cursor by the field it
// failed on, keeping one message of each field as an example.
func (p *pass) noteInvalid(err error) {
	p.cursorInvalid++
	field := "the row"
	var fe *mapping.FieldError
	if errors.As(err, &fe) {
		field = fe.Field
	}
	p.invalidBy[field]++
	msgs := p.invalidExample[field]
	if msgs == nil {
		msgs = map[string]int{}
		p.invalidExample[field] = msgs
	}
	// The messages name the value: keep count of a few, to show the most
	// common one (a raw enum has a handful of values).
	if _, ok := msgs[err.Error()]; ok || len(msgs) < maxExamples {
		msgs[err.Error()]++
	}
}

// maxExamples bounds the distinct messages kept per field by noteInvalid.
const maxExamples = 32

// mostCommon returns the key of counts with the highest count (the least
// key among equals), and the count.
func mostCommon(counts map[string]int) (string, int) {
	best, n := "", 0
	for k, c := range counts {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best, n
}

// hashValues identifies the content of a row that could not be mapped, so
// that a parked invalid row is retried only when it changes.
func hashValues(values []any) string {
	h := sha256.New()
	for _, v := range values {
		switch x := v.(type) {
		case nil:
			h.Write([]byte{0})
		case []byte:
			fmt.Fprintf(h, "b%d:", len(x))
			h.Write(x)
		case string:
			fmt.Fprintf(h, "s%d:%s", len(x), x)
		case time.Time:
			fmt.Fprintf(h, "t%s", x.Format(time.RFC3339Nano))
		default:
			fmt.Fprintf(h, "v%T:%v", x, x)
		}
		h.Write([]byte{1})
	}
	return string(h.Sum(nil)[:16])
}

// keyJSON encodes a row's key for the error store; only failed rows need
// it, so it is not computed for every row read.
func keyJSON(v source.Value) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Value always encodes; keep the row rather than lose it.
		b, _ = json.Marshal(map[string]string{"kind": "text", "value": v.String()})
	}
	return b
}
