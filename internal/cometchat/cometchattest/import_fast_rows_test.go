package cometchattest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// userPath is POST /data_import/users, to an app that has the user
// "taken".
var userPath = pathOf("/v3/data_import/users", "rejected", userImport,
	func(e *Emulator) { e.PutUser(cometchat.User{UID: "taken", Name: "Existing"}) },
	func(e *Emulator) any { return e.Users() })

// memberPath is POST /data_import/members, to the app of graph: groups g
// (created at 1600000000) and h, users ann, bob, cy and rejected, the
// deactivated user old, and ann an admin of g. Its clock is fixedNow.
var memberPath = pathOf("/v3/data_import/members", "h_member_rejected", memberImport(fixedNow().Unix()),
	func(e *Emulator) {
		e.Put(cometchat.Group{GUID: "g", Name: "G", Type: "public", CreatedAt: 1600000000})
		e.Put(cometchat.Group{GUID: "h", Name: "H", Type: "public"})
		for _, uid := range []string{"ann", "bob", "cy", "rejected"} {
			e.PutUser(cometchat.User{UID: uid, Name: uid})
		}
		e.PutUser(cometchat.User{UID: "old", Name: "Old", DeactivatedAt: 1600000000})
		e.PutMember(cometchat.Member{GUID: "g", UID: "ann", Scope: "admin", JoinedAt: 1600000001})
	},
	func(e *Emulator) any { return e.AllMembers() })

// requestCases are the requests to the import of wrapper that are refused
// whole, or that the fast path must read as the reference path does, for
// rows of which valid(key) is a valid one.
func requestCases(wrapper string, valid func(key string) string) []importCase {
	body := func(members ...string) string { return `{"` + wrapper + `":{` + strings.Join(members, ",") + `}}` }
	rows := func(n int) string {
		members := make([]string, n)
		for i := range members {
			members[i] = valid(fmt.Sprintf("k-%d", i))
		}
		return body(members...)
	}
	a := valid("a")
	upper := strings.ToUpper(wrapper[:1]) + wrapper[1:]
	return []importCase{
		{name: "3 rows at a limit of 3", body: rows(3), maxBatch: 3, fast: true},
		{name: "50 rows", body: rows(50), fast: true},
		{name: "whitespace around the body", body: " \r\n\t{ \"" + wrapper + "\" :\n{ " + a + " } } \n", fast: true},
		{name: "51 rows", body: rows(51)},
		{name: "4 rows over a limit of 3", body: rows(4), maxBatch: 3},
		{name: "empty body", body: ``},
		{name: "body null", body: `null`},
		{name: "body an array", body: `[]`},
		{name: "invalid JSON", body: `{"` + wrapper + `": {`},
		{name: "wrapper missing", body: `{}`},
		{name: "wrapper null", body: `{"` + wrapper + `": null}`},
		{name: "wrapper an array", body: `{"` + wrapper + `": [` + strings.SplitN(a, ":", 2)[1] + `]}`},
		{name: "wrapper empty", body: `{"` + wrapper + `": {}}`},
		{name: "wrapper in another case", body: `{"` + upper + `":{` + a + `}}`},
		{name: "wrapper sent twice", body: `{"` + wrapper + `":{` + valid("x") + `},"` + wrapper + `":{` + a + `}}`},
		{name: "unknown top-level field", body: `{"groups": {}, "` + wrapper + `": {` + a + `}}`},
		{name: "unknown top-level field after the rows", body: body(a)[:len(body(a))-1] + `,"groups":{}}`},
		{name: "key twice", body: body(a, a)},
		{name: "key twice in different case", body: body(a, strings.ReplaceAll(valid("b"), `"b`, `"B`), valid("b"))},
		{name: "text after the body", body: body(a) + ` x`},
		{name: "a second value after the body", body: body(a) + `{}`},
		{name: "closing brace missing", body: body(a)[:len(body(a))-1]},
		{name: "trailing comma in the rows", body: body(a, ``)},
		{name: "trailing comma in a row", body: body(strings.TrimSuffix(a, "}") + `,}`)},
		{name: "row null", body: body(`"a":null`, valid("b"))},
		{name: "row a string", body: body(`"a":"just a string"`)},
		{name: "row an array", body: body(`"a":[` + strings.SplitN(a, ":", 2)[1] + `]`)},
		{name: "row empty", body: body(`"a":{}`)},
		{name: "unterminated string", body: `{"` + wrapper + `":{"a":{"x":"A`},
	}
}

