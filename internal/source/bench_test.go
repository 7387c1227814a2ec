package source

import (
	"context"
	"testing"
	"time"
)

// BenchmarkReadPage reads 1,000-row pages of the joined groups query over
// 100,000 rows, wrapping around at the end, and reports rows per second.
func BenchmarkReadPage(b *testing.B) {
	const (
		total = 100_000
		batch = 10_000
		limit = 1_000
	)
	db := newDB(b, groupsSchema)
	mustExec(b, db.root, `INSERT INTO users SELECT CONCAT('u', seq), CONCAT('User ', seq) FROM seq_1_to_1000`)
	for from := 1; from <= total; from += batch {
		// A few rows share each microsecond, as after a bulk update.
		mustExec(b, db.root, `INSERT INTO chat_groups (guid, title, kind, owner_uid, created_at, updated_at)
			SELECT CONCAT('g', seq), CONCAT('Group ', seq), 'public', CONCAT('u', seq % 1200), '2024-01-01',
				'2024-01-01' + INTERVAL seq DIV 3 MICROSECOND FROM seq_1_to_1000000 WHERE seq BETWEEN ? AND ?`,
			from, from+batch-1)
	}
	mustExec(b, db.root, `ANALYZE TABLE chat_groups, users`)

	s := openSource(b, groupsConfig(db.reader+"?parseTime=true"))
	ctx := context.Background()
	upper := upperBound(b, s)
	var (
		after *Position
		rows  int
	)
	start := time.Now()
	for b.Loop() {
		page, err := s.ReadPage(ctx, after, upper, limit)
		if err != nil {
			b.Fatal(err)
		}
		rows += len(page)
		after = nil
		if len(page) == limit {
			last := page[len(page)-1]
			after = &Position{Cursor: last.Cursor, Key: last.Key}
		}
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}
