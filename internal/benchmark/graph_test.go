package benchmark

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/config"
	"github.com/cometsync/cometsync/internal/mariadbtest"
)

// membersPerGroup is how many members each group of the graph fixture has:
// n memberships go to the first n/10 groups, and their users are the first
// n/10 users (each user in ten groups).
const membersPerGroup = 10

// graphOf returns a database of its own (apart from tableOf's, whose
// groups other benchmarks change) with chat_groups, app_users and
// memberships of n rows each, filling it on first use.
func graphOf(tb testing.TB, n int) *table {
	tb.Helper()
	t := databaseOf(tb, fmt.Sprintf("graph_%d", n), n)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if !t.graph {
		start := time.Now()
		fillGraph(tb, t.root, n)
		t.graph = true
		tb.Logf("filled app_users and memberships with %d rows each in %s", n, time.Since(start).Round(time.Millisecond))
	}
	return t
}

// fillGraph creates app_users and memberships and fills them with n rows
// each, as fill does chat_groups.
//
// Users: most with an avatar and JSON metadata, two in three with a last
// activity; updated_at a permutation of the ids, as for groups.
// Memberships: ten a group over the first n/10 groups, a group's members
// being users 1 + (g-1 + 7s) mod n/10 for s = 0..9 (distinct); a twentieth
// admins, a tenth moderators, the rest participants (most as NULL).
// updated_at is a permutation of the groups, shared by a group's members:
// its members were added together, and reading in cursor order visits the
// groups in random order, each group's members one after another.
func fillGraph(tb testing.TB, root *sql.DB, n int) {
	tb.Helper()
	exec := func(q string) {
		tb.Helper()
		if _, err := root.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	exec(mariadbtest.UsersSchema)
	exec(mariadbtest.MembersSchema)
	exec(`SET SESSION unique_checks = 0, foreign_key_checks = 0`)
	groups := n / membersPerGroup
	for from := 1; from <= n; from += fillChunk {
		to := min(from+fillChunk-1, n)
		exec(fmt.Sprintf(`INSERT INTO app_users (id, uid, display_name, avatar_url, created_at, last_seen_at, meta, updated_at)
			SELECT seq, CONCAT('u', seq), CONCAT('User ', seq),
				IF(seq %% 4 = 0, NULL, CONCAT('https://cdn.example.com/avatars/u', seq, '.png')),
				'2022-01-01' + INTERVAL seq SECOND,
				IF(seq %% 3 = 0, NULL, '2024-06-01' + INTERVAL seq SECOND),
				IF(seq %% 5 = 0, NULL, JSON_OBJECT('plan', ELT(1 + seq %% 3, 'free', 'pro', 'team'), 'external_id', seq)),
				'2024-01-01' + INTERVAL ((seq * 48271) %% 1000003) DIV 2 SECOND
			FROM seq_%d_to_%d`, from, to))
		exec(fmt.Sprintf(`INSERT INTO memberships (id, group_id, user_uid, role, joined_at, updated_at)
			SELECT seq, 1 + (seq - 1) DIV %[1]d,
				CONCAT('u', 1 + ((seq - 1) DIV %[1]d + 7 * ((seq - 1) %% %[1]d)) %% %[2]d),
				CASE seq %% 20 WHEN 0 THEN 'admin' WHEN 1 THEN 'moderator' WHEN 2 THEN 'moderator' WHEN 3 THEN 'participant' END,
				'2024-01-01' + INTERVAL seq SECOND,
				'2024-01-01' + INTERVAL ((1 + (seq - 1) DIV %[1]d) * 48271) %% 1000003 SECOND
			FROM seq_%[3]d_to_%[4]d`, membersPerGroup, groups, from, to))
	}
	exec(`ANALYZE TABLE app_users, memberships`)
}

// putMemberTargets stores in w's app, directly, the users and groups the
// memberships of a fixture of n rows name (n/10 of each), so that a
// members stream alone finds them.
func (w *world) putMemberTargets(n int) {
	for i := 1; i <= n/membersPerGroup; i++ {
		w.emu.PutUser(cometchat.User{UID: fmt.Sprint("u", i), Name: fmt.Sprint("User ", i)})
		w.emu.Put(cometchat.Group{GUID: fmt.Sprint("grp-", i), Name: fmt.Sprint("Group ", i), Type: "public"})
	}
}

// BenchmarkUsersBackfill100k times `cometsync once` of the users stream
// alone from an empty state over 100,000 users.
func BenchmarkUsersBackfill100k(b *testing.B) { benchUsers(b, rows100k) }

// BenchmarkUsersBackfill1M is BenchmarkUsersBackfill100k over 1,000,000
// users (goal: ≥ 20,000 users/s, peak RSS as at 100k).
func BenchmarkUsersBackfill1M(b *testing.B) { benchUsers(b, rows1M) }

func benchUsers(b *testing.B, n int) {
	benchStream(b, n, usersStream, nil, func(s cometchattest.Stats) int { return s.ImportedUsers })
}

// BenchmarkMembersBackfill100k times `cometsync once` of the members stream
// alone (via import) from an empty state over 100,000 memberships, their
// users and groups put in the app beforehand.
func BenchmarkMembersBackfill100k(b *testing.B) { benchMembers(b, rows100k) }

// BenchmarkMembersBackfill1M is BenchmarkMembersBackfill100k over 1,000,000
// memberships (goal: ≥ 20,000 memberships/s, peak RSS flat from 100k).
func BenchmarkMembersBackfill1M(b *testing.B) { benchMembers(b, rows1M) }

func benchMembers(b *testing.B, n int) {
	benchStream(b, n, membersStream, func(w *world) { w.putMemberTargets(n) },
		func(s cometchattest.Stats) int { return s.ImportedMembers })
}

// benchStream times a backfill of one stream of graphOf(n) from an empty
// state; prepare (if any) readies each new app, and created counts what
// the app created.
func benchStream(b *testing.B, n int, st stream, prepare func(*world), created func(cometchattest.Stats) int) {
	t := graphOf(b, n)
	binary(b)
	var runs []run
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w := newWorldOf(b, t, b.TempDir(), false, worldOpts{streams: []stream{st}})
		if prepare != nil {
			prepare(w)
		}
		b.StartTimer()
		r := w.once(b, n)
		b.StopTimer()
		if got := created(w.emu.Stats()); got != n {
			b.Fatalf("the emulator created %d %s, want %d", got, st.name, n)
		}
		runs = append(runs, r)
	}
	report(b, n, runs)
}

