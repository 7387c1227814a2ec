package source

import (
	"context"
	"testing"
)

// The plan is in index order only when the page is read along an index on
// (cursor, tiebreaker), or on the cursor alone with InnoDB's appended
// primary key, with no sort: another index chosen for a WHERE, a cursor
// that is an expression, or no index at all each sort the rows.
func TestPlanInIndexOrder(t *testing.T) {
	const softDeleted = "SELECT id, name, type, update_at FROM channels WHERE delete_at = 0"
	tests := []struct {
		name, index, query string
		inOrder            bool
		keysetIndex        string
	}{
		{"index on (cursor, tiebreaker)", "KEY idx_keyset (update_at, id)", "SELECT id, name, type, update_at FROM channels", true, "idx_keyset"},
		{"index on the cursor, InnoDB primary key", "KEY idx_update (update_at)", "SELECT id, name, type, update_at FROM channels", true, "idx_update"},
		{"another index chosen for a WHERE", "", softDeleted, false, ""},
		{"keyset index and a WHERE on another index", "KEY idx_keyset (update_at, id)", softDeleted, true, "idx_keyset"},
		{"cursor is an expression", "KEY idx_keyset (update_at, id)",
			"SELECT id, name, type, GREATEST(update_at, delete_at) AS update_at FROM channels", false, ""},
		{"no index", "", "SELECT id, name, type, update_at FROM channels", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := channelsSchema
			if tt.index != "" {
				schema = schema[:len(schema)-1] + ",\n\t" + tt.index + "\n)"
			}
			td := newDB(t, schema)
			insertChannels(t, td, 20000)
			// Most channels archived: the soft-delete index looks selective.
			mustExec(t, td.root, "UPDATE channels SET delete_at = update_at WHERE CAST(SUBSTRING(id, 2) AS UNSIGNED) % 50 != 0")
			mustExec(t, td.root, "ANALYZE TABLE channels")
			cfg := channelsConfig(td.reader, "")
			cfg.Query = tt.query
			s := openSource(t, cfg)
			upper := upperBound(t, s)
			page, err := s.ReadPage(context.Background(), nil, upper, 1)
			if err != nil || len(page) != 1 {
				t.Fatalf("first row: %v %v", page, err)
			}
			plan, err := s.ExplainPage(context.Background(), Position{Cursor: upper, Key: page[0].Key}, upper, 100)
			if err != nil {
				t.Fatal(err)
			}
			if plan.InIndexOrder() != tt.inOrder {
				t.Errorf("InIndexOrder() = %t, want %t: %+v", plan.InIndexOrder(), tt.inOrder, plan)
			}
			if got := plan.KeysetIndex(); got != tt.keysetIndex {
				t.Errorf("KeysetIndex() = %q, want %q", got, tt.keysetIndex)
			}
			if !tt.inOrder && (!plan.Sorts() || plan.Rows < 400) {
				t.Errorf("a plan out of index order should sort the 400 live rows or more: %+v", plan)
			}
		})
	}
}
