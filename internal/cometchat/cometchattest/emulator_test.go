package cometchattest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

const testKey = "test-rest-key"

// newServer starts an emulator behind a real HTTP server.
func newServer(tb testing.TB, cfg Config) (*Emulator, *httptest.Server) {
	tb.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	e := New(cfg)
	srv := httptest.NewServer(e)
	tb.Cleanup(srv.Close)
	return e, srv
}

// reply is one HTTP answer, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func send(client *http.Client, method, url, key, body string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if key != "" {
		req.Header.Set("apikey", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// mustSend sends with the right key and fails the test on a transport error.
func mustSend(tb testing.TB, srv *httptest.Server, method, path, body string) reply {
	tb.Helper()
	rep, err := send(srv.Client(), method, srv.URL+path, testKey, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return rep
}

type errorAnswer struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		DevMessage string `json:"devMessage"`
		Source     string `json:"source"`
	} `json:"error"`
}

type rowAnswer struct {
	Success bool           `json:"success"`
	Data    map[string]any `json:"data"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (r reply) apiError(tb testing.TB) errorAnswer {
	tb.Helper()
	var a errorAnswer
	if err := json.Unmarshal(r.body, &a); err != nil || a.Error.Code == "" {
		tb.Fatalf("not an error answer (HTTP %d): %s", r.status, r.body)
	}
	return a
}

// wantError checks the status and code of an error answer.
func (r reply) wantError(tb testing.TB, status int, code string) errorAnswer {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("HTTP %d, want %d: %s", r.status, status, r.body)
	}
	a := r.apiError(tb)
	if a.Error.Code != code || a.Error.Source != "emulator" || a.Error.Message == "" {
		tb.Fatalf("error %+v, want code %s from the emulator with a message", a.Error, code)
	}
	return a
}

func (r reply) rows(tb testing.TB) map[string]rowAnswer {
	tb.Helper()
	if r.status != http.StatusOK {
		tb.Fatalf("HTTP %d, want 200: %s", r.status, r.body)
	}
	var a struct {
		Data map[string]rowAnswer `json:"data"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		tb.Fatalf("decode import answer: %v: %s", err, r.body)
	}
	return a.Data
}

func (r reply) data(tb testing.TB) map[string]any {
	tb.Helper()
	if r.status != http.StatusOK {
		tb.Fatalf("HTTP %d, want 200: %s", r.status, r.body)
	}
	var a struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		tb.Fatalf("decode answer: %v: %s", err, r.body)
	}
	return a.Data
}

// row is one entry of an import body: the key and the object under it.
type row struct {
	key string
	obj any
}

func group(guid string) map[string]any {
	return map[string]any{"guid": guid, "name": "Group " + guid, "type": "public"}
}

func rowOf(g map[string]any) row { return row{key: g["guid"].(string), obj: g} }

// importJSON builds an import body keeping the rows in order.
func importJSON(tb testing.TB, rows ...row) string {
	tb.Helper()
	parts := make([]string, len(rows))
	for i, r := range rows {
		k, _ := json.Marshal(r.key)
		v, err := json.Marshal(r.obj)
		if err != nil {
			tb.Fatal(err)
		}
		parts[i] = string(k) + ":" + string(v)
	}
	return `{"groups":{` + strings.Join(parts, ",") + `}}`
}

func importGroups(tb testing.TB, guids ...string) string {
	tb.Helper()
	rows := make([]row, len(guids))
	for i, guid := range guids {
		rows[i] = rowOf(group(guid))
	}
	return importJSON(tb, rows...)
}

