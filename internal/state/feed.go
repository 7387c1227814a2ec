package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// keyFeed is the meta key of the binlog feed's state.
const keyFeed = "binlog"

// Feed is where a change feed (the binlog) is: every change before
// Position is acknowledged by CometChat and recorded.
type Feed struct {
	// Position is the feed's own position (binlog.Position as JSON).
	Position json.RawMessage `json:"position"`
	// Backfilled is set once the keyset backfill that follows the first
	// recorded position completed: until then a restart goes on with it
	// (from each stream's checkpoint) before streaming from Position.
	Backfilled bool `json:"backfilled"`
	// ReconcileDue is set when the feed lost its place (the binlog was
	// purged): the backfill (a rescan) is followed by a reconcile, for the
	// deletes in the lost stretch.
	ReconcileDue bool `json:"reconcile_due,omitempty"`
	// EventTime is when the newest acknowledged change was committed, and
	// AckedAt when CometChat acknowledged it: the lag is their difference.
	EventTime time.Time `json:"event_time,omitzero"`
	AckedAt   time.Time `json:"acked_at,omitzero"`
}

// Feed returns the feed's state; ok is false when none was recorded.
func (s *Store) Feed(ctx context.Context) (f Feed, ok bool, err error) {
	raw, err := s.metaJSON(ctx, keyFeed)
	if err != nil || raw == nil {
		return Feed{}, false, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return Feed{}, false, fmt.Errorf("state: the binlog position %s is unreadable: %w (run `cometsync once --resync` to start over)", raw, err)
	}
	return f, true, nil
}

// SetFeed records the feed's state.
func (s *Store) SetFeed(ctx context.Context, f Feed) error {
	raw, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("state: encode the binlog position: %w", err)
	}
	return setMeta(ctx, s.db, keyFeed, string(raw))
}

// ForgetFeed drops the feed's state: the next binlog run starts over from
// the server's position then, with a backfill.
func (s *Store) ForgetFeed(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, keyFeed); err != nil {
		return fmt.Errorf("state: forget the binlog position: %w", err)
	}
	return nil
}
