package entities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mapping"
)

// 2023-01-11T07:16:59Z.
const ts = 1673421419

func newMembers(tb testing.TB, d *double, via Via) Members {
	tb.Helper()
	m, err := mapping.NewMembers([]string{"guid", "uid", "scope", "joined_at"}, "", "", nil)
	if err != nil {
		tb.Fatal(err)
	}
	return Members{Mapper: m, API: d.client, Via: via}
}

// seed puts the groups and the users into the double, the group created
// before ts.
func seed(d *double, guids []string, uids ...string) {
	for _, g := range guids {
		d.emu.Put(cometchat.Group{GUID: g, Name: g, Type: "public", CreatedAt: ts - 3600})
	}
	for _, u := range uids {
		d.emu.PutUser(cometchat.User{UID: u, Name: u})
	}
}

// codes is each result's code, "ok" for a success, by key.
func codes(res map[string]cometchat.RowResult) map[string]string {
	out := make(map[string]string, len(res))
	for k, r := range res {
		out[k] = r.Code
		if r.OK {
			out[k] = "ok"
		}
	}
	return out
}

func wantCodes(tb testing.TB, res map[string]cometchat.RowResult, want map[string]string) {
	tb.Helper()
	got := codes(res)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		tb.Errorf("results by member id:\n got %v\nwant %v", got, want)
	}
}

