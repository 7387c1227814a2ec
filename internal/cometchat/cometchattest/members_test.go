package cometchattest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// membersJSON builds a members import body, in the order given.
func membersJSON(tb testing.TB, rows ...row) string {
	tb.Helper()
	return strings.Replace(importJSON(tb, rows...), `{"groups":`, `{"members":`, 1)
}

func member(guid, uid string, fields ...any) row {
	obj := map[string]any{"memberId": guid + "_member_" + uid, "guid": guid, "uid": uid}
	for i := 0; i+1 < len(fields); i += 2 {
		obj[fields[i].(string)] = fields[i+1]
	}
	return row{key: guid + "_member_" + uid, obj: obj}
}

// graph is an app with groups g (created at 1600000000) and h, users ann,
// bob and cy, the deactivated user old, and ann a member of g.
func graph(t *testing.T, cfg Config) (*Emulator, *httptest.Server) {
	t.Helper()
	e, srv := newServer(t, cfg)
	e.Put(cometchat.Group{GUID: "g", Name: "G", Type: "public", CreatedAt: 1600000000})
	e.Put(cometchat.Group{GUID: "h", Name: "H", Type: "public"})
	for _, uid := range []string{"ann", "bob", "cy"} {
		e.PutUser(cometchat.User{UID: uid, Name: uid})
	}
	e.PutUser(cometchat.User{UID: "old", Name: "Old", DeactivatedAt: 1600000000})
	e.PutMember(cometchat.Member{GUID: "g", UID: "ann", Scope: "admin", JoinedAt: 1600000001})
	return e, srv
}

func TestImportMembersRules(t *testing.T) {
	e, srv := graph(t, Config{})
	future := time.Now().Add(time.Hour).Unix()
	rows := mustSend(t, srv, http.MethodPost, "/v3/data_import/members", membersJSON(t,
		member("g", "bob", "scope", "moderator", "joinedAt", 1700000000),
		member("H", "Cy"),
		member("g", "nobody"),
		member("g", "old"),
		member("missing", "bob"),
		member("g", "ann"),
		member("h", "ann", "scope", "owner"),
		member("h", "bob", "joinedAt", future),
		member("g", "cy", "joinedAt", 1500000000),
		row{key: "h_member_x", obj: map[string]any{"memberId": "h_member_x", "guid": "h", "uid": "bob"}},
	)).rows(t)
	tests := []struct{ key, code, field string }{
		{"g_member_bob", "", ""},
		{"h_member_cy", "", ""},
		{"g_member_nobody", "ERR_UID_NOT_FOUND", ""},
		{"g_member_old", "ERR_UID_NOT_FOUND", ""},
		{"missing_member_bob", "ERR_GUID_NOT_FOUND", ""},
		{"g_member_ann", "ERR_IMPORT_MUID_ALREADY_EXISTS", ""},
		{"h_member_ann", "ERR_IMPORT_INVALID_MEMBER_FORMAT", "scope"},
		{"h_member_bob", "ERR_IMPORT_INVALID_JOINEDAT", "joinedAt"},
		{"g_member_cy", "ERR_IMPORT_INVALID_JOINEDAT", ""},
		{"h_member_x", "ERR_IMPORT_INVALID_MEMBER_FORMAT", "memberId"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			r, ok := rows[tt.key]
			switch {
			case !ok:
				t.Fatalf("no answer under %s: %v", tt.key, rows)
			case tt.code == "" && !r.Success:
				t.Errorf("%+v, want imported", r.Error)
			case tt.code != "" && (r.Success || r.Error.Code != tt.code || !strings.HasPrefix(r.Error.Message, tt.field)):
				t.Errorf("%+v, want %s naming %q", r, tt.code, tt.field)
			}
		})
	}
	if m, _ := e.Member("g", "bob"); m != (cometchat.Member{MemberID: "g_member_bob", GUID: "g", UID: "bob", Scope: "moderator", JoinedAt: 1700000000}) {
		t.Errorf("stored %+v, want the scope and joinedAt kept", m)
	}
	if m, _ := e.Member("h", "cy"); m.Scope != "participant" || m.JoinedAt == 0 {
		t.Errorf("stored %+v, want participant by default and a joinedAt", m)
	}
	if m, _ := e.Member("g", "ann"); m.Scope != "admin" {
		t.Errorf("a refused re-import changed the membership: %+v", m)
	}
	if s := e.Stats(); s.ImportedMembers != 2 || s.MemberImportRequests != 1 || len(e.AllMembers()) != 3 {
		t.Errorf("stats %+v, members %v", s, e.AllMembers())
	}
}