// eventually polls cond, for what the server records after the client
// already has its answer (or its error).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestImportStoresGroups(t *testing.T) {
	e, srv := newServer(t, Config{})
	full := map[string]any{
		"guid": "team-1", "name": "Team One", "type": "password", "password": "s3cret",
		"icon": "https://example.com/i.png", "owner": "u1", "createdAt": 1673421419,
		"metadata": map[string]any{"b": []int{1, 2}, "a": "x"},
		"tags":     []string{"red", "blue"},
		"groupOwnerDetails": map[string]any{"uid": "u1", "name": "User One", "createdAt": 1673421000,
			"metadata": map[string]any{"k": "v"}},
	}
	rep := mustSend(t, srv, http.MethodPost, "/v3/data_import/groups", importJSON(t, rowOf(full), rowOf(group("team-2"))))

	rows := rep.rows(t)
	if len(rows) != 2 || !rows["team-1"].Success || !rows["team-2"].Success {
		t.Fatalf("rows = %+v, want both imported", rows)
	}
	d := rows["team-1"].Data
	if d["guid"] != "team-1" || d["name"] != "Team One" || d["conversationId"] != "group_team-1" || d["createdAt"] != 1673421419.0 {
		t.Errorf("answered group = %v", d)
	}
	if _, ok := d["password"]; ok {
		t.Errorf("the answer shows the password: %v", d)
	}
	if rows["team-2"].Data["createdAt"].(float64) < 1e9 {
		t.Errorf("a group imported without createdAt is answered without a server time: %v", rows["team-2"].Data)
	}

	want := cometchat.Group{
		GUID: "team-1", Name: "Team One", Type: "password", Password: "s3cret",
		Icon: "https://example.com/i.png", Owner: "u1", CreatedAt: 1673421419,
		Metadata: json.RawMessage(`{"a":"x","b":[1,2]}`), Tags: []string{"red", "blue"},
		GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u1", Name: "User One", CreatedAt: 1673421000,
			Metadata: json.RawMessage(`{"k":"v"}`)},
	}
	if got, ok := e.Group("team-1"); !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("stored\n%+v\nwant\n%+v", got, want)
	}
	s := e.Stats()
	if s.ImportRequests != 1 || s.ImportedRows != 2 || s.Requests["POST import 200"] != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestImportAcceptsLimits(t *testing.T) {
	// metaOf returns a metadata object whose compact JSON is n bytes.
	metaOf := func(n int) map[string]any {
		return map[string]any{"k": strings.Repeat("m", n-len(`{"k":""}`))}
	}
	tests := []struct {
		name  string
		edit  func(g map[string]any)
		check func(g cometchat.Group) bool
	}{
		{"guid of 100 characters", func(g map[string]any) {}, func(g cometchat.Group) bool { return true }},
		{"name of 100 multibyte characters", func(g map[string]any) { g["name"] = strings.Repeat("é", 100) },
			func(g cometchat.Group) bool { return g.Name == strings.Repeat("é", 100) }},
		{"icon of 3000 characters", func(g map[string]any) { g["icon"] = strings.Repeat("i", 3000) },
			func(g cometchat.Group) bool { return len(g.Icon) == 3000 }},
		{"password of 100 characters", func(g map[string]any) { g["type"] = "password"; g["password"] = strings.Repeat("p", 100) },
			func(g cometchat.Group) bool { return len(g.Password) == 100 }},
		{"private type", func(g map[string]any) { g["type"] = "private" },
			func(g cometchat.Group) bool { return g.Type == "private" }},
		{"metadata of 5120 bytes", func(g map[string]any) { g["metadata"] = metaOf(5120) },
			func(g cometchat.Group) bool { return len(g.Metadata) == 5120 }},
		{"25 tags of 100 characters", func(g map[string]any) {
			tags := make([]string, 25)
			for i := range tags {
				tags[i] = fmt.Sprintf("%0100d", i)
			}
			g["tags"] = tags
		}, func(g cometchat.Group) bool { return len(g.Tags) == 25 }},
		{"empty tags", func(g map[string]any) { g["tags"] = []string{} },
			func(g cometchat.Group) bool { return g.Tags == nil }},
		{"createdAt of 10 digits", func(g map[string]any) { g["createdAt"] = 9999999999 },
			func(g cometchat.Group) bool { return g.CreatedAt == 9999999999 }},
		{"createdAt as a string of digits", func(g map[string]any) { g["createdAt"] = "1673421419" },
			func(g cometchat.Group) bool { return g.CreatedAt == 1673421419 }},
		{"null optional fields", func(g map[string]any) { g["icon"] = nil; g["metadata"] = nil; g["tags"] = nil },
			func(g cometchat.Group) bool { return g.Icon == "" && g.Metadata == nil && g.Tags == nil }},
		{"owner matching groupOwnerDetails", func(g map[string]any) {
			g["owner"] = "u1"
			g["groupOwnerDetails"] = map[string]any{"uid": "u1", "name": "One"}
		}, func(g cometchat.Group) bool { return g.Owner == "u1" && g.GroupOwnerDetails.UID == "u1" }},
		{"groupOwnerDetails without owner", func(g map[string]any) {
			g["groupOwnerDetails"] = map[string]any{"uid": "u1", "name": "One"}
		}, func(g cometchat.Group) bool { return g.Owner == "" && g.GroupOwnerDetails.UID == "u1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			guid := strings.Repeat("g", 100)
			g := group(guid)
			g["name"] = "Limits"
			tt.edit(g)
			rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", importJSON(t, rowOf(g))).rows(t)
			if !rows[guid].Success {
				t.Fatalf("row refused: %+v", rows[guid].Error)
			}
			stored, ok := e.Group(guid)
			if !ok || !tt.check(stored) {
				t.Errorf("stored %+v (found %v)", stored, ok)
			}
		})
	}
}