// graphStreams are the three streams of the graph fixture, members via
// import.
var graphStreams = []stream{usersStream, groupsStream, membersStream}

// graphSeed is the app and state of a completed backfill of the whole 1M
// graph, which BenchmarkGraphIncremental100Each1M starts from.
var graphSeed *world

// BenchmarkGraphBackfill1M times one `cometsync once` of the three streams
// from an empty state and app over 1,000,000 users, 1,000,000 groups and
// 1,000,000 memberships; rows/s counts the 3,000,000 objects. Its first run
// is the seed of BenchmarkGraphIncremental100Each1M.
func BenchmarkGraphBackfill1M(b *testing.B) {
	t := graphOf(b, rows1M)
	binary(b)
	var runs []run
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w := graphWorld(b, t)
		b.StartTimer()
		runs = append(runs, w.once(b, 3*rows1M))
		b.StopTimer()
		if s := w.emu.Stats(); s.ImportedUsers != rows1M || s.ImportedRows != rows1M || s.ImportedMembers != rows1M {
			b.Fatalf("the emulator created %d users, %d groups, %d memberships; want %d of each", s.ImportedUsers, s.ImportedRows, s.ImportedMembers, rows1M)
		}
		if graphSeed == nil {
			graphSeed = w
		}
	}
	report(b, 3*rows1M, runs)
}

// graphWorld is an empty app and state for the whole graph of t; the first
// lives as long as the run, to become the seed.
func graphWorld(b *testing.B, t *table) *world {
	opts := worldOpts{streams: graphStreams}
	if graphSeed != nil {
		return newWorldOf(b, t, b.TempDir(), false, opts)
	}
	dir, err := os.MkdirTemp(scratch, "graph-")
	if err != nil {
		b.Fatal(err)
	}
	return newWorldOf(b, t, dir, true, opts)
}

// BenchmarkGraphIncremental100Each1M times the whole `cometsync once`
// process after a full backfill of the 1M graph when 100 users, 100 groups
// and 100 memberships changed (goal: under 0.5 s): each iteration renames
// 100 random users and groups and changes the scope of 100 random
// memberships, all with updated_at = NOW(6).
func BenchmarkGraphIncremental100Each1M(b *testing.B) {
	if graphSeed == nil {
		w := graphWorld(b, graphOf(b, rows1M))
		start := time.Now()
		w.once(b, 3*rows1M)
		b.Logf("seeded the 1M graph in %s", time.Since(start).Round(time.Millisecond))
		graphSeed = w
	}
	w := graphSeed
	binary(b)
	rng := rand.New(rand.NewPCG(7, 8))
	var runs []run
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		root := w.table.root
		users, groups, members := pick(rng, rows1M), pick(rng, rows1M), pick(rng, rows1M)
		tag := fmt.Sprint("Renamed ", i, " ", time.Now().UnixNano())
		for _, q := range []string{
			`UPDATE app_users SET display_name = CONCAT(?, ' ', id), updated_at = NOW(6) WHERE id IN (` + users + `)`,
			`UPDATE chat_groups SET title = CONCAT(?, ' ', id), updated_at = NOW(6) WHERE id IN (` + groups + `)`,
		} {
			if _, err := root.Exec(q, tag); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := root.Exec(`UPDATE memberships SET role = IF(role = 'admin', 'moderator', 'admin'), updated_at = NOW(6) WHERE id IN (` + members + `)`); err != nil {
			b.Fatal(err)
		}
		before := w.emu.Stats()
		b.StartTimer()
		r := w.onceWith(b, 3*changed, 3*changed)
		b.StopTimer()
		after := w.emu.Stats()
		if u, g, m := after.UserUpdates-before.UserUpdates, after.Updates-before.Updates, after.ScopeChanges-before.ScopeChanges; u != changed || g != changed || m != changed {
			b.Fatalf("the emulator took %d user updates, %d group updates, %d scope changes; want %d of each", u, g, m, changed)
		}
		first, _, _ := strings.Cut(users, ",")
		if u, _ := w.emu.User("u" + first); u.Name != tag+" "+first {
			b.Fatalf("user u%s is named %q after the pass", first, u.Name)
		}
		runs = append(runs, r)
	}
	report(b, 3*changed, runs)
}