func TestAddMembersPerScopePerUID(t *testing.T) {
	e, srv := graph(t, Config{})
	rep := mustSend(t, srv, http.MethodPost, "/v3/groups/g/members",
		`{"admins":["Bob"],"participants":["ann","nobody","old","cy"]}`)
	var a struct {
		Data map[string]map[string]rowAnswer `json:"data"`
	}
	decode(t, rep, &a)
	want := map[string]map[string]string{
		"admins":       {"bob": ""},
		"participants": {"ann": "ERR_ALREADY_JOINED", "nobody": "ERR_UID_NOT_FOUND", "old": "ERR_UID_NOT_FOUND", "cy": ""},
	}
	if len(a.Data) != len(want) {
		t.Errorf("answer %s, want only the scopes sent", rep.body)
	}
	for array, uids := range want {
		for uid, code := range uids {
			r, ok := a.Data[array][uid]
			if !ok || r.Success != (code == "") || (code != "" && r.Error.Code != code) {
				t.Errorf("%s.%s = %+v, want code %q", array, uid, r, code)
			}
		}
	}
	if m, _ := e.Member("g", "bob"); m.Scope != "admin" || m.JoinedAt == 0 {
		t.Errorf("bob is %+v", m)
	}
	if m, _ := e.Member("g", "ann"); m.Scope != "admin" {
		t.Errorf("an already joined member changed: %+v", m)
	}
	if s := e.Stats(); s.MembersAdded != 2 || s.Requests["POST members 200"] != 1 {
		t.Errorf("stats %+v", s)
	}

	uids := make([]string, 26)
	for i := range uids {
		uids[i] = strconv.Quote(fmt.Sprintf("u%d", i))
	}
	mustSend(t, srv, http.MethodPost, "/groups/h/members", `{"admins":[`+uids[0]+`],"participants":[`+strings.Join(uids[1:], ",")+`]}`).
		wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")
	mustSend(t, srv, http.MethodPost, "/groups/h/members", `{"participants":[`+strings.Join(uids[1:], ",")+`]}`).data(t)
	mustSend(t, srv, http.MethodPost, "/groups/h/members", `{}`).wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")
	mustSend(t, srv, http.MethodPost, "/groups/h/members", `{"admins":["cy"],"participants":["cy"]}`).wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")
	mustSend(t, srv, http.MethodPost, "/groups/missing/members", `{"participants":["cy"]}`).wantError(t, http.StatusNotFound, "ERR_GUID_NOT_FOUND")
}