// userPathCases covers what the user fast path takes and what it must hand
// to the reference path: every row error of TestImportUserRowErrors, and
// the JSON the reference path reads in its own way.
func userPathCases(tb testing.TB) []importCase {
	tb.Helper()
	body := func(members ...string) string { return `{"users":{` + strings.Join(members, ",") + `}}` }
	valid := func(key string) string { return `"` + key + `":{"uid":"` + key + `","name":"User ` + key + `"}` }
	// one is a body of a single row a, with the given fields after its uid,
	// beside a valid row.
	one := func(fields string) string { return body(`"a":{"uid":"a",`+fields+`}`, valid("good")) }
	ok := `"name":"A"`
	repeat := strings.Repeat
	tags := make([]string, 26)
	for i := range tags {
		tags[i] = `"` + fmt.Sprintf("%0100d", i) + `"`
	}
	tags25 := "[" + strings.Join(tags[:25], ",") + "]"
	cases := []importCase{
		{name: "typical 50 users", body: string(typicalUsersBody(tb, 50)), fast: true},
		{name: "minimal", body: body(valid("a")), fast: true},
		{name: "every field", fast: true, body: one(`"name":"Ann","avatar":"https://a/ann.png","link":"https://l/ann","role":"pro",` +
			`"createdAt":1673421419,"lastActiveAt":"1673421425","metadata":{"b":[1, 2],"a":"x"},"tags":["red","blue"],"deactivatedAt":3`)},
		{name: "uid in upper case", body: body(`"Ann-1":{"uid":"Ann-1","name":"A"}`), fast: true},
		{name: "null optional fields", fast: true, body: one(ok + `,"avatar":null,"link":null,"role":null,"createdAt":null,` +
			`"lastActiveAt":null,"metadata":null,"tags":null,"deactivatedAt":null`)},
		{name: "times as strings with leading zeros", body: one(ok + `,"createdAt":"0000000001","deactivatedAt":"0"`), fast: true},
		{name: "time of 10 digits", body: one(ok + `,"lastActiveAt":9999999999`), fast: true},
		{name: "escapes in strings", fast: true, body: one(`"name":"Caf\u00e9 \"q\" \\ \/ \ud83d\ude00","avatar":"https://x/?a=1\u0026b=2","tags":["\t"]`)},
		{name: "non-ASCII strings", body: one(`"name":"Café ☕ 日本","role":"é","tags":["é"]`), fast: true},
		{name: "invalid UTF-8 in a string", body: one(`"name":"A` + "\xff\xfe" + `"`), fast: true},
		{name: "escaped key", body: body(`"\u0061":{"uid":"a","name":"A"}`), fast: true},
		{name: "metadata with brackets in strings", body: one(ok + `,"metadata":{"a":"}]\"{[","b":{"c":[{},[]]},"d":"\\"}`), fast: true},
		{name: "empty metadata and tags", body: one(ok + `,"metadata":{},"tags":[]`), fast: true},
		{name: "limits", fast: true, body: one(`"name":"` + repeat("é", 100) + `","tags":` + tags25 + `,"metadata":{"k":"` + repeat("m", 5120-8) + `"}`)},
		{name: "uid of 100 characters", body: body(`"` + repeat("u", 100) + `":{"uid":"` + repeat("u", 100) + `","name":"U"}`), fast: true},
		{name: "uid that exists", body: body(valid("taken"), valid("b")), fast: true},
		{name: "uid that RejectRow refuses", body: body(valid("b"), valid("rejected")), fast: true},
		{name: "name an escaped control character", body: one(`"name":"\u0000"`), fast: true},

		{name: "key differs from uid", body: body(`"a":{"uid":"b","name":"A"}`)},
		{name: "key differs in case from uid", body: body(`"a":{"uid":"A","name":"A"}`)},
		{name: "uid missing", body: body(`"a":{"name":"A"}`)},
		{name: "uid null", body: body(`"a":{"uid":null,"name":"A"}`)},
		{name: "uid not a string", body: body(`"7":{"uid":7,"name":"A"}`)},
		{name: "uid with a space", body: body(valid("a b"))},
		{name: "uid with a dot", body: body(valid("a.b"))},
		{name: "uid empty", body: body(valid(""))},
		{name: "uid of 101 characters", body: body(`"` + repeat("u", 101) + `":{"uid":"` + repeat("u", 101) + `","name":"U"}`)},
		{name: "uid escaped", body: body(`"a":{"uid":"\u0061","name":"A"}`)},
		{name: "uid non-ASCII", body: body(valid("é"))},
		{name: "field name escaped", body: body(`"a":{"u\u0069d":"a","name":"A"}`)},
		{name: "field name in another case", body: one(`"Name":"A"`)},
		{name: "field sent twice", body: one(ok + `,"name":"B"`)},
		{name: "field sent twice, then null", body: one(ok + `,"avatar":"x","avatar":null`)},
		{name: "name missing", body: one(`"role":"r"`)},
		{name: "name null", body: one(`"name":null`)},
		{name: "name empty", body: one(`"name":""`)},
		{name: "name of 101 characters", body: one(`"name":"` + repeat("é", 101) + `"`)},
		{name: "name not a string", body: one(`"name":42`)},
		{name: "avatar not a string", body: one(ok + `,"avatar":{}`)},
		{name: "link not a string", body: one(ok + `,"link":1`)},
		{name: "role not a string", body: one(ok + `,"role":["r"]`)},
		{name: "metadata an array", body: one(ok + `,"metadata":[1]`)},
		{name: "metadata a string", body: one(ok + `,"metadata":"{\"a\":1}"`)},
		{name: "metadata of 5121 bytes", body: one(ok + `,"metadata":{"k":"` + repeat("m", 5121-8) + `"}`)},
		{name: "invalid JSON in metadata", body: one(ok + `,"metadata":{"a":}`)},
		{name: "26 tags", body: one(ok + `,"tags":[` + strings.Join(tags, ",") + `]`)},
		{name: "tag of 101 characters", body: one(ok + `,"tags":["ok","` + repeat("t", 101) + `"]`)},
		{name: "tags with a null", body: one(ok + `,"tags":["a",null]`)},
		{name: "tags a string", body: one(ok + `,"tags":"a"`)},
		{name: "createdAt in milliseconds", body: one(ok + `,"createdAt":1673421419000`)},
		{name: "lastActiveAt a fraction", body: one(ok + `,"lastActiveAt":1673421419.5`)},
		{name: "deactivatedAt negative", body: one(ok + `,"deactivatedAt":-1`)},
		{name: "deactivatedAt true", body: one(ok + `,"deactivatedAt":true`)},
		{name: "createdAt a date", body: one(ok + `,"createdAt":"2023-01-11"`)},
		{name: "createdAt with a leading zero", body: one(ok + `,"createdAt":01673421419`)},
		{name: "unknown field", body: one(ok + `,"email":"a@b"`)},
		{name: "statusMessage, which only PUT takes", body: one(ok + `,"statusMessage":"hi"`)},
		{name: "null misspelt", body: one(ok + `,"avatar":nul`)},
		{name: "control character in a string", body: one(`"name":"A` + "\n" + `"`)},
		{name: "invalid escape", body: one(`"name":"\x"`)},
	}
	return append(cases, requestCases("users", valid)...)
}

