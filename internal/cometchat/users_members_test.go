package cometchat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

func TestImportUsersAndMembersSendTheDocumentedBodies(t *testing.T) {
	s := newScript(t, answer{status: 200, body: `{"data":{}}`})
	c := newClient(t, s.url(), nil)
	ctx := context.Background()
	users := []cometchat.User{
		{UID: "ann", Name: "Ann", Avatar: "https://a.example/ann.png?x=1&y=2", Link: "https://l.example/ann", Role: "default",
			Metadata: json.RawMessage(`{"k":1}`), Tags: []string{"t"}, CreatedAt: 1673421419, LastActiveAt: 1673421425, DeactivatedAt: 1673421500},
		{UID: "bob", Name: "Bob"},
	}
	if _, err := c.ImportUsers(ctx, users); err != nil {
		t.Fatal(err)
	}
	members := []cometchat.Member{
		{GUID: "Team-1", UID: "Ann", Scope: cometchat.ScopeAdmin, JoinedAt: 1673421419},
		{MemberID: "team-2_member_bob", GUID: "team-2", UID: "bob"},
	}
	if _, err := c.ImportMembers(ctx, members); err != nil {
		t.Fatal(err)
	}
	if members[0].MemberID != "" {
		t.Errorf("ImportMembers changed the caller's slice: %+v", members[0])
	}
	reqs := s.requests()
	want := []struct{ path, body string }{
		{"/v3/data_import/users", `{"users":{` +
			`"ann":{"uid":"ann","name":"Ann","avatar":"https://a.example/ann.png?x=1&y=2","link":"https://l.example/ann","role":"default",` +
			`"metadata":{"k":1},"tags":["t"],"createdAt":1673421419,"lastActiveAt":1673421425,"deactivatedAt":1673421500},` +
			`"bob":{"uid":"bob","name":"Bob"}}}`},
		{"/v3/data_import/members", `{"members":{` +
			`"team-1_member_ann":{"memberId":"team-1_member_ann","guid":"Team-1","uid":"Ann","scope":"admin","joinedAt":1673421419},` +
			`"team-2_member_bob":{"memberId":"team-2_member_bob","guid":"team-2","uid":"bob"}}}`},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		if r := reqs[i]; r.method != http.MethodPost || r.path != w.path || string(r.body) != w.body {
			t.Errorf("request %d:\n%s %s %s\nwant POST %s %s", i, r.method, r.path, r.body, w.path, w.body)
		}
	}
	if got := cometchat.MemberID("Team-1", "Ann"); got != "team-1_member_ann" {
		t.Errorf("MemberID = %q, want CometChat's lowercased <guid>_member_<uid>", got)
	}
}