func TestImportRowErrors(t *testing.T) {
	longTags := make([]string, 26)
	tests := []struct {
		name      string
		key       string // default "bad-row"
		edit      func(g map[string]any)
		obj       any // replaces the group object when set
		wantCode  string
		wantField string
	}{
		{name: "key differs from guid", edit: func(g map[string]any) { g["guid"] = "other-row" }, wantField: "guid"},
		{name: "key differs in case from guid", edit: func(g map[string]any) { g["guid"] = "Bad-Row" }, wantField: "guid"},
		{name: "guid missing", edit: func(g map[string]any) { delete(g, "guid") }, wantField: "guid"},
		{name: "guid not a string", edit: func(g map[string]any) { g["guid"] = 7 }, wantField: "guid"},
		{name: "guid with a space", key: "bad row", edit: func(g map[string]any) { g["guid"] = "bad row" }, wantField: "guid"},
		{name: "guid with a dot", key: "bad.row", edit: func(g map[string]any) { g["guid"] = "bad.row" }, wantField: "guid"},
		{name: "guid of 101 characters", key: strings.Repeat("b", 101), edit: func(g map[string]any) { g["guid"] = strings.Repeat("b", 101) }, wantField: "guid"},
		{name: "name missing", edit: func(g map[string]any) { delete(g, "name") }, wantField: "name"},
		{name: "name empty", edit: func(g map[string]any) { g["name"] = "" }, wantField: "name"},
		{name: "name of 101 characters", edit: func(g map[string]any) { g["name"] = strings.Repeat("é", 101) }, wantField: "name"},
		{name: "name not a string", edit: func(g map[string]any) { g["name"] = 42 }, wantField: "name"},
		{name: "type missing", edit: func(g map[string]any) { delete(g, "type") }, wantField: "type"},
		{name: "type unknown", edit: func(g map[string]any) { g["type"] = "secret" }, wantField: "type"},
		{name: "password missing for a password group", edit: func(g map[string]any) { g["type"] = "password" },
			wantCode: "ERR_EMPTY_GROUP_PASS", wantField: "password"},
		{name: "password of 101 characters", edit: func(g map[string]any) { g["type"] = "password"; g["password"] = strings.Repeat("p", 101) }, wantField: "password"},
		{name: "icon of 3001 characters", edit: func(g map[string]any) { g["icon"] = strings.Repeat("i", 3001) }, wantField: "icon"},
		{name: "metadata an array", edit: func(g map[string]any) { g["metadata"] = []int{1} }, wantField: "metadata"},
		{name: "metadata a string", edit: func(g map[string]any) { g["metadata"] = `{"a":1}` }, wantField: "metadata"},
		{name: "metadata of 5121 bytes", edit: func(g map[string]any) {
			g["metadata"] = map[string]any{"k": strings.Repeat("m", 5121-len(`{"k":""}`))}
		}, wantField: "metadata"},
		{name: "26 tags", edit: func(g map[string]any) { g["tags"] = longTags }, wantField: "tags"},
		{name: "tag of 101 characters", edit: func(g map[string]any) { g["tags"] = []string{"ok", strings.Repeat("t", 101)} }, wantField: "tags[1]"},
		{name: "tags not strings", edit: func(g map[string]any) { g["tags"] = []int{1} }, wantField: "tags"},
		{name: "createdAt in milliseconds", edit: func(g map[string]any) { g["createdAt"] = 1673421419000 }, wantField: "createdAt"},
		{name: "createdAt a fraction", edit: func(g map[string]any) { g["createdAt"] = 1673421419.5 }, wantField: "createdAt"},
		{name: "createdAt negative", edit: func(g map[string]any) { g["createdAt"] = -1 }, wantField: "createdAt"},
		{name: "createdAt a date", edit: func(g map[string]any) { g["createdAt"] = "2023-01-11" }, wantField: "createdAt"},
		{name: "owner differs from groupOwnerDetails.uid", edit: func(g map[string]any) {
			g["owner"] = "u1"
			g["groupOwnerDetails"] = map[string]any{"uid": "u2", "name": "Two"}
		}, wantField: "owner"},
		{name: "groupOwnerDetails without name", edit: func(g map[string]any) {
			g["groupOwnerDetails"] = map[string]any{"uid": "u1"}
		}, wantField: "groupOwnerDetails.name"},
		{name: "groupOwnerDetails with an unknown field", edit: func(g map[string]any) {
			g["groupOwnerDetails"] = map[string]any{"uid": "u1", "name": "One", "email": "a@b"}
		}, wantField: "groupOwnerDetails.email"},
		{name: "groupOwnerDetails createdAt in milliseconds", edit: func(g map[string]any) {
			g["groupOwnerDetails"] = map[string]any{"uid": "u1", "name": "One", "createdAt": 1673421419000}
		}, wantField: "groupOwnerDetails.createdAt"},
		{name: "unknown field", edit: func(g map[string]any) { g["description"] = "not importable" }, wantField: "description"},
		{name: "row not an object", obj: "just a string", wantField: "group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			key := tt.key
			if key == "" {
				key = "bad-row"
			}
			obj := tt.obj
			if obj == nil {
				g := group(key)
				tt.edit(g)
				obj = g
			}
			body := importJSON(t, row{key: key, obj: obj}, rowOf(group("good-row")))
			rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", body).rows(t)

			bad := rows[strings.ToLower(key)]
			wantCode := tt.wantCode
			if wantCode == "" {
				wantCode = "ERR_IMPORT_INVALID_GROUP_FORMAT"
			}
			if bad.Success || bad.Error == nil || bad.Error.Code != wantCode || !strings.HasPrefix(bad.Error.Message, tt.wantField+":") {
				t.Errorf("bad row answered %+v %+v, want %s naming %s", bad, bad.Error, wantCode, tt.wantField)
			}
			if !rows["good-row"].Success {
				t.Errorf("the valid row beside it was refused: %+v", rows["good-row"].Error)
			}
			if got := e.Groups(); len(got) != 1 {
				t.Errorf("stored %d groups, want only good-row: %v", len(got), got)
			}
			if s := e.Stats(); s.ImportedRows != 1 {
				t.Errorf("ImportedRows = %d, want 1", s.ImportedRows)
			}
		})
	}
}

func TestImportRefusesWholeRequest(t *testing.T) {
	guids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("g-%d", i)
		}
		return out
	}
	tests := []struct {
		name     string
		maxBatch int
		body     func(tb testing.TB) string
		wantMsg  string
	}{
		{name: "invalid JSON", body: func(testing.TB) string { return `{"groups": {` }, wantMsg: "JSON object"},
		{name: "groups missing", body: func(testing.TB) string { return `{}` }, wantMsg: "groups is required"},
		{name: "groups null", body: func(testing.TB) string { return `{"groups": null}` }, wantMsg: "groups is required"},
		{name: "groups an array", body: func(testing.TB) string { return `{"groups": [{"guid":"a","name":"A","type":"public"}]}` }, wantMsg: "object keyed by guid"},
		{name: "groups empty", body: func(testing.TB) string { return `{"groups": {}}` }, wantMsg: "empty"},
		{name: "unknown top-level field", body: func(tb testing.TB) string { return `{"users": {}, "groups": {}}` }, wantMsg: "users"},
		{name: "51 groups", body: func(tb testing.TB) string { return importGroups(tb, guids(51)...) }, wantMsg: "limit is 50"},
		{name: "4 groups over a limit of 3", maxBatch: 3, body: func(tb testing.TB) string { return importGroups(tb, guids(4)...) }, wantMsg: "limit is 3"},
		{name: "guid twice in different case", body: func(tb testing.TB) string {
			return importJSON(tb, rowOf(group("abc")), row{key: "ABC", obj: map[string]any{"guid": "ABC", "name": "x", "type": "public"}})
		}, wantMsg: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{MaxBatch: tt.maxBatch})
			rep := mustSend(t, srv, http.MethodPost, "/data_import/groups", tt.body(t))
			a := rep.wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")
			if !strings.Contains(a.Error.Message, tt.wantMsg) {
				t.Errorf("message %q does not say %q", a.Error.Message, tt.wantMsg)
			}
			if n := len(e.Groups()); n != 0 {
				t.Errorf("%d groups imported by a refused request", n)
			}
		})
	}
}

