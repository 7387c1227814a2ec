package cometchattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// typicalUsersBody returns a users import request of n users shaped like
// the ones the users stream sends: the common fields set, encoded the way
// cometchat.Client encodes them.
func typicalUsersBody(tb testing.TB, n int) []byte {
	tb.Helper()
	users := make(map[string]cometchat.User, n)
	for i := range n {
		uid := fmt.Sprintf("user-%06d", i)
		users[uid] = cometchat.User{
			UID:          uid,
			Name:         fmt.Sprintf("User number %d", i),
			Avatar:       "https://cdn.example.com/avatars/" + uid + ".png",
			Link:         "https://intranet.example.com/people/" + uid,
			Role:         "default",
			Metadata:     json.RawMessage(fmt.Sprintf(`{"department":"sales","source_id":%d,"v":2}`, i)),
			Tags:         []string{"imported", fmt.Sprintf("t%d", i%5)},
			CreatedAt:    1673421419 + int64(i),
			LastActiveAt: 1673500000 + int64(i),
		}
	}
	return marshalBody(tb, "users", users)
}

// typicalMembersBody returns a members import request of n memberships of
// users user-000000... in groups grp-000000... (ten members a group), with
// the scopes and join times the members stream sends.
func typicalMembersBody(tb testing.TB, n int) []byte {
	tb.Helper()
	scopes := []string{cometchat.ScopeParticipant, cometchat.ScopeModerator, cometchat.ScopeAdmin, cometchat.ScopeParticipant}
	members := make(map[string]cometchat.Member, n)
	for i := range n {
		m := cometchat.Member{GUID: benchGUID(i / 10), UID: benchUID(i), Scope: scopes[i%len(scopes)], JoinedAt: 1673421419 + int64(i)}
		m.MemberID = cometchat.MemberID(m.GUID, m.UID)
		members[m.MemberID] = m
	}
	return marshalBody(tb, "members", members)
}

func benchGUID(i int) string { return fmt.Sprintf("grp-%06d", i) }
func benchUID(i int) string  { return fmt.Sprintf("user-%06d", i) }

// marshalBody encodes {"<wrapper>": rows}.
func marshalBody(tb testing.TB, wrapper string, rows any) []byte {
	tb.Helper()
	body, err := json.Marshal(map[string]any{wrapper: rows})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// BenchmarkImportUsers50 is BenchmarkImport50 for POST /data_import/users.
func BenchmarkImportUsers50(b *testing.B) {
	const rows = 50
	e := New(Config{APIKey: testKey})
	benchImport(b, e, "/v3/data_import/users", typicalUsersBody(b, rows), rows, e.Reset,
		func(s Stats) int { return s.ImportedUsers })
}

// BenchmarkImportMembers50 is BenchmarkImport50 for POST
// /data_import/members, into groups and users that exist.
func BenchmarkImportMembers50(b *testing.B) {
	const rows = 50
	e := New(Config{APIKey: testKey})
	for i := range rows {
		e.PutUser(cometchat.User{UID: benchUID(i), Name: "U"})
		e.Put(cometchat.Group{GUID: benchGUID(i / 10), Name: "G", Type: "public"})
	}
	forget := func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		clear(e.members)
	}
	benchImport(b, e, "/v3/data_import/members", typicalMembersBody(b, rows), rows, forget,
		func(s Stats) int { return s.ImportedMembers })
}

// benchImport sends body, a valid import of rows rows, to path once an
// iteration, calling reset before each so that every row is new, and
// reports what BenchmarkImport50 reports.
func benchImport(b *testing.B, e *Emulator, path string, body []byte, rows int, reset func(), imported func(Stats) int) {
	b.Helper()
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	mallocs := mem.Mallocs
	cpu, cpuOK := processCPU()
	b.ResetTimer()
	for b.Loop() {
		reset()
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("apikey", testKey)
		clear(w.h)
		e.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("HTTP %d", w.status)
		}
	}
	b.StopTimer()
	n := float64(b.N * rows)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/row")
	if end, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64((end-cpu).Nanoseconds())/n, "cpu-ns/row")
	}
	runtime.ReadMemStats(&mem)
	b.ReportMetric(float64(mem.Mallocs-mallocs)/n, "allocs/row")
	if got := imported(e.Stats()); got != b.N*rows {
		b.Fatalf("imported %d rows in %d requests, want %d each", got, b.N, rows)
	}
}

// BenchmarkStoredUsers measures what the users the imports store cost the
// garbage collector: heap objects and bytes a stored user keeps live, and
// the time of a full collection a user, with 20,000 users stored. At a
// million users, that per-user cost is what each collection marks.
func BenchmarkStoredUsers(b *testing.B) {
	const users, rows = 20000, 50
	bodies := make([][]byte, users/rows)
	for i := range bodies {
		bodies[i] = bytes.ReplaceAll(typicalUsersBody(b, rows), []byte("user-0"), []byte(fmt.Sprintf("u%03d-0", i)))
	}
	w := &discardWriter{h: make(http.Header)}
	var objects, heap, gc float64
	for b.Loop() {
		e := New(Config{APIKey: testKey})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, body := range bodies {
			req := httptest.NewRequest(http.MethodPost, "/v3/data_import/users", bytes.NewReader(body))
			req.Header.Set("apikey", testKey)
			e.ServeHTTP(w, req)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		start := time.Now()
		runtime.GC()
		gc += float64(time.Since(start).Nanoseconds()) / users
		objects += float64(after.HeapObjects-before.HeapObjects) / users
		heap += float64(after.HeapAlloc-before.HeapAlloc) / users
		if n := len(e.Users()); n != users {
			b.Fatalf("stored %d users, want %d", n, users)
		}
	}
	n := float64(b.N)
	b.ReportMetric(objects/n, "objects/user")
	b.ReportMetric(heap/n, "B/user")
	b.ReportMetric(gc/n, "gc-ns/user")
}
