package cometchattest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// usersJSON builds a users import body from uid → object, in the order given.
func usersJSON(tb testing.TB, rows ...row) string {
	tb.Helper()
	return strings.Replace(importJSON(tb, rows...), `{"groups":`, `{"users":`, 1)
}

func user(uid string) row {
	return row{key: uid, obj: map[string]any{"uid": uid, "name": "User " + uid}}
}

func TestImportUsersStoresThemOnce(t *testing.T) {
	e, srv := newServer(t, Config{})
	full := row{key: "Ann", obj: map[string]any{"uid": "Ann", "name": "Ann", "avatar": "https://a/ann.png", "link": "https://l/ann",
		"role": "pro", "metadata": map[string]any{"k": 1}, "tags": []string{"t"}, "createdAt": 1673421419, "lastActiveAt": "1673421425"}}
	rows := mustSend(t, srv, http.MethodPost, "/v3/data_import/users", usersJSON(t, full, user("bob"))).rows(t)
	if !rows["ann"].Success || !rows["bob"].Success || rows["ann"].Data["uid"] != "ann" {
		t.Fatalf("rows = %+v, want both imported, answered under the lowercased uid", rows)
	}
	want := cometchat.User{UID: "ann", Name: "Ann", Avatar: "https://a/ann.png", Link: "https://l/ann", Role: "pro",
		Metadata: json.RawMessage(`{"k":1}`), Tags: []string{"t"}, CreatedAt: 1673421419, LastActiveAt: 1673421425}
	if got, ok := e.User("ANN"); !ok || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored %+v, want %+v", got, want)
	}
	again := row{key: "ann", obj: map[string]any{"uid": "ann", "name": "Renamed"}}
	rows = mustSend(t, srv, http.MethodPost, "/v3/data_import/users", usersJSON(t, again)).rows(t)
	if r := rows["ann"]; r.Success || r.Error == nil || r.Error.Code != "ERR_UID_ALREADY_EXISTS" {
		t.Errorf("second import: %+v, want ERR_UID_ALREADY_EXISTS", r)
	}
	if u, _ := e.User("ann"); u.Name != "Ann" {
		t.Errorf("a second import changed the user: %+v", u)
	}
	if s := e.Stats(); s.UserImportRequests != 2 || s.ImportedUsers != 2 || s.Requests["POST import_users 200"] != 2 || s.ImportRequests != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestImportUserRowErrors(t *testing.T) {
	long := strings.Repeat("a", 101)
	tests := []struct {
		name  string
		row   row
		field string
	}{
		{"uid with a space", row{key: "a b", obj: map[string]any{"uid": "a b", "name": "x"}}, "uid"},
		{"uid of 101 characters", row{key: long, obj: map[string]any{"uid": long, "name": "x"}}, "uid"},
		{"uid other than the key", row{key: "a", obj: map[string]any{"uid": "b", "name": "x"}}, "uid"},
		{"no name", row{key: "a", obj: map[string]any{"uid": "a"}}, "name"},
		{"name of 101 characters", row{key: "a", obj: map[string]any{"uid": "a", "name": long}}, "name"},
		{"createdAt in milliseconds", row{key: "a", obj: map[string]any{"uid": "a", "name": "x", "createdAt": 1673421419000}}, "createdAt"},
		{"metadata not an object", row{key: "a", obj: map[string]any{"uid": "a", "name": "x", "metadata": "k"}}, "metadata"},
		{"26 tags", row{key: "a", obj: map[string]any{"uid": "a", "name": "x", "tags": make([]string, 26)}}, "tags"},
		{"unknown field", row{key: "a", obj: map[string]any{"uid": "a", "name": "x", "email": "a@b"}}, "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newServer(t, Config{})
			rows := mustSend(t, srv, http.MethodPost, "/data_import/users", usersJSON(t, tt.row)).rows(t)
			r := rows[strings.ToLower(tt.row.key)]
			if r.Success || r.Error == nil || r.Error.Code != "ERR_IMPORT_INVALID_USER_FORMAT" || !strings.HasPrefix(r.Error.Message, tt.field+": ") {
				t.Errorf("row %+v, want ERR_IMPORT_INVALID_USER_FORMAT naming %s", r, tt.field)
			}
			if len(e.Users()) != 0 {
				t.Error("an invalid user was stored")
			}
		})
	}
}

func TestUpdateUser(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.PutUser(cometchat.User{UID: "ann", Name: "Ann", Avatar: "https://a", Link: "https://l", Metadata: json.RawMessage(`{"a":1}`), Tags: []string{"x"}})
	e.PutUser(cometchat.User{UID: "gone", Name: "Gone", DeactivatedAt: 1673421419})
	rep := mustSend(t, srv, http.MethodPut, "/users/ann", `{"name":"Ann B","role":"pro","tags":[],"unset":["avatar","metadata"]}`)
	if d := rep.data(t); d["name"] != "Ann B" {
		t.Errorf("answer %s", rep.body)
	}
	want := cometchat.User{UID: "ann", Name: "Ann B", Link: "https://l", Role: "pro"}
	if got, _ := e.User("ann"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the update %+v, want %+v", got, want)
	}
	mustSend(t, srv, http.MethodPut, "/users/nobody", `{"name":"x"}`).wantError(t, http.StatusNotFound, "ERR_UID_NOT_FOUND")
	mustSend(t, srv, http.MethodPut, "/users/gone", `{"name":"x"}`).wantError(t, http.StatusNotFound, "ERR_UID_NOT_FOUND")
	for _, body := range []string{`{"unset":["name"]}`, `{"name":""}`, `{"avatar":"a","unset":["avatar"]}`, `{"owner":"x"}`} {
		mustSend(t, srv, http.MethodPut, "/users/ann", body).wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")
	}
	if s := e.Stats(); s.UserUpdates != 1 {
		t.Errorf("%d updates counted, want 1", s.UserUpdates)
	}
}