func TestScopeChangeAndKick(t *testing.T) {
	e, srv := graph(t, Config{})
	mustSend(t, srv, http.MethodPut, "/groups/g/members/ann", `{"scope":"admin"}`).wantError(t, http.StatusBadRequest, "ERR_SAME_SCOPE")
	if d := mustSend(t, srv, http.MethodPut, "/groups/G/members/ANN", `{"scope":"moderator"}`).data(t); d["scope"] != "moderator" || d["joinedAt"] != 1600000001.0 {
		t.Errorf("scope change answered %v", d)
	}
	if m, _ := e.Member("g", "ann"); m.Scope != "moderator" || m.JoinedAt != 1600000001 {
		t.Errorf("after the change %+v", m)
	}
	mustSend(t, srv, http.MethodPut, "/groups/g/members/ann", `{"scope":"owner"}`).wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")
	mustSend(t, srv, http.MethodPut, "/groups/g/members/bob", `{"scope":"admin"}`).wantError(t, http.StatusNotFound, "ERR_NOT_A_MEMBER")
	mustSend(t, srv, http.MethodPut, "/groups/missing/members/ann", `{"scope":"admin"}`).wantError(t, http.StatusNotFound, "ERR_GUID_NOT_FOUND")

	if d := mustSend(t, srv, http.MethodDelete, "/groups/g/members/ann", "").data(t); d["success"] != true {
		t.Errorf("kick answered %v", d)
	}
	if _, ok := e.Member("g", "ann"); ok {
		t.Error("the kicked member is still there")
	}
	if _, ok := e.User("ann"); !ok {
		t.Error("a kick removed the user")
	}
	mustSend(t, srv, http.MethodDelete, "/groups/g/members/ann", "").wantError(t, http.StatusNotFound, "ERR_NOT_A_MEMBER")
	if s := e.Stats(); s.ScopeChanges != 1 || s.Kicks != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestDeleteGroupDropsItsMembers(t *testing.T) {
	e, srv := graph(t, Config{})
	e.PutMember(cometchat.Member{GUID: "h", UID: "bob"})
	mustSend(t, srv, http.MethodDelete, "/groups/g", "").data(t)
	if n := len(e.Members("g")); n != 0 {
		t.Errorf("%d members left in the deleted group", n)
	}
	// A group of the same guid imported again starts empty.
	e.Put(cometchat.Group{GUID: "g", Name: "G", Type: "public"})
	if _, ok := e.Member("g", "ann"); ok {
		t.Error("the membership came back with the group")
	}
	if _, ok := e.Member("h", "bob"); !ok {
		t.Error("another group's member went too")
	}
}

func TestListMembers(t *testing.T) {
	e, srv := graph(t, Config{})
	e.PutMember(cometchat.Member{GUID: "g", UID: "cy"})
	e.PutMember(cometchat.Member{GUID: "g", UID: "bob", Scope: "moderator"})
	var a struct {
		Data []struct {
			UID, Name, Scope string
			JoinedAt         int64
		} `json:"data"`
		Meta struct{ Pagination map[string]int } `json:"meta"`
	}
	decode(t, mustSend(t, srv, http.MethodGet, "/groups/g/members?perPage=2", ""), &a)
	if len(a.Data) != 2 || a.Data[0].UID != "ann" || a.Data[0].Scope != "admin" || a.Data[0].JoinedAt != 1600000001 ||
		a.Data[1].UID != "bob" || a.Data[1].Scope != "moderator" || a.Data[1].Name != "bob" || a.Meta.Pagination["total"] != 3 {
		t.Errorf("first page %+v", a)
	}
	mustSend(t, srv, http.MethodGet, "/groups/missing/members", "").wantError(t, http.StatusNotFound, "ERR_GUID_NOT_FOUND")
	if g := mustSend(t, srv, http.MethodGet, "/groups/g", "").data(t); g["membersCount"] != 3.0 {
		t.Errorf("membersCount = %v, want 3", g["membersCount"])
	}
}

func TestFaultsApplyToUserAndMemberEndpoints(t *testing.T) {
	calls := []struct{ method, path, body string }{
		{http.MethodPost, "/data_import/users", `{"users":{"dee":{"uid":"dee","name":"Dee"}}}`},
		{http.MethodPost, "/data_import/members", `{"members":{"h_member_bob":{"memberId":"h_member_bob","guid":"h","uid":"bob"}}}`},
		{http.MethodPut, "/users/bob", `{"name":"B"}`},
		{http.MethodDelete, "/users/bob", ""},
		{http.MethodPut, "/users", `{"uidsToActivate":["old"]}`},
		{http.MethodPost, "/groups/h/members", `{"participants":["bob"]}`},
		{http.MethodPut, "/groups/g/members/ann", `{"scope":"participant"}`},
		{http.MethodDelete, "/groups/g/members/ann", ""},
	}
	for _, c := range calls {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			e, srv := graph(t, Config{})
			users, members := e.Users(), e.AllMembers()
			e.SetFaults(Faults{ErrorRate: 1})
			mustSend(t, srv, c.method, c.path, c.body).wantError(t, http.StatusInternalServerError, "ERR_EXCEPTION")
			e.SetFaults(Faults{WriteOutage: true})
			mustSend(t, srv, c.method, c.path, c.body).wantError(t, http.StatusServiceUnavailable, "ERR_EXCEPTION")
			if fmt.Sprint(e.Users()) != fmt.Sprint(users) || fmt.Sprint(e.AllMembers()) != fmt.Sprint(members) {
				t.Error("a failed request changed the data")
			}
			e.SetFaults(Faults{})
			if rep := mustSend(t, srv, c.method, c.path, c.body); rep.status != http.StatusOK {
				t.Errorf("without faults: HTTP %d %s", rep.status, rep.body)
			}
		})
	}
}