func TestMembersViaImport(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
	seed(d, []string{"g1"}, "ann", "bob")
	d.emu.PutMember(cometchat.Member{GUID: "g1", UID: "bob", Scope: cometchat.ScopeParticipant})
	e := newMembers(t, d, ViaImport)
	ctx := context.Background()
	objs := mapAll(t, e,
		[]any{[]byte("G1"), []byte("Ann"), []byte("admin"), int64(ts)},
		[]any{"g1", "bob", "moderator", nil},
		[]any{"g1", "carl", nil, nil}, // no such user
	)
	res, err := e.Import(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	wantCodes(t, res, map[string]string{"g1_member_ann": "ok", "g1_member_bob": cometchat.CodeMemberIDAlreadyExists,
		"g1_member_carl": cometchat.CodeUIDNotFound})
	if !res["g1_member_bob"].Exists() {
		t.Errorf("an existing membership: Exists() = false for %+v; the engine would not update its scope", res["g1_member_bob"])
	}
	reqs := d.requests()
	want := request{"POST", "/v3/data_import/members", `{"members":{` +
		`"g1_member_ann":{"memberId":"g1_member_ann","guid":"g1","uid":"ann","scope":"admin","joinedAt":1673421419},` +
		`"g1_member_bob":{"memberId":"g1_member_bob","guid":"g1","uid":"bob","scope":"moderator"},` +
		`"g1_member_carl":{"memberId":"g1_member_carl","guid":"g1","uid":"carl","scope":"participant"}}}`}
	if len(reqs) != 1 || reqs[0] != want {
		t.Errorf("requests:\n got %+v\nwant [%+v]", reqs, want)
	}
	if m, _ := d.emu.Member("g1", "ann"); m.Scope != cometchat.ScopeAdmin || m.JoinedAt != ts {
		t.Errorf("CometChat has ann as %+v, want an admin who joined at %d: the import keeps joinedAt", m, ts)
	}

	// The engine updates what the import found existing: a scope change.
	if err := e.Update(ctx, objs[1], nil); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if m, _ := d.emu.Member("g1", "bob"); m.Scope != cometchat.ScopeModerator {
		t.Errorf("bob is %q after the update, want moderator", m.Scope)
	}
	wantReq := request{"PUT", "/v3/groups/g1/members/bob", `{"scope":"moderator"}`}
	if reqs := d.requests(); len(reqs) != 1 || reqs[0] != wantReq {
		t.Errorf("update requests:\n got %+v\nwant [%+v]", reqs, wantReq)
	}
}

func TestMembersUpdate(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
	seed(d, []string{"g1"}, "ann", "bob")
	d.emu.PutMember(cometchat.Member{GUID: "g1", UID: "ann", Scope: cometchat.ScopeAdmin})
	ctx := context.Background()
	for _, via := range []Via{ViaImport, ViaREST} {
		t.Run(via.String(), func(t *testing.T) {
			e := newMembers(t, d, via)
			objs := mapAll(t, e, []any{"g1", "ann", "admin", nil}, []any{"g1", "bob", "admin", nil})
			before := d.emu.Stats().ScopeChanges
			// ERR_SAME_SCOPE: CometChat has it so already, which is done.
			if err := e.Update(ctx, objs[0], nil); err != nil {
				t.Errorf("Update to the scope the member has: %v, want nil (ERR_SAME_SCOPE means done)", err)
			}
			if n := d.emu.Stats().ScopeChanges - before; n != 0 {
				t.Errorf("%d scope changes, want none", n)
			}
			// Not a member: NotFound, so that the engine imports it.
			err := e.Update(ctx, objs[1], nil)
			var ae *cometchat.APIError
			if !errors.As(err, &ae) || !ae.NotFound() || ae.Code != cometchat.CodeNotAMember {
				t.Errorf("Update of no member: %v, want an APIError ERR_NOT_A_MEMBER that is NotFound", err)
			}
		})
	}
}

func TestMembersViaRESTSends25UidsOfOneGroupACall(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
	scopes := []string{cometchat.ScopeAdmin, cometchat.ScopeModerator, cometchat.ScopeParticipant}
	var uids []string
	var rows [][]any
	for i := range 60 {
		uid := fmt.Sprintf("u%02d", i)
		uids = append(uids, uid)
		rows = append(rows, []any{"g1", uid, scopes[i%3], nil})
	}
	seed(d, []string{"g1"}, uids...)
	e := newMembers(t, d, ViaREST)
	res, err := e.Import(context.Background(), mapAll(t, e, rows...))
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]string)
	for _, uid := range uids {
		want["g1_member_"+uid] = "ok"
	}
	wantCodes(t, res, want)

	reqs := d.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (60 members of one group, 25 a call): %+v", len(reqs), reqs)
	}
	var sizes []int
	seen := make(map[string]bool)
	for _, r := range reqs {
		if r.method != "POST" || r.path != "/v3/groups/g1/members" {
			t.Errorf("request %s %s, want POST /v3/groups/g1/members", r.method, r.path)
		}
		var body map[string][]string
		if err := json.Unmarshal([]byte(r.body), &body); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		n := 0
		for array, list := range body {
			for _, uid := range list {
				var i int
				fmt.Sscanf(uid, "u%d", &i)
				if wantArray := scopes[i%3] + "s"; array != wantArray {
					t.Errorf("uid %s sent in %s, want %s", uid, array, wantArray)
				}
				seen[uid] = true
				n++
			}
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[10 25 25]" {
		t.Errorf("uids per call %v, want [10 25 25]", sizes)
	}
	if len(seen) != 60 {
		t.Errorf("%d distinct uids sent, want 60", len(seen))
	}
	members := d.emu.Members("g1")
	for i, uid := range uids {
		if m := members[uid]; m.Scope != scopes[i%3] {
			t.Errorf("CometChat has %s as %q, want %q", uid, m.Scope, scopes[i%3])
		}
	}
}