// memberPathCases covers what the member fast path takes and what it must
// hand to the reference path: every rule of TestImportMembersRules, and the
// JSON the reference path reads in its own way.
func memberPathCases(tb testing.TB) []importCase {
	tb.Helper()
	body := func(members ...string) string { return `{"members":{` + strings.Join(members, ",") + `}}` }
	// row is a membership of uid in guid under its member id, with fields
	// after its ids.
	row := func(guid, uid, fields string) string {
		id := guid + "_member_" + uid
		return `"` + id + `":{"memberId":"` + id + `","guid":"` + guid + `","uid":"` + uid + `"` + fields + `}`
	}
	one := func(fields string) string { return body(row("h", "bob", fields), row("h", "cy", "")) }
	// valid is a membership of a user of the app, keyed by key, for
	// requestCases: it need not be stored to be a valid row.
	valid := func(key string) string { return row("h", key, "") }
	cases := []importCase{
		{name: "typical 50 members", body: string(typicalMembersBody(tb, 50)), fast: true},
		{name: "minimal", body: body(row("g", "bob", "")), fast: true},
		{name: "every field", body: one(`,"scope":"moderator","isBanned":false,"joinedAt":1650000000,"groupDetails":null,"userDetails":null`), fast: true},
		{name: "field order", body: body(`"h_member_bob":{"joinedAt":"1650000000","uid":"bob","scope":"admin","guid":"h","memberId":"h_member_bob"}`), fast: true},
		{name: "ids in upper case", body: body(row("H", "Bob", "")), fast: true},
		{name: "member id in upper case, ids not", body: body(`"H_MEMBER_BOB":{"memberId":"H_MEMBER_BOB","guid":"h","uid":"bob"}`), fast: true},
		{name: "null optional fields", body: one(`,"scope":null,"isBanned":null,"joinedAt":null`), fast: true},
		{name: "empty scope", body: one(`,"scope":""`), fast: true},
		{name: "each scope", body: body(row("h", "ann", `,"scope":"admin"`), row("h", "bob", `,"scope":"moderator"`), row("h", "cy", `,"scope":"participant"`)), fast: true},
		{name: "isBanned false as a string", body: one(`,"isBanned":"false"`), fast: true},
		{name: "joinedAt now", body: one(`,"joinedAt":1700000000`), fast: true},
		{name: "joinedAt zero", body: one(`,"joinedAt":0`), fast: true},
		{name: "whitespace inside a row", body: body(`"h_member_bob" : { "memberId" : "h_member_bob" ,` + "\n" + ` "guid" : "h" , "uid" : "bob" }`), fast: true},
		{name: "escaped key", body: body(`"h\u005fmember_bob":{"memberId":"h_member_bob","guid":"h","uid":"bob"}`), fast: true},
		{name: "guid with _member_ in it", body: body(row("a_member_b", "bob", "")), fast: true},
		{name: "user missing", body: body(row("g", "nobody", "")), fast: true},
		{name: "user deactivated", body: body(row("g", "old", "")), fast: true},
		{name: "group missing", body: body(row("missing", "bob", "")), fast: true},
		{name: "membership that exists", body: body(row("g", "ann", ""), row("g", "cy", "")), fast: true},
		{name: "joinedAt before the group's createdAt", body: body(row("g", "cy", `,"joinedAt":1500000000`)), fast: true},
		{name: "membership that RejectRow refuses", body: body(row("h", "bob", ""), row("h", "rejected", "")), fast: true},
		{name: "same membership twice under ids in other cases", body: body(row("h", "bob", ""), row("H", "bob", ""))},

		{name: "key differs from memberId", body: body(`"h_member_bob":{"memberId":"h_member_cy","guid":"h","uid":"bob"}`)},
		{name: "key differs in case from memberId", body: body(`"h_member_bob":{"memberId":"H_member_bob","guid":"h","uid":"bob"}`)},
		{name: "memberId of another membership", body: body(`"h_member_x":{"memberId":"h_member_x","guid":"h","uid":"bob"}`)},
		{name: "memberId with its guid and uid swapped", body: body(`"bob_member_h":{"memberId":"bob_member_h","guid":"h","uid":"bob"}`)},
		{name: "memberId with another infix", body: body(`"h_membxr_bob":{"memberId":"h_membxr_bob","guid":"h","uid":"bob"}`)},
		{name: "memberId longer", body: body(`"h_member_bobx":{"memberId":"h_member_bobx","guid":"h","uid":"bob"}`)},
		{name: "memberId missing", body: body(`"h_member_bob":{"guid":"h","uid":"bob"}`)},
		{name: "guid missing", body: body(`"h_member_bob":{"memberId":"h_member_bob","uid":"bob"}`)},
		{name: "uid missing", body: body(`"h_member_bob":{"memberId":"h_member_bob","guid":"h"}`)},
		{name: "uid null", body: body(`"h_member_bob":{"memberId":"h_member_bob","guid":"h","uid":null}`)},
		{name: "uid not a string", body: body(`"h_member_7":{"memberId":"h_member_7","guid":"h","uid":7}`)},
		{name: "uid escaped", body: body(`"h_member_bob":{"memberId":"h_member_bob","guid":"h","uid":"b\u006fb"}`)},
		{name: "uid with a space", body: body(row("h", "b b", ""))},
		{name: "guid with a dot", body: body(row("h.i", "bob", ""))},
		{name: "guid empty", body: body(row("", "bob", ""))},
		{name: "uid empty", body: body(row("h", "", ""))},
		{name: "uid of 101 characters", body: body(row("h", strings.Repeat("u", 101), ""))},
		{name: "guid non-ASCII", body: body(row("é", "bob", ""))},
		{name: "scope unknown", body: one(`,"scope":"owner"`)},
		{name: "scope in another case", body: one(`,"scope":"Admin"`)},
		{name: "scope escaped", body: one(`,"scope":"\u0061dmin"`)},
		{name: "scope not a string", body: one(`,"scope":1`)},
		{name: "isBanned true", body: one(`,"isBanned":true`)},
		{name: "isBanned true as a string", body: one(`,"isBanned":"true"`)},
		{name: "isBanned a number", body: one(`,"isBanned":0`)},
		{name: "isBanned misspelt", body: one(`,"isBanned":fals`)},
		{name: "isBanned followed by a letter", body: one(`,"isBanned":falsex`)},
		{name: "groupDetails", body: one(`,"groupDetails":{"guid":"h"}`)},
		{name: "userDetails", body: one(`,"userDetails":{}`)},
		{name: "joinedAt in the future", body: one(`,"joinedAt":1700000001`)},
		{name: "joinedAt in milliseconds", body: one(`,"joinedAt":1673421419000`)},
		{name: "joinedAt a string of letters", body: one(`,"joinedAt":"yesterday"`)},
		{name: "field sent twice", body: one(`,"scope":"admin","scope":"participant"`)},
		{name: "field name in another case", body: one(`,"Scope":"admin"`)},
		{name: "unknown field", body: one(`,"role":"admin"`)},
	}
	return append(cases, requestCases("members", valid)...)
}

func TestUserImportFastPathMatchesReference(t *testing.T) {
	testImportPaths(t, userPath, userPathCases(t))
}

func TestMemberImportFastPathMatchesReference(t *testing.T) {
	testImportPaths(t, memberPath, memberPathCases(t))
}

// FuzzUserImportFastPath looks for a users request the two paths answer
// differently.
func FuzzUserImportFastPath(f *testing.F) {
	fuzzImportPaths(f, userPath, userPathCases(f))
}

// FuzzMemberImportFastPath looks for a members request the two paths
// answer differently.
func FuzzMemberImportFastPath(f *testing.F) {
	fuzzImportPaths(f, memberPath, memberPathCases(f))
}
