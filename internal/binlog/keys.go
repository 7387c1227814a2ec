package binlog

import (
	"math"
	"time"
)

// keySet is one table's keys in a batch, deduplicated, in arrival order.
type keySet struct {
	seen map[any]struct{}
	keys []any
}

// bytesKey stands for a []byte key in keySet.seen (slices cannot be map
// keys).
type bytesKey string

func (s *keySet) add(k any) bool {
	id := k
	if b, ok := k.([]byte); ok {
		id = bytesKey(b)
	}
	if _, dup := s.seen[id]; dup {
		return false
	}
	s.seen[id] = struct{}{}
	s.keys = append(s.keys, k)
	return true
}

// pending is keys gathered for a Batch not yet handed over.
type pending struct {
	keys      map[string]*keySet
	events    map[string]map[string]int
	n         int // keys, all tables
	eventTime time.Time
}

func newPending() *pending {
	return &pending{keys: map[string]*keySet{}, events: map[string]map[string]int{}}
}

func (p *pending) empty() bool { return p.n == 0 && len(p.events) == 0 }

func (p *pending) add(table string, key any) {
	s := p.keys[table]
	if s == nil {
		s = &keySet{seen: map[any]struct{}{}}
		p.keys[table] = s
	}
	if s.add(key) {
		p.n++
	}
}

func (p *pending) count(table, action string, rows int) {
	m := p.events[table]
	if m == nil {
		m = map[string]int{}
		p.events[table] = m
	}
	m[action] += rows
}

func (p *pending) touch(t time.Time) {
	if t.After(p.eventTime) {
		p.eventTime = t
	}
}

// merge moves o's keys and counts into p.
func (p *pending) merge(o *pending) {
	for table, s := range o.keys {
		for _, k := range s.keys {
			p.add(table, k)
		}
	}
	for table, m := range o.events {
		for action, n := range m {
			p.count(table, action, n)
		}
	}
	p.touch(o.eventTime)
}

func (p *pending) batch(pos Position, commit bool) Batch {
	b := Batch{Keys: make(map[string][]any, len(p.keys)), Events: p.events, Position: pos, Commit: commit, EventTime: p.eventTime}
	for table, s := range p.keys {
		b.Keys[table] = s.keys
	}
	return b
}

// normalizeKey makes the key values of one column comparable across
// events: integers as int64 (uint64 above its range), corrected for
// UNSIGNED columns, which the binlog carries as signed.
func normalizeKey(v any, unsigned bool) any {
	switch x := v.(type) {
	case int8:
		if unsigned {
			return int64(uint8(x))
		}
		return int64(x)
	case int16:
		if unsigned {
			return int64(uint16(x))
		}
		return int64(x)
	case int32:
		if unsigned {
			return int64(uint32(x))
		}
		return int64(x)
	case int64:
		if unsigned && x < 0 {
			return uint64(x)
		}
		return x
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	}
	return v
}
