package benchmark

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/pgtest"
	"github.com/cometsync/cometsync/internal/source"
)

// The PostgreSQL benchmarks are the MariaDB ones on a PostgreSQL source:
// the same rows, query, pages and emulator. Its server starts on first use.
var (
	pgOnce sync.Once
	pgSrv  *pgtest.Server
	pgErr  error
)

// BenchmarkPostgresBackfill100k is BenchmarkBackfill100k on PostgreSQL.
func BenchmarkPostgresBackfill100k(b *testing.B) { benchBackfillOf(b, pgTableOf(b, rows100k)) }

// BenchmarkPostgresBackfill1M is BenchmarkBackfill1M on PostgreSQL.
func BenchmarkPostgresBackfill1M(b *testing.B) { benchBackfillOf(b, pgTableOf(b, rows1M)) }

// BenchmarkPostgresIncremental100Of1M is BenchmarkIncremental100Of1M on
// PostgreSQL (goal: under 0.5 s for the whole process).
func BenchmarkPostgresIncremental100Of1M(b *testing.B) {
	w := seededOf(b, func() *table { return pgTableOf(b, rows1M) })
	binary(b)
	rng := rand.New(rand.NewPCG(1, 2))
	var runs []run
	b.ResetTimer()
	for i := range b.N {
		runs = append(runs, renameAndRun(b, w, rng, fmt.Sprint("Renamed ", i), "clock_timestamp()", changed))
	}
	report(b, changed, runs)
}

// pgTableOf is tableOf on PostgreSQL.
func pgTableOf(tb testing.TB, n int) *table {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if t, ok := tables[fmt.Sprint("pg_groups_", n)]; ok {
		return t
	}
	pgOnce.Do(func() {
		if pgSrv, pgErr = pgtest.StartMain(); pgErr == nil {
			closers = append(closers, pgSrv.Stop)
		}
	})
	if pgErr != nil {
		tb.Fatal(pgErr)
	}
	start := time.Now()
	rootDSN := pgSrv.CreateDatabase(tb, fmt.Sprintf("groups_%d", n))
	root, err := sql.Open("pgx", rootDSN)
	if err != nil {
		tb.Fatal(err)
	}
	closers = append(closers, func() { root.Close() })
	pgFill(tb, root, n)
	t := &table{rows: n, root: root, reader: pgSrv.CreateReader(tb, rootDSN), driver: source.DriverPostgres}
	tables[fmt.Sprint("pg_groups_", n)] = t
	tb.Logf("filled chat_groups on PostgreSQL with %d rows in %s", n, time.Since(start).Round(time.Millisecond))
	return t
}

// pgFill is fill in PostgreSQL's SQL: the same rows, metadata as jsonb and
// tags as text[].
func pgFill(tb testing.TB, root *sql.DB, n int) {
	tb.Helper()
	exec := func(q string) {
		tb.Helper()
		if _, err := root.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE users (uid text PRIMARY KEY, display_name text, avatar_url text);
		CREATE TABLE chat_groups (id bigint PRIMARY KEY, guid text NOT NULL, title text, kind text, join_password text,
			icon_url text, created_at timestamptz, created_ms bigint, meta jsonb, tags text[], owner_uid text,
			updated_at timestamptz NOT NULL)`)
	exec(fmt.Sprintf(`INSERT INTO users SELECT 'u' || s, 'User ' || s, 'https://cdn.example.com/avatars/u' || s || '.png'
		FROM generate_series(1, %d) AS s`, users))
	for from := 1; from <= n; from += fillChunk {
		to := min(from+fillChunk-1, n)
		exec(fmt.Sprintf(`INSERT INTO chat_groups
			(id, guid, title, kind, join_password, icon_url, created_at, meta, tags, owner_uid, updated_at)
			SELECT s, 'grp-' || s, 'Group ' || s,
				(ARRAY['public', 'public', 'public', 'public', 'public', 'public', 'private', 'private', 'password', 'public'])[1 + s %% 10],
				CASE WHEN s %% 10 = 8 THEN 'pw-' || s END,
				CASE WHEN s %% 4 <> 0 THEN 'https://cdn.example.com/groups/' || s || '.png' END,
				timestamptz '2023-01-01 00:00:00+00' + s * interval '1 second',
				CASE WHEN s %% 5 <> 0 THEN jsonb_build_object('region', (ARRAY['eu', 'us', 'in', 'apac'])[1 + s %% 4], 'tier', s %% 3, 'external_id', s) END,
				CASE s %% 3 WHEN 0 THEN ARRAY['sales', 'emea'] WHEN 1 THEN ARRAY['support', 'tier-2'] END,
				CASE WHEN s %% 7 <> 0 THEN 'u' || (1 + s %% %d) END,
				timestamptz '2024-01-01 00:00:00+00' + ((s::bigint * 48271) %% 1000003) / 2 * interval '1 second'
			FROM generate_series(%d, %d) AS s`, users, from, to))
	}
	exec(`CREATE INDEX idx_cursor ON chat_groups (updated_at, id)`)
	exec(`VACUUM ANALYZE chat_groups`)
	exec(`VACUUM ANALYZE users`)
}
