package entities

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mapping"
	"github.com/cometsync/cometsync/internal/state"
)

func newUsers(tb testing.TB, d *double) Users {
	tb.Helper()
	m, err := mapping.NewUsers([]string{"id", "uid", "name", "avatar", "link", "role", "metadata", "tags"}, "", "id", nil)
	if err != nil {
		tb.Fatal(err)
	}
	return Users{Mapper: m, API: d.client}
}

func TestUsersImport(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
	d.emu.PutUser(cometchat.User{UID: "bob", Name: "Bob"})
	e := newUsers(t, d)
	objs := mapAll(t, e,
		[]any{int64(1), []byte("Ann"), []byte("Ann Example"), []byte("https://a.example/ann.png"), nil, []byte("default"),
			[]byte(`{"email": "ann@example.com"}`), []byte("vip, emea")},
		[]any{int64(2), "bob", "Bob", nil, nil, nil, nil, nil},
	)
	res, err := e.Import(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	wantCodes(t, res, map[string]string{"ann": "ok", "bob": cometchat.CodeUIDAlreadyExists})
	if !res["bob"].Exists() {
		t.Errorf("an existing user: Exists() = false for %+v; the engine would not update it", res["bob"])
	}
	want := request{"POST", "/v3/data_import/users", `{"users":{` +
		`"ann":{"uid":"ann","name":"Ann Example","avatar":"https://a.example/ann.png","role":"default","metadata":{"email":"ann@example.com"},"tags":["vip","emea"]},` +
		`"bob":{"uid":"bob","name":"Bob"}}}`}
	if reqs := d.requests(); len(reqs) != 1 || reqs[0] != want {
		t.Errorf("requests:\n got %+v\nwant [%+v]", reqs, want)
	}
	if u, ok := d.emu.User("ann"); !ok || u.Name != "Ann Example" || u.Avatar != "https://a.example/ann.png" {
		t.Errorf("CometChat has ann as %+v (%v), want the imported user", u, ok)
	}
	if e.KeyColumns()[0] != "uid" || e.JoinKey([]string{"ann"}) != "ann" {
		t.Errorf("KeyColumns %q, JoinKey(ann) %q; want [uid] and ann", e.KeyColumns(), e.JoinKey([]string{"ann"}))
	}
}

func TestUsersUpdate(t *testing.T) {
	full := cometchat.User{UID: "ann", Name: "Ann", Avatar: "https://a.example/ann.png", Link: "https://l.example/ann",
		Role: "default", Metadata: json.RawMessage(`{"k":1}`), Tags: []string{"vip"}}
	delivered := &state.Delivered{Key: "ann", Present: mapping.UserPresent(full)}
	tests := []struct {
		name  string
		row   []any
		known *state.Delivered
		body  string
		want  cometchat.User // as CometChat has it after
	}{
		{"fields that became NULL are unset, tags emptied", []any{int64(1), "ann", "Ann", nil, nil, nil, nil, nil}, delivered,
			`{"name":"Ann","tags":[],"unset":["avatar","link","metadata"]}`,
			cometchat.User{UID: "ann", Name: "Ann", Role: "default"}},
		{"fields that were never sent are left alone", []any{int64(1), "ann", "Ann B", nil, nil, nil, nil, nil},
			&state.Delivered{Key: "ann"},
			`{"name":"Ann B"}`,
			cometchat.User{UID: "ann", Name: "Ann B", Avatar: full.Avatar, Link: full.Link, Role: "default", Metadata: full.Metadata, Tags: full.Tags}},
		{"nothing known: every absent field is cleared", []any{int64(1), "ann", "Ann", nil, []byte("https://l.example/new"), nil, nil, nil}, nil,
			`{"name":"Ann","link":"https://l.example/new","tags":[],"unset":["avatar","metadata"]}`,
			cometchat.User{UID: "ann", Name: "Ann", Link: "https://l.example/new", Role: "default"}},
		{"changed values are set", []any{int64(1), "ann", "Ann", "https://a.example/2.png", nil, "admin", `{"k":2}`, `["a","b"]`}, delivered,
			`{"name":"Ann","avatar":"https://a.example/2.png","role":"admin","metadata":{"k":2},"tags":["a","b"],"unset":["link"]}`,
			cometchat.User{UID: "ann", Name: "Ann", Avatar: "https://a.example/2.png", Role: "admin", Metadata: json.RawMessage(`{"k":2}`), Tags: []string{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
			d.emu.PutUser(full)
			e := newUsers(t, d)
			obj := mapAll(t, e, tt.row)[0]
			if err := e.Update(context.Background(), obj, tt.known); err != nil {
				t.Fatalf("Update: %v", err)
			}
			want := request{"PUT", "/v3/users/ann", tt.body}
			if reqs := d.requests(); len(reqs) != 1 || reqs[0] != want {
				t.Errorf("requests:\n got %+v\nwant [%+v]", reqs, want)
			}
			got, _ := d.emu.User("ann")
			if g, w := mustMarshal(t, got), mustMarshal(t, tt.want); g != w {
				t.Errorf("CometChat has\n %s\nwant %s", g, w)
			}
		})
	}
}

func TestUsersUpdateOfAMissingUserIsNotFound(t *testing.T) {
	d := newDouble(t, cometchattest.Config{}, cometchat.Config{})
	e := newUsers(t, d)
	err := e.Update(context.Background(), mapAll(t, e, []any{int64(1), "ann", "Ann", nil, nil, nil, nil, nil})[0], nil)
	var ae *cometchat.APIError
	if !errors.As(err, &ae) || !ae.NotFound() || ae.Code != cometchat.CodeUIDNotFound {
		t.Errorf("Update of a missing user: %v, want an APIError ERR_UID_NOT_FOUND that is NotFound, so the engine imports it", err)
	}
}

func mustMarshal(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