func TestDeleteUserDeactivatesReactivatesAndRemoves(t *testing.T) {
	e, srv := newServer(t, Config{})
	e.Put(cometchat.Group{GUID: "g", Name: "G", Type: "public"})
	for _, uid := range []string{"ann", "bob"} {
		e.PutUser(cometchat.User{UID: uid, Name: uid})
		e.PutMember(cometchat.Member{GUID: "g", UID: uid})
	}
	if d := mustSend(t, srv, http.MethodDelete, "/users/ann", "").data(t); d["success"] != true {
		t.Errorf("delete answered %v", d)
	}
	if u, ok := e.User("ann"); !ok || u.DeactivatedAt == 0 {
		t.Fatalf("after DELETE the user is %+v (exists %v), want it deactivated, not removed", u, ok)
	}
	// A deactivated user is not found elsewhere, and cannot be deleted again
	// (only permanently).
	mustSend(t, srv, http.MethodDelete, "/users/ann", `{"permanent":false}`).wantError(t, http.StatusNotFound, "ERR_UID_NOT_FOUND")
	rows := mustSend(t, srv, http.MethodPost, "/groups/g/members", `{"participants":["ann"]}`).data(t)
	if fmt.Sprint(rows) == "" || !strings.Contains(fmt.Sprint(rows), "ERR_UID_NOT_FOUND") {
		t.Errorf("adding a deactivated user answered %v, want ERR_UID_NOT_FOUND", rows)
	}

	d := mustSend(t, srv, http.MethodPut, "/users", `{"uidsToActivate":["ANN","nobody"]}`).data(t)
	if fmt.Sprint(d["nonDeactivatedUids"]) != "[ann]" {
		t.Errorf("reactivate answered %v", d)
	}
	if u, _ := e.User("ann"); u.DeactivatedAt != 0 {
		t.Errorf("after reactivating: %+v", u)
	}
	mustSend(t, srv, http.MethodPut, "/users", `{"uidsToActivate":[]}`).wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")

	mustSend(t, srv, http.MethodDelete, "/users/bob", `{"permanent":true}`).data(t)
	if _, ok := e.User("bob"); ok {
		t.Error("a permanent delete left the user")
	}
	if _, ok := e.Member("g", "bob"); ok {
		t.Error("a permanent delete left the user's membership")
	}
	if _, ok := e.Member("g", "ann"); !ok {
		t.Error("another user's membership went too")
	}
	mustSend(t, srv, http.MethodDelete, "/users/bob", "").wantError(t, http.StatusNotFound, "ERR_UID_NOT_FOUND")
	mustSend(t, srv, http.MethodDelete, "/users/ann", `{"permanent":"yes"}`).wantError(t, http.StatusBadRequest, "ERR_BAD_REQUEST")

	d = mustSend(t, srv, http.MethodDelete, "/users", `{"uidsToDeactivate":["ann"]}`).data(t)
	if u, _ := e.User("ann"); u.DeactivatedAt == 0 || fmt.Sprint(d["deactivatedUids"]) != "[ann]" {
		t.Errorf("bulk deactivate answered %v and left %+v", d, u)
	}
	if s := e.Stats(); s.Deactivations != 2 || s.Reactivations != 1 || s.PermanentDeletes != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestListUsersPages(t *testing.T) {
	e, srv := newServer(t, Config{})
	for i := range 5 {
		e.PutUser(cometchat.User{UID: fmt.Sprintf("u%d", i), Name: "x"})
	}
	e.PutUser(cometchat.User{UID: "u9", Name: "x", DeactivatedAt: 1})
	list := func(query string) (uids []string, pagination map[string]int) {
		var a struct {
			Data []struct{ UID string } `json:"data"`
			Meta struct {
				Pagination map[string]int `json:"pagination"`
			} `json:"meta"`
		}
		rep := mustSend(t, srv, http.MethodGet, "/users?"+query, "")
		if err := json.Unmarshal(rep.body, &a); err != nil || rep.status != 200 {
			t.Fatalf("GET /users?%s: HTTP %d %s", query, rep.status, rep.body)
		}
		for _, d := range a.Data {
			uids = append(uids, d.UID)
		}
		return uids, a.Meta.Pagination
	}
	uids, p := list("perPage=2&page=2")
	if fmt.Sprint(uids) != "[u2 u3]" || p["total"] != 5 || p["total_pages"] != 3 || p["current_page"] != 2 || p["count"] != 2 {
		t.Errorf("page 2 of 2: %v %v", uids, p)
	}
	if uids, p = list("perPage=5000"); len(uids) != 5 || p["per_page"] != 1000 {
		t.Errorf("perPage above 1000: %v %v", uids, p)
	}
	if uids, _ = list("withDeactivated=true"); len(uids) != 6 {
		t.Errorf("withDeactivated: %v", uids)
	}
	if uids, _ = list("onlyDeactivated=true"); fmt.Sprint(uids) != "[u9]" {
		t.Errorf("onlyDeactivated: %v", uids)
	}
}