// The via-rest benchmark: restMembers memberships of the 100k graph (ten a
// group, so five add-members calls a batch of 50) against an emulator that
// enforces restPerMinute, CometChat's own limit of other calls.
const (
	restMembers   = 50_000
	restPerMinute = 10_000
)

// BenchmarkMembersREST100k times `cometsync once` of the members stream
// with `via: rest` over 50,000 memberships of the 100k graph (5,000
// POST /groups/{guid}/members of ten uids), other_per_minute set to 10,000
// in the config and enforced by the emulator (goal: ≥ 90 % of it).
// calls_per_min counts every call the emulator answered 200 (the key
// check included) over the whole process's wall time; of_configured is it
// over restPerMinute.
func BenchmarkMembersREST100k(b *testing.B) {
	t := graphOf(b, rows100k)
	binary(b)
	st := membersStream
	st.query += fmt.Sprintf("\nWHERE m.id <= %d", restMembers)
	st.via = "rest"
	var runs []run
	var calls, refused int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		w := newWorldOf(b, t, b.TempDir(), false, worldOpts{streams: []stream{st}, otherPerMinute: restPerMinute})
		w.putMemberTargets(t.rows)
		b.StartTimer()
		r := w.once(b, restMembers)
		b.StopTimer()
		s := w.emu.Stats()
		if s.MembersAdded != restMembers {
			b.Fatalf("the emulator added %d memberships, want %d", s.MembersAdded, restMembers)
		}
		for k, v := range s.Requests {
			switch {
			case strings.HasSuffix(k, " 200"):
				calls += v
			case strings.HasSuffix(k, " 429"):
				refused += v
			}
		}
		runs = append(runs, r)
	}
	report(b, restMembers, runs)
	var wall, pass time.Duration
	for _, r := range runs {
		wall += r.wall
		pass += r.pass.Duration
	}
	perMin := float64(calls) / wall.Minutes()
	b.ReportMetric(perMin, "calls_per_min")
	b.ReportMetric(perMin/restPerMinute, "of_configured")
	b.ReportMetric(float64(calls)/pass.Minutes()/restPerMinute, "of_configured_in_pass")
	b.ReportMetric(float64(refused)/float64(len(runs)), "refused_429")
}

// TestGraphHarness checks, quickly, what the graph benchmarks take for
// granted: the rendered config of the three streams loads as such, and
// the fixture's memberships are distinct and name groups and users the
// fixture has, the users and groups putMemberTargets stores.
func TestGraphHarness(t *testing.T) {
	const n = 2_000
	tab := graphOf(t, n)
	w := newWorldOf(t, tab, t.TempDir(), false, worldOpts{streams: graphStreams, otherPerMinute: 600})
	cfg, err := config.Load(w.config)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range cfg.Streams() {
		names = append(names, st.Name)
	}
	if got := strings.Join(names, ","); got != "users,groups,members" || cfg.CometChat.RateLimits.OtherPerMinute != 600 {
		t.Fatalf("the rendered config has streams %s and other_per_minute %v", got, cfg.CometChat.RateLimits.OtherPerMinute)
	}
	var rows, distinct, orphans int
	err = tab.root.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT g.guid, m.user_uid), SUM(u.id IS NULL OR g.id IS NULL OR u.id > ? OR g.id > ?)
		FROM memberships m LEFT JOIN chat_groups g ON g.id = m.group_id LEFT JOIN app_users u ON u.uid = m.user_uid`,
		n/membersPerGroup, n/membersPerGroup).Scan(&rows, &distinct, &orphans)
	if err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n || orphans != 0 {
		t.Fatalf("memberships: %d rows, %d distinct, %d naming a user or group beyond the first %d", rows, distinct, orphans, n/membersPerGroup)
	}
}