func TestImportTakesFullBatch(t *testing.T) {
	e, srv := newServer(t, Config{})
	guids := make([]string, 50)
	for i := range guids {
		guids[i] = fmt.Sprintf("g-%d", i)
	}
	rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, guids...)).rows(t)
	if len(rows) != 50 || len(e.Groups()) != 50 {
		t.Errorf("answered %d rows, stored %d, want 50 and 50", len(rows), len(e.Groups()))
	}
}

func TestImportExistingGUIDIsNotUpdated(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.Put(cometchat.Group{GUID: "team", Name: "Original", Type: "public"})

	g := group("team")
	g["name"] = "Changed"
	rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", importJSON(t, rowOf(g))).rows(t)

	if r := rows["team"]; r.Success || r.Error == nil || r.Error.Code != "ERR_GUID_ALREADY_EXISTS" {
		t.Errorf("row = %+v, want ERR_GUID_ALREADY_EXISTS", r)
	}
	if got, _ := e.Group("team"); got.Name != "Original" {
		t.Errorf("name = %q, the import updated an existing group", got.Name)
	}
	if s := e.Stats(); s.ImportedRows != 0 {
		t.Errorf("ImportedRows = %d, want 0", s.ImportedRows)
	}
}

func TestImportLowercasesGUID(t *testing.T) {
	e, srv := newServer(t, Config{})
	g := group("Team-A")
	rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", importJSON(t, rowOf(g))).rows(t)

	r, ok := rows["team-a"]
	if !ok || !r.Success || r.Data["guid"] != "team-a" || r.Data["conversationId"] != "group_team-a" {
		t.Fatalf("rows = %+v, want team-a answered under its lowercased guid", rows)
	}
	all := e.Groups()
	if stored, ok := all["team-a"]; len(all) != 1 || !ok || stored.GUID != "team-a" {
		t.Errorf("stored %+v, want only team-a", all)
	}
	// The same group in another case is the same group.
	again := mustSend(t, srv, http.MethodPost, "/data_import/groups", importJSON(t, rowOf(group("TEAM-A")))).rows(t)
	if r := again["team-a"]; r.Error == nil || r.Error.Code != "ERR_GUID_ALREADY_EXISTS" {
		t.Errorf("re-import in upper case = %+v, want ERR_GUID_ALREADY_EXISTS", r)
	}
}

func TestUpdate(t *testing.T) {
	seed := func() cometchat.Group {
		return cometchat.Group{
			GUID: "g1", Name: "Old", Type: "public", Icon: "https://example.com/i.png", Owner: "u1",
			Metadata: json.RawMessage(`{"a":1}`), Tags: []string{"x", "y"},
			GroupOwnerDetails: &cometchat.OwnerDetails{UID: "u1", Name: "One"},
		}
	}
	tests := []struct {
		name     string
		path     string // default /groups/g1
		body     string
		want     func(g *cometchat.Group) // edits the seed into the expected group; nil: unchanged
		wantDesc string
		status   int    // default 200
		code     string // error code when status is not 200
		field    string // field the error message names
	}{
		{name: "name only", body: `{"name":"New"}`, want: func(g *cometchat.Group) { g.Name = "New" }},
		{name: "path guid in upper case", path: "/groups/G1", body: `{"name":"New"}`, want: func(g *cometchat.Group) { g.Name = "New" }},
		{name: "description", body: `{"description":"About us"}`, want: func(*cometchat.Group) {}, wantDesc: "About us"},
		{name: "metadata replaced and compacted", body: `{"metadata": {"b": [1, 2]}}`,
			want: func(g *cometchat.Group) { g.Metadata = json.RawMessage(`{"b":[1,2]}`) }},
		{name: "tags replaced", body: `{"tags":["z"]}`, want: func(g *cometchat.Group) { g.Tags = []string{"z"} }},
		{name: "empty tags clear tags", body: `{"tags":[]}`, want: func(g *cometchat.Group) { g.Tags = nil }},
		{name: "unset icon and metadata", body: `{"unset":["icon","metadata"]}`,
			want: func(g *cometchat.Group) { g.Icon = ""; g.Metadata = nil }},
		{name: "password group with password", body: `{"type":"password","password":"pw"}`,
			want: func(g *cometchat.Group) { g.Type = "password"; g.Password = "pw" }},
		{name: "new owner drops stale owner details", body: `{"owner":"u2"}`,
			want: func(g *cometchat.Group) { g.Owner = "u2"; g.GroupOwnerDetails = nil }},
		{name: "password group without password", body: `{"type":"password"}`,
			status: 400, code: "ERR_EMPTY_GROUP_PASS", field: "password"},
		{name: "unset a field that cannot be unset", body: `{"unset":["name"]}`, status: 400, code: "ERR_BAD_REQUEST", field: "unset"},
		{name: "set and unset together", body: `{"icon":"x","unset":["icon"]}`, status: 400, code: "ERR_BAD_REQUEST", field: "icon"},
		{name: "name too long", body: `{"name":"` + strings.Repeat("n", 101) + `"}`, status: 400, code: "ERR_BAD_REQUEST", field: "name"},
		{name: "type unknown", body: `{"type":"secret"}`, status: 400, code: "ERR_BAD_REQUEST", field: "type"},
		{name: "icon too long", body: `{"icon":"` + strings.Repeat("i", 3001) + `"}`, status: 400, code: "ERR_BAD_REQUEST", field: "icon"},
		{name: "metadata not an object", body: `{"metadata":[1]}`, status: 400, code: "ERR_BAD_REQUEST", field: "metadata"},
		{name: "too many tags", body: `{"tags":[` + strings.Repeat(`"t",`, 25) + `"t"]}`, status: 400, code: "ERR_BAD_REQUEST", field: "tags"},
		{name: "unknown field", body: `{"guid":"g2"}`, status: 400, code: "ERR_BAD_REQUEST", field: "guid"},
		{name: "invalid JSON", body: `{"name":`, status: 400, code: "ERR_BAD_REQUEST", field: "body"},
		{name: "unknown guid", path: "/groups/missing", body: `{"name":"New"}`, status: 404, code: "ERR_GUID_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			e.Put(seed())
			path := tt.path
			if path == "" {
				path = "/groups/g1"
			}
			rep := mustSend(t, srv, http.MethodPut, path, tt.body)

			want := seed()
			if tt.status == 0 {
				d := rep.data(t)
				tt.want(&want)
				if d["guid"] != "g1" || d["name"] != want.Name {
					t.Errorf("answered %v", d)
				}
			} else {
				a := rep.wantError(t, tt.status, tt.code)
				if !strings.HasPrefix(a.Error.Message, tt.field+":") && tt.field != "" {
					t.Errorf("message %q does not name %s", a.Error.Message, tt.field)
				}
			}
			if got, _ := e.Group("g1"); !reflect.DeepEqual(got, want) {
				t.Errorf("stored\n%+v\nwant\n%+v", got, want)
			}
			if got := e.Description("g1"); got != tt.wantDesc {
				t.Errorf("description = %q, want %q", got, tt.wantDesc)
			}
			if wantUpdates := map[bool]int{true: 1, false: 0}[tt.status == 0]; e.Stats().Updates != wantUpdates {
				t.Errorf("Updates = %d, want %d", e.Stats().Updates, wantUpdates)
			}
		})
	}
}