func TestMembersViaRESTReadsEachUidsResult(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
	seed(d, []string{"g1", "g3"}, "ann", "bob")
	d.emu.PutMember(cometchat.Member{GUID: "g1", UID: "bob", Scope: cometchat.ScopeParticipant})
	e := newMembers(t, d, ViaREST)
	ctx := context.Background()
	objs := mapAll(t, e,
		[]any{"g1", "ann", "moderator", nil},
		[]any{"g2", "ann", nil, nil}, // no such group
		[]any{"g1", "bob", "admin", nil},
		[]any{"g1", "carl", nil, nil}, // no such user
		[]any{"g3", "bob", nil, int64(ts)},
	)
	res, err := e.Import(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	wantCodes(t, res, map[string]string{
		"g1_member_ann":  "ok",
		"g2_member_ann":  cometchat.CodeGUIDNotFound,
		"g1_member_bob":  cometchat.CodeAlreadyJoined,
		"g1_member_carl": cometchat.CodeUIDNotFound,
		"g3_member_bob":  "ok",
	})
	if r := res["g1_member_bob"]; !r.Exists() {
		t.Errorf("ERR_ALREADY_JOINED: Exists() = false for %+v; the engine would not update the scope", r)
	}
	if r := res["g1_member_carl"]; !r.NotFound() || !strings.Contains(r.Message, "carl") {
		t.Errorf("member of a missing user: %+v, want a NotFound result that names the user", r)
	}
	reqs := d.requests()
	slices.SortFunc(reqs, func(a, b request) int { return strings.Compare(a.path, b.path) })
	want := []request{
		{"POST", "/v3/groups/g1/members", `{"admins":["bob"],"moderators":["ann"],"participants":["carl"]}`},
		{"POST", "/v3/groups/g2/members", `{"participants":["ann"]}`},
		{"POST", "/v3/groups/g3/members", `{"participants":["bob"]}`},
	}
	if fmt.Sprint(reqs) != fmt.Sprint(want) {
		t.Errorf("requests: one a group\n got %+v\nwant %+v", reqs, want)
	}

	// The engine then sets the scope of the member that already was one.
	if err := e.Update(ctx, objs[2], nil); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if m, _ := d.emu.Member("g1", "bob"); m.Scope != cometchat.ScopeAdmin {
		t.Errorf("bob is %q in g1 after the update, want admin", m.Scope)
	}
}

func TestMembersViaRESTWholeCallFailureIsTheBatchs(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{MaxAttempts: 1})
	seed(d, []string{"g1"}, "ann")
	d.emu.SetFaults(cometchattest.Faults{ErrorRate: 1, Seed: 1})
	e := newMembers(t, d, ViaREST)
	_, err := e.Import(context.Background(), mapAll(t, e, []any{"g1", "ann", nil, nil}))
	var ae *cometchat.APIError
	if !errors.As(err, &ae) || !ae.Retryable() {
		t.Errorf("Import when CometChat fails: %v, want the retryable APIError of the call, not a row result", err)
	}
}

func TestMembersKey(t *testing.T) {
	mm, err := mapping.NewMembers([]string{"id", "updated_at", "GUID", "UID"}, "updated_at", "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Members{Mapper: mm}
	if got := e.KeyColumns(); fmt.Sprint(got) != "[GUID UID]" {
		t.Errorf("KeyColumns = %q, want the guid's and the uid's columns, [GUID UID]", got)
	}
	if got := e.JoinKey([]string{"team-1", "ann"}); got != "team-1_member_ann" {
		t.Errorf("JoinKey = %q, want the member id team-1_member_ann", got)
	}
	o, err := e.Map([]any{int64(1), "2024-01-01", "Team-1", "Ann"})
	if err != nil || o.Key != e.JoinKey([]string{"team-1", "ann"}) {
		t.Errorf("Map key %q (%v), want the JoinKey of its lowercased ids", o.Key, err)
	}
	if _, err := e.Map([]any{int64(1), "2024-01-01", "team-1", nil}); err == nil {
		t.Error("Map accepted a membership without a uid")
	}
}

func TestParseVia(t *testing.T) {
	for in, want := range map[string]Via{"": ViaImport, "import": ViaImport, "rest": ViaREST} {
		if got, err := ParseVia(in); err != nil || got != want {
			t.Errorf("ParseVia(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	_, err := ParseVia("REST API")
	want := `members.via: "REST API" is not a way to create memberships; use import (keeps joinedAt) or rest (faster, no joinedAt)`
	if err == nil || err.Error() != want {
		t.Errorf("ParseVia(\"REST API\") error:\n got %v\nwant %s", err, want)
	}
}
