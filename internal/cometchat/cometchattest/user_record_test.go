package cometchattest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// TestStoredUserKeepsEveryField holds the packed user record to what was
// stored: every field, tags that look like the packing's own lengths, and
// an update that changes some fields and leaves the rest.
func TestStoredUserKeepsEveryField(t *testing.T) {
	e, srv := newServer(t, Config{})
	full := cometchat.User{UID: "Ann", Name: "Ann ☕", Avatar: "https://a/ann.png", Link: "https://l/ann", Role: "pro",
		Metadata: json.RawMessage(`{"k":1}`), Tags: []string{"", "a\x00\x00\x00\x05b", strings.Repeat("t", 300), "é"},
		CreatedAt: 1673421419, LastActiveAt: 1673421425, DeactivatedAt: 0}
	e.PutUser(full)
	want := full
	want.UID = "ann"
	if got, ok := e.User("ann"); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("stored\n%+v\nwant\n%+v", got, want)
	}
	mustSend(t, srv, http.MethodPut, "/v3/users/ann", `{"name":"Renamed","statusMessage":"away","unset":["link"]}`)
	want.Name, want.Link = "Renamed", ""
	if got, _ := e.User("ann"); !reflect.DeepEqual(got, want) {
		t.Errorf("after the update\n%+v\nwant\n%+v", got, want)
	}
	if v := mustSend(t, srv, http.MethodGet, "/v3/users/ann", "").data(t); v["statusMessage"] != "away" || v["avatar"] != want.Avatar {
		t.Errorf("GET answered %+v, want the status message and the avatar kept", v)
	}
	// A user of no optional field reads back with none.
	e.PutUser(cometchat.User{UID: "bob", Name: "Bob"})
	if got, _ := e.User("bob"); !reflect.DeepEqual(got, cometchat.User{UID: "bob", Name: "Bob"}) {
		t.Errorf("stored %+v, want only uid and name", got)
	}
}