func TestPartialAndRejectedUserAndMemberImports(t *testing.T) {
	e, srv := graph(t, Config{})
	e.SetFaults(Faults{PartialImportRate: 1})
	mustSend(t, srv, http.MethodPost, "/data_import/users", usersJSON(t, user("d1"), user("d2"), user("d3"))).
		wantError(t, http.StatusInternalServerError, "ERR_EXCEPTION")
	if _, ok := e.User("d1"); !ok {
		t.Error("the first half was not imported")
	}
	if _, ok := e.User("d2"); ok {
		t.Error("the second half was imported")
	}
	var asked []string
	e.SetFaults(Faults{RejectRow: func(key string) (string, string, bool) {
		asked = append(asked, key)
		return "", "refused (test)", key == "h_member_bob"
	}})
	rows := mustSend(t, srv, http.MethodPost, "/data_import/members", membersJSON(t, member("h", "bob"), member("H", "cy"))).rows(t)
	if r := rows["h_member_bob"]; r.Success || r.Error.Code != "ERR_OPERATION_FAILED" || !rows["h_member_cy"].Success {
		t.Errorf("rows %+v", rows)
	}
	if fmt.Sprint(asked) != "[h_member_bob h_member_cy]" {
		t.Errorf("RejectRow was asked about %v, want the lowercased member ids", asked)
	}
	if _, ok := e.Member("h", "bob"); ok {
		t.Error("a rejected row was stored")
	}
}

func TestImportLimitIsSharedByEveryDataImport(t *testing.T) {
	e, srv := graph(t, Config{})
	e.SetFaults(Faults{ImportPerSecond: 0.1})
	mustSend(t, srv, http.MethodPost, "/data_import/groups", importGroups(t, "n1")).rows(t)
	mustSend(t, srv, http.MethodPost, "/data_import/users", usersJSON(t, user("d1"))).wantError(t, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS")
	mustSend(t, srv, http.MethodPost, "/data_import/members", membersJSON(t, member("h", "bob"))).wantError(t, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS")
	// The other calls have their own budget.
	mustSend(t, srv, http.MethodPost, "/groups/h/members", `{"participants":["bob"]}`).data(t)
}

func TestPlanLimitOfOtherCalls(t *testing.T) {
	e, srv := graph(t, Config{OtherPerMinute: 120}) // two a second, a burst of two
	var limited reply
	for i := range 3 {
		rep := mustSend(t, srv, http.MethodPut, "/users/bob", fmt.Sprintf(`{"name":"B%d"}`, i))
		if rep.status == http.StatusTooManyRequests {
			limited = rep
			break
		}
	}
	if limited.status == 0 {
		t.Fatal("3 calls at once passed a limit of 2 a second")
	}
	limited.wantError(t, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS")
	if ra, _ := strconv.Atoi(limited.header.Get("Retry-After")); ra < 1 || limited.header.Get("X-RateLimit-Limit") != "120" {
		t.Errorf("429 headers %v, want Retry-After and the per-minute limit", limited.header)
	}
	// Imports are not other calls.
	mustSend(t, srv, http.MethodPost, "/data_import/users", usersJSON(t, user("d1"))).rows(t)
	if s := e.Stats(); s.TooManyRequests != 1 {
		t.Errorf("%d 429s counted, want 1", s.TooManyRequests)
	}
}