func TestUpdateUnsetDescription(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.Put(cometchat.Group{GUID: "g1", Name: "G", Type: "public"})
	mustSend(t, srv, http.MethodPut, "/groups/g1", `{"description":"About"}`).data(t)
	if e.Description("g1") != "About" {
		t.Fatalf("description not set")
	}
	d := mustSend(t, srv, http.MethodPut, "/groups/g1", `{"unset":["description"]}`).data(t)
	if _, ok := d["description"]; ok || e.Description("g1") != "" {
		t.Errorf("description still %q after unset (answer %v)", e.Description("g1"), d)
	}
}

func TestDelete(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.Put(cometchat.Group{GUID: "g1", Name: "G", Type: "public"})

	d := mustSend(t, srv, http.MethodDelete, "/v3/groups/g1", "").data(t)
	if d["success"] != true || d["message"] != "Group g1 deleted successfully." {
		t.Errorf("answer = %v", d)
	}
	if _, ok := e.Group("g1"); ok {
		t.Error("group still stored after DELETE")
	}
	mustSend(t, srv, http.MethodDelete, "/v3/groups/g1", "").wantError(t, http.StatusNotFound, "ERR_GUID_NOT_FOUND")
	s := e.Stats()
	if s.Deletes != 1 || s.Requests["DELETE group 200"] != 1 || s.Requests["DELETE group 404"] != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestGet(t *testing.T) {
	e, srv := newServer(t, Config{})
	for _, guid := range []string{"c", "a", "b"} {
		e.Put(cometchat.Group{GUID: guid, Name: "G " + guid, Type: "public"})
	}
	if d := mustSend(t, srv, http.MethodGet, "/groups/b", "").data(t); d["guid"] != "b" || d["name"] != "G b" {
		t.Errorf("GET /groups/b = %v", d)
	}
	mustSend(t, srv, http.MethodGet, "/v3/groups/nope", "").wantError(t, http.StatusNotFound, "ERR_GUID_NOT_FOUND")

	rep := mustSend(t, srv, http.MethodGet, "/v3/groups?perPage=2", "")
	var list struct {
		Data []map[string]any `json:"data"`
		Meta struct {
			Pagination struct {
				Total int `json:"total"`
			} `json:"pagination"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(rep.body, &list); err != nil || rep.status != http.StatusOK {
		t.Fatalf("HTTP %d %v: %s", rep.status, err, rep.body)
	}
	if len(list.Data) != 2 || list.Data[0]["guid"] != "a" || list.Data[1]["guid"] != "b" || list.Meta.Pagination.Total != 3 {
		t.Errorf("GET /groups?perPage=2 = %s", rep.body)
	}
}

// Paging through the list visits every group once, in guid order.
func TestListPagesInGUIDOrder(t *testing.T) {
	e, srv := newServer(t, Config{})
	var want []string
	for _, i := range rand.Perm(50) {
		guid := fmt.Sprintf("g%02d", i)
		e.Put(cometchat.Group{GUID: guid, Name: guid, Type: "public"})
		want = append(want, guid)
	}
	sort.Strings(want)
	var got []string
	for page := 1; page <= 9; page++ {
		rep := mustSend(t, srv, http.MethodGet, fmt.Sprintf("/v3/groups?perPage=7&page=%d", page), "")
		var list struct {
			Data []struct{ GUID string } `json:"data"`
		}
		if err := json.Unmarshal(rep.body, &list); err != nil {
			t.Fatal(err)
		}
		for _, g := range list.Data {
			got = append(got, g.GUID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages of 7 gave %v, want %v", got, want)
	}
	// The first page follows deletes and new groups too.
	mustSend(t, srv, http.MethodDelete, "/v3/groups/g00", "")
	mustSend(t, srv, http.MethodDelete, "/v3/groups/g02", "")
	e.Put(cometchat.Group{GUID: "g015", Name: "x", Type: "public"})
	rep := mustSend(t, srv, http.MethodGet, "/v3/groups?perPage=3", "")
	var list struct {
		Data []struct{ GUID string } `json:"data"`
	}
	if err := json.Unmarshal(rep.body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 3 || list.Data[0].GUID != "g01" || list.Data[1].GUID != "g015" || list.Data[2].GUID != "g03" {
		t.Errorf("first page after deleting g00 and g02 and adding g015: %s", rep.body)
	}
}

func TestUnknownAPI(t *testing.T) {
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/data_import/groups"},
		{http.MethodPost, "/groups"},
		{http.MethodPatch, "/groups/g1"},
		{http.MethodPost, "/v3/users"},
		{http.MethodGet, "/v4/groups"},
		{http.MethodDelete, "/groups/g1/members"},
		{http.MethodGet, "/groups/g1/members/u1"},
		{http.MethodPost, "/users/u1"},
		{http.MethodGet, "/data_import/users"},
		{http.MethodGet, "/groups//members"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			mustSend(t, srv, tt.method, tt.path, "").wantError(t, http.StatusNotFound, "ERR_API_NOT_FOUND")
			if n := e.Stats().Requests[tt.method+" unknown 404"]; n != 1 {
				t.Errorf("counted %d under %q", n, tt.method+" unknown 404")
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name, key, code string
	}{
		{"missing key", "", "AUTH_ERR_EMPTY_APIKEY"},
		{"wrong key", "not-the-key", "AUTH_ERR_APIKEY_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			e.Put(cometchat.Group{GUID: "kept", Name: "Kept", Type: "public"})
			for _, req := range []struct{ method, path, body string }{
				{http.MethodPost, "/data_import/groups", importGroups(t, "new")},
				{http.MethodDelete, "/groups/kept", ""},
				{http.MethodGet, "/groups", ""},
			} {
				rep, err := send(srv.Client(), req.method, srv.URL+req.path, tt.key, req.body)
				if err != nil {
					t.Fatal(err)
				}
				rep.wantError(t, http.StatusUnauthorized, tt.code)
			}
			if _, ok := e.Group("new"); ok {
				t.Error("imported without a valid key")
			}
			if _, ok := e.Group("kept"); !ok {
				t.Error("deleted without a valid key")
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name       string
		faults     Faults
		method     string
		path, body string
		untouched  func(e *Emulator) bool // the refused request changed nothing
		otherPath  string                 // a request of the other bucket, still served
	}{
		{name: "import", faults: Faults{ImportPerSecond: 0.1}, method: http.MethodPost, path: "/data_import/groups",
			untouched: func(e *Emulator) bool { return len(e.Groups()) == 2 }, otherPath: "/groups"},
		{name: "update", faults: Faults{OtherPerSecond: 0.1}, method: http.MethodPut, path: "/groups/seed",
			untouched: func(e *Emulator) bool { g, _ := e.Group("seed"); return g.Name == "Seed" }},
	}
	for _, tt := range tests {
		for _, retryAfter := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/RetryAfter=%v", tt.name, retryAfter), func(t *testing.T) {
				e, srv := newServer(t, Config{})
				e.Put(cometchat.Group{GUID: "seed", Name: "Seed", Type: "public"})
				f := tt.faults
				f.RetryAfter = retryAfter
				e.SetFaults(f)
				body := func(n int) string {
					if tt.method == http.MethodPost {
						return importGroups(t, fmt.Sprintf("new-%d", n))
					}
					return fmt.Sprintf(`{"name":"Name %d"}`, n)
				}
				if rep := mustSend(t, srv, tt.method, tt.path, body(1)); rep.status != http.StatusOK {
					t.Fatalf("first request: HTTP %d %s", rep.status, rep.body)
				}
				e.Put(cometchat.Group{GUID: "seed", Name: "Seed", Type: "public"})

				before := time.Now().Unix()
				rep := mustSend(t, srv, tt.method, tt.path, body(2))
				rep.wantError(t, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS")
				if !tt.untouched(e) {
					t.Error("the refused request changed the data")
				}

				h := rep.header
				if !retryAfter {
					for _, name := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
						if h.Get(name) != "" {
							t.Errorf("%s = %q, want none", name, h.Get(name))
						}
					}
				} else {
					// 0.1/s: the next token is about 10 s away.
					ra, _ := strconv.Atoi(h.Get("Retry-After"))
					reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
					if ra < 9 || ra > 10 || h.Get("X-RateLimit-Limit") != "6" || h.Get("X-RateLimit-Remaining") != "0" ||
						reset < before+9 || reset > time.Now().Unix()+11 {
						t.Errorf("headers = %v", h)
					}
				}
				if tt.otherPath != "" {
					if rep := mustSend(t, srv, http.MethodGet, tt.otherPath, ""); rep.status != http.StatusOK {
						t.Errorf("the other bucket was limited too: HTTP %d", rep.status)
					}
				}
				s := e.Stats()
				key := fmt.Sprintf("%s %s 429", tt.method, routeOf(httptest.NewRequest(tt.method, tt.path, nil)).endpoint)
				if s.TooManyRequests != 1 || s.Requests[key] != 1 {
					t.Errorf("stats = %+v, want one %q", s, key)
				}
			})
		}
	}
}

func TestRateLimitBurst(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.SetFaults(Faults{OtherPerSecond: 3})
	var ok, limited int
	for range 5 {
		switch rep := mustSend(t, srv, http.MethodGet, "/groups", ""); rep.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
		}
	}
	// A burst of 3, then (almost surely within a few ms) nothing left.
	if ok < 3 || ok > 4 || ok+limited != 5 || e.Stats().TooManyRequests != limited {
		t.Errorf("%d answered, %d limited, want a burst of 3", ok, limited)
	}
}

func TestErrorRate(t *testing.T) {
	tests := []struct {
		name, method, path, body string
	}{
		{"import", http.MethodPost, "/data_import/groups", `{"groups":{"new":{"guid":"new","name":"N","type":"public"}}}`},
		{"update", http.MethodPut, "/groups/seed", `{"name":"Changed"}`},
		{"delete", http.MethodDelete, "/groups/seed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			e.Put(cometchat.Group{GUID: "seed", Name: "Seed", Type: "public"})
			e.SetFaults(Faults{ErrorRate: 1})
			mustSend(t, srv, tt.method, tt.path, tt.body).wantError(t, http.StatusInternalServerError, "ERR_EXCEPTION")

			want := map[string]cometchat.Group{"seed": {GUID: "seed", Name: "Seed", Type: "public"}}
			if got := e.Groups(); !reflect.DeepEqual(got, want) {
				t.Errorf("groups = %+v, the failed request changed data", got)
			}
			// The fault ends with the next SetFaults.
			e.SetFaults(Faults{})
			if rep := mustSend(t, srv, tt.method, tt.path, tt.body); rep.status != http.StatusOK {
				t.Errorf("after clearing faults: HTTP %d %s", rep.status, rep.body)
			}
		})
	}
}

func TestPartialImport(t *testing.T) {
	tests := []struct {
		guids []string
		want  []string
	}{
		{[]string{"d", "a", "c", "b"}, []string{"d", "a"}},
		{[]string{"e", "d", "c", "b", "a"}, []string{"e", "d"}},
		{[]string{"only"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.guids, ","), func(t *testing.T) {
			e, srv := newServer(t, Config{})
			e.SetFaults(Faults{PartialImportRate: 1})
			mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, tt.guids...)).
				wantError(t, http.StatusInternalServerError, "ERR_EXCEPTION")

			got := e.Groups()
			if len(got) != len(tt.want) {
				t.Errorf("stored %v, want exactly %v", got, tt.want)
			}
			for _, guid := range tt.want {
				if _, ok := got[guid]; !ok {
					t.Errorf("%s (first half) not stored", guid)
				}
			}
			if s := e.Stats(); s.ImportedRows != len(tt.want) || s.Requests["POST import 500"] != 1 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestResetFault(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.SetFaults(Faults{ResetRate: 1})
	_, err := send(srv.Client(), http.MethodPost, srv.URL+"/data_import/groups", testKey, importGroups(t, "a"))
	if err == nil {
		t.Fatal("the client got an answer; want a transport error")
	}
	if len(e.Groups()) != 0 {
		t.Error("a reset request imported groups")
	}
	eventually(t, "the reset to be counted", func() bool { return e.Stats().Requests["POST import reset"] == 1 })
}

func TestHangFault(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.SetFaults(Faults{HangRate: 1})
	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := send(client, http.MethodPost, srv.URL+"/data_import/groups", testKey, importGroups(t, "a"))
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("err = %v, want a client timeout", err)
	}
	// The handler notices the client went away and lets go.
	eventually(t, "the hang to end", func() bool { return e.Stats().Requests["POST import hang"] == 1 })
	if len(e.Groups()) != 0 {
		t.Error("a hung request imported groups")
	}
}

func TestLatency(t *testing.T) {
	t.Run("delays the answer", func(t *testing.T) {
		e, srv := newServer(t, Config{})
		e.SetFaults(Faults{Latency: 150 * time.Millisecond})
		start := time.Now()
		if rep := mustSend(t, srv, http.MethodGet, "/groups", ""); rep.status != http.StatusOK {
			t.Fatalf("HTTP %d", rep.status)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("answered after %v, want at least the 150ms latency", d)
		}
	})
	t.Run("stops when the client goes away", func(t *testing.T) {
		e, srv := newServer(t, Config{})
		e.SetFaults(Faults{Latency: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/data_import/groups", strings.NewReader(importGroups(t, "a")))
		req.Header.Set("apikey", testKey)
		if _, err := srv.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		eventually(t, "the delayed request to be dropped", func() bool { return e.Stats().Requests["POST import canceled"] == 1 })
		if len(e.Groups()) != 0 {
			t.Error("a request whose client went away imported groups")
		}
	})
}

func TestOutage(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.SetFaults(Faults{Outage: true})
	// An outage answers before the key is even looked at.
	rep, err := send(srv.Client(), http.MethodPost, srv.URL+"/data_import/groups", "wrong", importGroups(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	rep.wantError(t, http.StatusServiceUnavailable, "ERR_EXCEPTION")
	mustSend(t, srv, http.MethodGet, "/groups", "").wantError(t, http.StatusServiceUnavailable, "ERR_EXCEPTION")
	if len(e.Groups()) != 0 {
		t.Error("imported during an outage")
	}
}

func TestWriteOutage(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.Put(cometchat.Group{GUID: "a", Name: "A", Type: "public"})
	e.SetFaults(Faults{WriteOutage: true})
	if rep := mustSend(t, srv, http.MethodGet, "/groups?perPage=1", ""); rep.status != http.StatusOK {
		t.Errorf("a read during a write outage: HTTP %d %s", rep.status, rep.body)
	}
	mustSend(t, srv, http.MethodPost, "/data_import/groups", string(importGroups(t, "b"))).wantError(t, http.StatusServiceUnavailable, "ERR_EXCEPTION")
	mustSend(t, srv, http.MethodPut, "/groups/a", `{"name":"A2"}`).wantError(t, http.StatusServiceUnavailable, "ERR_EXCEPTION")
	if g, _ := e.Group("a"); g.Name != "A" || len(e.Groups()) != 1 {
		t.Errorf("written during a write outage: %+v, %d groups", g, len(e.Groups()))
	}
}

func TestRejectRow(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.SetFaults(Faults{RejectRow: func(guid string) (string, string, bool) {
		switch guid {
		case "b":
			return "ERR_EXCEPTION", "database busy", true
		case "c":
			return "", "", true
		}
		return "", "", false
	}})
	rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, "a", "B", "c")).rows(t)
	if !rows["a"].Success {
		t.Errorf("a refused: %+v", rows["a"].Error)
	}
	if r := rows["b"]; r.Success || r.Error.Code != "ERR_EXCEPTION" || r.Error.Message != "database busy" {
		t.Errorf("b = %+v, want the rejection", r)
	}
	if r := rows["c"]; r.Success || r.Error.Code != "ERR_OPERATION_FAILED" {
		t.Errorf("c = %+v, want ERR_OPERATION_FAILED", r)
	}
	if got := e.Groups(); len(got) != 1 {
		t.Errorf("stored %v, want only a", got)
	}

	// The rejection is transient: once it stops, the same rows import.
	e.SetFaults(Faults{})
	rows = mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, "a", "B", "c")).rows(t)
	if !rows["b"].Success || !rows["c"].Success || rows["a"].Error.Code != "ERR_GUID_ALREADY_EXISTS" {
		t.Errorf("retry = %+v", rows)
	}
}

func TestSeedMakesFaultsRepeatable(t *testing.T) {
	statuses := func() []int {
		e, srv := newServer(t, Config{})
		e.SetFaults(Faults{ErrorRate: 0.5, Seed: 42})
		var out []int
		for range 40 {
			out = append(out, mustSend(t, srv, http.MethodGet, "/groups", "").status)
		}
		return out
	}
	first, second := statuses(), statuses()
	if !reflect.DeepEqual(first, second) {
		t.Errorf("same seed, different faults:\n%v\n%v", first, second)
	}
	count := map[int]int{}
	for _, s := range first {
		count[s]++
	}
	if count[200] == 0 || count[500] == 0 || count[200]+count[500] != 40 {
		t.Errorf("statuses %v, want a mix of 200 and 500", count)
	}
}

func TestConcurrentRequests(t *testing.T) {
	e, srv := newServer(t, Config{})
	const workers, perBatch = 16, 10
	// call reports failures with t.Errorf: t.Fatal must not be called from
	// the workers' goroutines.
	call := func(method, path, body string) reply {
		rep, err := send(srv.Client(), method, srv.URL+path, testKey, body)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
		}
		return rep
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			guids := make([]string, perBatch)
			for i := range guids {
				guids[i] = fmt.Sprintf("w%d-g%d", w, i)
			}
			var answer struct {
				Data map[string]rowAnswer `json:"data"`
			}
			rep := call(http.MethodPost, "/data_import/groups", importGroups(t, guids...))
			if err := json.Unmarshal(rep.body, &answer); err != nil || len(answer.Data) != perBatch {
				t.Errorf("import: HTTP %d, %d rows, %v", rep.status, len(answer.Data), err)
			}
			for guid, r := range answer.Data {
				if !r.Success {
					t.Errorf("%s: %+v", guid, r.Error)
				}
			}
			for _, req := range []struct{ method, path, body string }{
				{http.MethodPut, "/groups/" + guids[0], `{"name":"Renamed"}`},
				{http.MethodGet, "/groups", ""},
				{http.MethodDelete, "/groups/" + guids[1], ""},
			} {
				if rep := call(req.method, req.path, req.body); rep.status != http.StatusOK {
					t.Errorf("%s %s: HTTP %d", req.method, req.path, rep.status)
				}
			}
		})
		// Faults change while requests are served.
		wg.Go(func() { e.SetFaults(Faults{Latency: time.Millisecond, Seed: int64(w + 1)}) })
		// Every worker also races for one shared guid: exactly one wins.
		wg.Go(func() { call(http.MethodPost, "/data_import/groups", importGroups(t, "shared")) })
	}
	wg.Wait()

	s := e.Stats()
	if want := workers*perBatch + 1; s.ImportedRows != want {
		t.Errorf("ImportedRows = %d, want %d (one shared)", s.ImportedRows, want)
	}
	if got, want := len(e.Groups()), workers*(perBatch-1)+1; got != want {
		t.Errorf("%d groups stored, want %d", got, want)
	}
	if s.Updates != workers || s.Deletes != workers || s.ImportRequests != 2*workers || s.Requests["POST import 200"] != 2*workers {
		t.Errorf("stats = %+v", s)
	}
	if g, _ := e.Group("w3-g0"); g.Name != "Renamed" {
		t.Errorf("w3-g0 = %+v, the update was lost", g)
	}
}

func TestMaxInFlight(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.SetFaults(Faults{HangRate: 1})
	const n = 5
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/groups", nil)
			req.Header.Set("apikey", testKey)
			if resp, err := srv.Client().Do(req); err == nil {
				resp.Body.Close()
				t.Error("a hung request was answered")
			}
		})
	}
	eventually(t, "all requests in flight", func() bool { return e.Stats().MaxInFlight == n })
	cancel()
	wg.Wait()
	eventually(t, "all hangs to end", func() bool { return e.Stats().Requests["GET groups hang"] == n })

	e.ResetStats()
	if s := e.Stats(); s.MaxInFlight != 0 || len(s.Requests) != 0 {
		t.Errorf("after ResetStats: %+v", s)
	}
}

func TestResetEmptiesApp(t *testing.T) {
	e, srv := newServer(t, Config{})
	mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, "a", "b")).rows(t)
	e.Reset()
	if n := len(e.Groups()); n != 0 {
		t.Errorf("%d groups after Reset", n)
	}
	if s := e.Stats(); s.ImportedRows != 2 {
		t.Errorf("ImportedRows = %d after Reset, want the stats kept", s.ImportedRows)
	}
	if rows := mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, "a")).rows(t); !rows["a"].Success {
		t.Errorf("re-import after Reset: %+v", rows["a"].Error)
	}
}

func TestSnapshotsAreCopies(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.Put(cometchat.Group{GUID: "G", Name: "G", Type: "public", Tags: []string{"t"}, Metadata: json.RawMessage(`{"a":1}`)})
	mustSend(t, srv, http.MethodGet, "/groups/g", "").data(t)

	all := e.Groups()
	all["g"].Tags[0] = "changed"
	all["g"].Metadata[1] = 'X'
	delete(all, "g")
	s := e.Stats()
	s.Requests["GET group 200"] = 99

	g, ok := e.Group("g")
	if !ok || g.Tags[0] != "t" || string(g.Metadata) != `{"a":1}` {
		t.Errorf("stored group changed through a snapshot: %+v", g)
	}
	if e.Stats().Requests["GET group 200"] != 1 {
		t.Error("stats changed through a snapshot")
	}
}
