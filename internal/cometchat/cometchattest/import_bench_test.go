package cometchattest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// typicalImportBody returns an import request of n groups shaped like the
// ones the syncer sends: every common field set, owner details included,
// encoded the way cometchat.Client encodes them.
func typicalImportBody(tb testing.TB, n int) []byte {
	tb.Helper()
	groups := make(map[string]cometchat.Group, n)
	for i := range n {
		guid := fmt.Sprintf("grp-%06d", i)
		owner := fmt.Sprintf("user-%06d", i%97)
		groups[guid] = cometchat.Group{
			GUID:      guid,
			Name:      fmt.Sprintf("Group number %d", i),
			Type:      "public",
			Icon:      "https://cdn.example.com/icons/" + guid + ".png",
			Owner:     owner,
			CreatedAt: 1673421419 + int64(i),
			Metadata:  json.RawMessage(fmt.Sprintf(`{"region":"eu-west","tier":"gold","source_id":%d,"v":2}`, i)),
			Tags:      []string{"imported", "team", fmt.Sprintf("t%d", i%5)},
			GroupOwnerDetails: &cometchat.OwnerDetails{
				UID:    owner,
				Name:   "Owner " + owner,
				Avatar: "https://cdn.example.com/avatars/" + owner + ".png",
			},
		}
	}
	body, err := json.Marshal(struct {
		Groups map[string]cometchat.Group `json:"groups"`
	}{groups})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the emulator rather than a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkImport50 measures the CPU the emulator spends on a valid import
// request of 50 typical groups, from ServeHTTP to the written answer. The
// throughput benchmark runs the emulator on the same cores as cometsync, so
// this cost is charged to cometsync's figures. ns/row is wall time;
// cpu-ns/row is the process's CPU time, garbage collection included.
func BenchmarkImport50(b *testing.B) {
	const rows = 50
	e := New(Config{APIKey: testKey})
	benchImport(b, e, "/v3/data_import/groups", typicalImportBody(b, rows), rows, e.Reset,
		func(s Stats) int { return s.ImportedRows })
}