func TestImportUsersAndMembersReadRowResults(t *testing.T) {
	s := newScript(t,
		answer{status: 200, body: `{"data":{
			"ann": {"success": true, "data": {"uid": "ann"}},
			"bob": {"success": false, "error": {"code": "ERR_UID_ALREADY_EXISTS", "message": "exists"}},
			"cy":  {"success": false, "error": "cannot"}
		}}`},
		answer{status: 200, body: `{"data":{
			"g_member_ann": {"success": true},
			"g_member_bob": {"success": false, "error": {"code": "ERR_IMPORT_MUID_ALREADY_EXISTS", "message": "exists"}},
			"g_member_cy":  {"success": false, "error": {"code": "ERR_UID_NOT_FOUND", "message": "no user cy"}}
		}}`})
	c := newClient(t, s.url(), nil)
	ctx := context.Background()
	users, err := c.ImportUsers(ctx, []cometchat.User{{UID: "ann", Name: "A"}, {UID: "bob", Name: "B"}, {UID: "cy", Name: "C"}, {UID: "dee", Name: "D"}})
	if err != nil {
		t.Fatal(err)
	}
	members, err := c.ImportMembers(ctx, []cometchat.Member{{GUID: "g", UID: "ann"}, {GUID: "g", UID: "bob"}, {GUID: "g", UID: "cy"}, {GUID: "g", UID: "dee"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		got              cometchat.RowResult
		ok               bool
		code             string
		exists, notFound bool
	}{
		{"user imported", users["ann"], true, "", false, false},
		{"user exists", users["bob"], false, cometchat.CodeUIDAlreadyExists, true, false},
		{"user error as a string", users["cy"], false, cometchat.CodeUnreadableRowResult, false, false},
		{"user not in the answer", users["dee"], false, cometchat.CodeNoRowResult, false, false},
		{"member imported", members["g_member_ann"], true, "", false, false},
		{"member exists", members["g_member_bob"], false, cometchat.CodeMemberIDAlreadyExists, true, false},
		{"member of a missing user", members["g_member_cy"], false, cometchat.CodeUIDNotFound, false, true},
		{"member not in the answer", members["g_member_dee"], false, cometchat.CodeNoRowResult, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.OK != tt.ok || tt.got.Code != tt.code || tt.got.Exists() != tt.exists || tt.got.NotFound() != tt.notFound {
				t.Errorf("%+v (Exists %v, NotFound %v), want OK %v, code %q, Exists %v, NotFound %v",
					tt.got, tt.got.Exists(), tt.got.NotFound(), tt.ok, tt.code, tt.exists, tt.notFound)
			}
		})
	}
	if !strings.Contains(users["dee"].Message, "uid") || !strings.Contains(members["g_member_dee"].Message, "member id") {
		t.Errorf("missing rows' messages %q, %q do not say what was missing", users["dee"].Message, members["g_member_dee"].Message)
	}
}

func TestUserAndMemberRESTCallsOnTheWire(t *testing.T) {
	s := newScript(t, okAnswer)
	c := newClient(t, s.url(), nil)
	ctx := context.Background()
	calls := []func() error{
		func() error {
			return c.UpdateUser(ctx, "ann b", cometchat.UserUpdate{Name: "Ann", Role: "pro", Metadata: json.RawMessage(`{"a":1}`),
				Tags: &[]string{}, Unset: []string{"avatar", "link"}})
		},
		func() error { return c.DeleteUser(ctx, "ann", false) },
		func() error { return c.DeleteUser(ctx, "ann", true) },
		func() error { return c.ReactivateUsers(ctx, []string{"ann", "bob"}) },
		func() error {
			_, err := c.AddMembers(ctx, "team-1", map[string][]string{
				cometchat.ScopeParticipant: {"p1", "p2"}, cometchat.ScopeAdmin: {"a1"}})
			return err
		},
		func() error { return c.SetMemberScope(ctx, "team-1", "p1", cometchat.ScopeModerator) },
		func() error { return c.KickMember(ctx, "team-1", "p 2") },
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	want := []struct{ method, path, body string }{
		{http.MethodPut, "/v3/users/ann%20b", `{"name":"Ann","role":"pro","metadata":{"a":1},"tags":[],"unset":["avatar","link"]}`},
		{http.MethodDelete, "/v3/users/ann", `{"permanent":false}`},
		{http.MethodDelete, "/v3/users/ann", `{"permanent":true}`},
		{http.MethodPut, "/v3/users", `{"uidsToActivate":["ann","bob"]}`},
		{http.MethodPost, "/v3/groups/team-1/members", `{"admins":["a1"],"participants":["p1","p2"]}`},
		{http.MethodPut, "/v3/groups/team-1/members/p1", `{"scope":"moderator"}`},
		{http.MethodDelete, "/v3/groups/team-1/members/p%202", ``},
	}
	reqs := s.requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		r := reqs[i]
		if r.method != w.method || r.path != w.path || string(r.body) != w.body {
			t.Errorf("request %d: %s %s %s\nwant %s %s %s", i, r.method, r.path, r.body, w.method, w.path, w.body)
		}
		if r.header.Get("apikey") != testKey {
			t.Errorf("request %d has no apikey header", i)
		}
	}
}

func TestAddMembersReadsResultsPerUID(t *testing.T) {
	s := newScript(t, answer{status: 200, body: `{"data":{
		"admins":       {"a1": {"success": true, "data": {"id": "32"}}},
		"moderators":   {"m1": {"success": false, "error": {"code": "ERR_ALREADY_JOINED", "message": "m1 is a member"}}},
		"participants": {
			"p1": {"success": false, "error": {"code": "ERR_UID_NOT_FOUND", "message": "no user p1"}},
			"p2": {"success": false, "message": "p2 refused"},
			"p3": {"weird": true},
			"P4": {"success": true}
		}
	}}`})
	c := newClient(t, s.url(), nil)
	rows, err := c.AddMembers(context.Background(), "team-1", map[string][]string{
		cometchat.ScopeAdmin:       {"a1"},
		cometchat.ScopeModerator:   {"m1"},
		cometchat.ScopeParticipant: {"p1", "p2", "p3", "p4", "p5"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		uid, code, message string
		ok                 bool
	}{
		{"a1", "", "", true},
		{"m1", cometchat.CodeAlreadyJoined, "m1 is a member", false},
		{"p1", cometchat.CodeUIDNotFound, "no user p1", false},
		{"p2", cometchat.CodeUnreadableRowResult, "p2 refused", false},
		{"p3", cometchat.CodeUnreadableRowResult, `{"weird": true}`, false},
		{"p4", "", "", true}, // answered under another case
		{"p5", cometchat.CodeNoRowResult, `under participants: {"data"`, false},
	}
	if len(rows) != len(tests) {
		t.Errorf("%d results for %d uids: %+v", len(rows), len(tests), rows)
	}
	for _, tt := range tests {
		t.Run(tt.uid, func(t *testing.T) {
			r, ok := rows[tt.uid]
			if !ok || r.OK != tt.ok || r.Code != tt.code || !strings.Contains(r.Message, tt.message) {
				t.Errorf("%+v (present %v), want OK %v, code %q, message containing %q", r, ok, tt.ok, tt.code, tt.message)
			}
		})
	}
	if !rows["m1"].Exists() || !rows["p1"].NotFound() {
		t.Errorf("ERR_ALREADY_JOINED must be Exists and ERR_UID_NOT_FOUND NotFound: %+v %+v", rows["m1"], rows["p1"])
	}
}

func TestAddMembersAnswerOfAnotherShapeFailsEveryUID(t *testing.T) {
	for _, body := range []string{`{"data":{"success":true}}`, `{"data":[]}`, `ok`, `{"data":{"participants":[{"uid":"p1"}]}}`} {
		t.Run(body, func(t *testing.T) {
			s := newScript(t, answer{status: 200, body: body})
			rows, err := newClient(t, s.url(), nil).AddMembers(context.Background(), "g", map[string][]string{cometchat.ScopeParticipant: {"p1"}})
			if err != nil {
				t.Fatal(err)
			}
			if r := rows["p1"]; r.OK || r.Code != cometchat.CodeNoRowResult || !strings.Contains(r.Message, clipForTest(body)) {
				t.Errorf("result %+v, want %s with the answer's text: a 200 that names no uid proves nothing", r, cometchat.CodeNoRowResult)
			}
		})
	}
}

func clipForTest(s string) string { return s[:min(len(s), 20)] }

func TestAddMembersRefusesBadCallsLocally(t *testing.T) {
	s := newScript(t, okAnswer)
	c := newClient(t, s.url(), nil)
	many := make([]string, 26)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	tests := []struct {
		name string
		uids map[string][]string
		want string
	}{
		{"26 uids over the scopes", map[string][]string{cometchat.ScopeAdmin: many[:1], cometchat.ScopeParticipant: many[1:]}, "26 uids in one call, CometChat takes at most 25"},
		{"a uid twice", map[string][]string{cometchat.ScopeAdmin: {"Ann"}, cometchat.ScopeParticipant: {"ann"}}, `uid "ann" given twice`},
		{"unknown scope", map[string][]string{"owner": {"ann"}}, `scope "owner": must be admin, moderator or participant`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AddMembers(context.Background(), "team-1", tt.uids)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "team-1") {
				t.Errorf("err = %v, want one naming the group and containing %q", err, tt.want)
			}
		})
	}
	if rows, err := c.AddMembers(context.Background(), "team-1", nil); err != nil || len(rows) != 0 {
		t.Errorf("no uids: %v, %v; want no results and no error", rows, err)
	}
	if _, err := c.AddMembers(context.Background(), "team-1", map[string][]string{cometchat.ScopeAdmin: many[:25]}); err != nil {
		t.Errorf("25 uids: %v, want them sent", err)
	}
	if err := c.UpdateUser(context.Background(), "ann", cometchat.UserUpdate{Unset: []string{"name"}}); err == nil || !strings.Contains(err.Error(), `unset "name"`) {
		t.Errorf("UpdateUser unsetting name: %v, want it refused", err)
	}
	if err := c.SetMemberScope(context.Background(), "team-1", "ann", "owner"); err == nil || !strings.Contains(err.Error(), `scope "owner"`) {
		t.Errorf("SetMemberScope to owner: %v, want it refused", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want only the call with 25 uids", n)
	}
}

func TestEveryDataImportSharesOnePacer(t *testing.T) {
	s := newScript(t, answer{status: 200, body: `{"data":{}}`})
	c := newClient(t, s.url(), func(cfg *cometchat.Config) {
		cfg.ImportPerMinute = 60 // one a second
		cfg.OtherPerMinute = 60_000
	})
	var rec recorder
	c.SetSleep(rec.sleep)
	ctx := context.Background()
	if _, err := c.Import(ctx, oneGroup); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImportUsers(ctx, []cometchat.User{{UID: "u", Name: "U"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImportMembers(ctx, []cometchat.Member{{GUID: "g", UID: "u"}}); err != nil {
		t.Fatal(err)
	}
	// The recorder does not sleep, so the second import waits about 1s
	// and the third about 2s, as one budget of one a second demands.
	var long []time.Duration
	for _, w := range rec.waits {
		if w >= 900*time.Millisecond {
			long = append(long, w)
		}
	}
	if len(long) != 2 || rec.longest() < 1900*time.Millisecond {
		t.Fatalf("waits %v; want the user and member imports to queue behind the group import (about 1s and 2s)", rec.waits)
	}
	// The REST calls use the other budget: none waits for the imports'.
	rec = recorder{}
	c.SetSleep(rec.sleep)
	calls := []func() error{
		func() error { return c.UpdateUser(ctx, "u", cometchat.UserUpdate{Name: "U"}) },
		func() error { return c.DeleteUser(ctx, "u", false) },
		func() error { return c.ReactivateUsers(ctx, []string{"u"}) },
		func() error {
			_, err := c.AddMembers(ctx, "g", map[string][]string{cometchat.ScopeParticipant: {"u"}})
			return err
		},
		func() error { return c.SetMemberScope(ctx, "g", "u", cometchat.ScopeAdmin) },
		func() error { return c.KickMember(ctx, "g", "u") },
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := rec.longest(); got > 100*time.Millisecond {
		t.Errorf("a REST call waited %v: they must not queue behind the imports", got)
	}
}

func TestRESTCallsArePacedByTheOtherBudget(t *testing.T) {
	s := newScript(t, okAnswer)
	c := newClient(t, s.url(), func(cfg *cometchat.Config) { cfg.OtherPerMinute = 60 })
	var rec recorder
	c.SetSleep(rec.sleep)
	for range 2 {
		if err := c.KickMember(context.Background(), "g", "u"); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.longest(); got < 900*time.Millisecond {
		t.Errorf("the second kick waited %v, want about 1s at 60 calls a minute", got)
	}
}

func TestErrorClassificationForUsersAndMembers(t *testing.T) {
	tests := []struct {
		code             string
		exists, notFound bool
	}{
		{cometchat.CodeGUIDAlreadyExists, true, false},
		{cometchat.CodeUIDAlreadyExists, true, false},
		{cometchat.CodeMemberIDAlreadyExists, true, false},
		{cometchat.CodeAlreadyJoined, true, false},
		{"ERR_IMPORT_UID_ALREADY_EXISTS", true, false}, // undocumented, but says so
		{"ERR_MEMBER_ALREADY_EXIST", true, false},
		{"ERR_ALREADY_BANNED", false, false},
		{cometchat.CodeGUIDNotFound, false, true},
		{cometchat.CodeUIDNotFound, false, true},
		{cometchat.CodeNotAMember, false, true},
		{cometchat.CodeAPINotFound, false, false}, // a wrong URL is not a deleted entity
		{cometchat.CodeSameScope, false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if got := cometchat.CodeSaysExists(tt.code); got != tt.exists {
				t.Errorf("CodeSaysExists = %v, want %v", got, tt.exists)
			}
			if got := cometchat.CodeSaysNotFound(tt.code); got != tt.notFound {
				t.Errorf("CodeSaysNotFound = %v, want %v", got, tt.notFound)
			}
			s := newScript(t, errorAnswer(404, tt.code, "refused"))
			err := newClient(t, s.url(), func(cfg *cometchat.Config) { cfg.MaxAttempts = 1 }).KickMember(context.Background(), "g", "u")
			var ae *cometchat.APIError
			if !errors.As(fmt.Errorf("kick: %w", err), &ae) {
				t.Fatalf("err %v is no *APIError", err)
			}
			if ae.Exists() != tt.exists || ae.NotFound() != tt.notFound {
				t.Errorf("APIError Exists %v, NotFound %v; want %v, %v", ae.Exists(), ae.NotFound(), tt.exists, tt.notFound)
			}
		})
	}
	if (cometchat.RowResult{OK: true, Code: cometchat.CodeUIDAlreadyExists}).Exists() {
		t.Error("a successful row is never Exists")
	}
}

func TestRefusedImportShapeIsNotRetriedAndSaysSo(t *testing.T) {
	for _, status := range []int{400, 500} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			s := newScript(t, errorAnswer(status, "ERR_IMPORT_INVALID_USER_FORMAT", "users should be an array"))
			_, err := newClient(t, s.url(), nil).ImportUsers(context.Background(), []cometchat.User{{UID: "u", Name: "U"}})
			ae := asAPIError(t, err)
			if !ae.ShapeRefused() || ae.Retryable() {
				t.Errorf("ShapeRefused %v, Retryable %v; want true, false", ae.ShapeRefused(), ae.Retryable())
			}
			if n := len(s.requests()); n != 1 {
				t.Errorf("%d requests, want 1: a refused shape is not retried", n)
			}
			for _, part := range []string{"ERR_IMPORT_INVALID_USER_FORMAT", "users should be an array", "shape of the whole request", "not retried"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
		})
	}
}
