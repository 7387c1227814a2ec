package cometchattest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// importCase is one request body for the fast path and the reference path.
type importCase struct {
	name     string
	body     string
	maxBatch int  // 0: the default of 50
	fast     bool // whether the fast path takes the whole request
}

// importPathCases covers what the fast path takes and, above all, what it
// must hand to the reference path: every row error of TestImportRowErrors,
// every refused request of TestImportRefusesWholeRequest, and the JSON the
// reference path reads differently from a naive parser (repeated fields,
// field names in another case, escapes, nulls).
func importPathCases(tb testing.TB) []importCase {
	tb.Helper()
	// body wraps rows given as "key": {...} members.
	body := func(members ...string) string { return `{"groups":{` + strings.Join(members, ",") + `}}` }
	// one is a body of a single row a, with the given fields after its
	// guid; good is a valid row beside it.
	one := func(fields string) string {
		return body(`"a":{"guid":"a",`+fields+`}`, `"good":{"guid":"good","name":"G","type":"public"}`)
	}
	ok := `"name":"A","type":"public"`
	owner := func(details string) string { return one(ok + `,"owner":"u1","groupOwnerDetails":` + details) }
	repeat := func(s string, n int) string { return strings.Repeat(s, n) }
	quoted := func(ss ...string) string { return `["` + strings.Join(ss, `","`) + `"]` }
	tags25 := make([]string, 25)
	for i := range tags25 {
		tags25[i] = fmt.Sprintf("%0100d", i)
	}
	rows := func(n int) string {
		members := make([]string, n)
		for i := range members {
			members[i] = fmt.Sprintf(`"g-%d":{"guid":"g-%d","name":"G","type":"public"}`, i, i)
		}
		return body(members...)
	}

	return []importCase{
		// Requests the fast path takes whole.
		{name: "typical 50 groups", body: string(typicalImportBody(tb, 50)), fast: true},
		{name: "minimal", body: body(`"a":{"guid":"a","name":"A","type":"public"}`), fast: true},
		{name: "every field", fast: true, body: one(`"name":"Team","type":"password","password":"pw","icon":"i","owner":"u1",` +
			`"createdAt":1673421419,"metadata":{"b":[1, 2],"a":"x"},"tags":["red","blue"],"groupOwnerDetails":` +
			`{"uid":"u1","name":"One","avatar":"av","link":"l","role":"r","createdAt":1,"lastActiveAt":"2",` +
			`"metadata":{"k" : "v"},"tags":["t"],"deactivatedAt":3}`)},
		{name: "whitespace everywhere", fast: true,
			body: " \r\n\t{ \"groups\" : {\n \"a\" : { \"guid\" : \"a\" , \"name\" : \"A\" , \"type\" : \"public\" ,\n" +
				" \"tags\" : [ \"x\" , \"y\" ] , \"metadata\" : { \"k\" : [ 1 , { } ] } , \"createdAt\" : 5 } } } \n"},
		{name: "guid in upper case", body: body(`"Team-A":{"guid":"Team-A","name":"A","type":"public"}`), fast: true},
		{name: "null optional fields", fast: true, body: one(ok + `,"password":null,"icon":null,"owner":null,` +
			`"createdAt":null,"metadata":null,"tags":null,"groupOwnerDetails":null`)},
		{name: "null optional owner fields", fast: true, body: owner(`{"uid":"u1","name":"One","avatar":null,"link":null,` +
			`"role":null,"createdAt":null,"lastActiveAt":null,"metadata":null,"tags":null,"deactivatedAt":null}`)},
		{name: "createdAt as a string", body: one(ok + `,"createdAt":"1673421419"`), fast: true},
		{name: "createdAt as a string with leading zeros", body: one(ok + `,"createdAt":"0000000001"`), fast: true},
		{name: "createdAt zero", body: one(ok + `,"createdAt":0`), fast: true},
		{name: "createdAt of 10 digits", body: one(ok + `,"createdAt":9999999999`), fast: true},
		{name: "escapes in strings", fast: true,
			body: one(`"name":"Caf\u00e9 \"q\" \\ \/ \ud83d\ude00","type":"public","icon":"https://x/?a=1\u0026b=2","tags":["\t"]`)},
		{name: "non-ASCII strings", body: one(`"name":"Café ☕ 日本","type":"public","tags":["é"]`), fast: true},
		{name: "invalid UTF-8 in a string", body: one(`"name":"A` + "\xff\xfe" + `","type":"public"`), fast: true},
		{name: "escaped key", body: body(`"\u0061":{"guid":"a","name":"A","type":"public"}`), fast: true},
		{name: "metadata with brackets in strings", body: one(ok + `,"metadata":{"a":"}]\"{[","b":{"c":[{},[]]},"d":"\\"}`), fast: true},
		{name: "empty metadata and tags", body: one(ok + `,"metadata":{},"tags":[]`), fast: true},
		{name: "limits", fast: true, body: one(`"name":"` + repeat("é", 100) + `","type":"password","password":"` + repeat("p", 100) +
			`","icon":"` + repeat("i", 3000) + `","tags":` + quoted(tags25...) + `,"metadata":{"k":"` + repeat("m", 5120-8) + `"}`)},
		{name: "owner matching groupOwnerDetails", body: owner(`{"uid":"u1","name":"One"}`), fast: true},
		{name: "groupOwnerDetails without owner", body: one(ok + `,"groupOwnerDetails":{"uid":"u2","name":"Two"}`), fast: true},
		{name: "guid that exists", body: body(`"taken":{"guid":"taken","name":"T","type":"public"}`, `"b":{"guid":"b","name":"B","type":"public"}`), fast: true},
		{name: "guid that RejectRow refuses", body: body(`"b":{"guid":"b","name":"B","type":"public"}`, `"rejected":{"guid":"rejected","name":"R","type":"public"}`), fast: true},
		{name: "name an escaped control character", body: one(`"name":"\u0000","type":"public"`), fast: true},
		{name: "createdAt an escaped string", body: one(ok + `,"createdAt":"\u0031673421419"`), fast: true},
		{name: "3 groups at a limit of 3", body: rows(3), maxBatch: 3, fast: true},
		{name: "50 groups", body: rows(50), fast: true},

		// Row errors and rows the reference path reads in its own way.
		{name: "key differs from guid", body: body(`"a":{"guid":"b","name":"A","type":"public"}`)},
		{name: "key differs in case from guid", body: body(`"a":{"guid":"A","name":"A","type":"public"}`)},
		{name: "guid missing", body: body(`"a":{"name":"A","type":"public"}`)},
		{name: "guid null", body: body(`"a":{"guid":null,"name":"A","type":"public"}`)},
		{name: "guid not a string", body: body(`"7":{"guid":7,"name":"A","type":"public"}`)},
		{name: "guid with a space", body: body(`"a b":{"guid":"a b","name":"A","type":"public"}`)},
		{name: "guid with a dot", body: body(`"a.b":{"guid":"a.b","name":"A","type":"public"}`)},
		{name: "guid empty", body: body(`"":{"guid":"","name":"A","type":"public"}`)},
		{name: "guid of 101 characters", body: body(`"` + repeat("b", 101) + `":{"guid":"` + repeat("b", 101) + `","name":"A","type":"public"}`)},
		{name: "guid escaped", body: body(`"a":{"guid":"\u0061","name":"A","type":"public"}`)},
		{name: "guid non-ASCII", body: body(`"é":{"guid":"é","name":"A","type":"public"}`)},
		{name: "field name escaped", body: body(`"a":{"gu\u0069d":"a","name":"A","type":"public"}`)},
		{name: "field name in another case", body: one(`"Name":"A","type":"public"`)},
		{name: "field name in another case beside it", body: one(ok + `,"Name":"B"`)},
		{name: "field sent twice", body: one(ok + `,"name":"B"`)},
		{name: "field sent twice, then null", body: one(ok + `,"icon":"i","icon":null`)},
		{name: "groupOwnerDetails sent twice", body: owner(`{"uid":"u1","name":"One","avatar":"x"},"groupOwnerDetails":{"uid":"u1","name":"One"}`)},
		{name: "owner field sent twice", body: owner(`{"uid":"u1","name":"One","name":"Two"}`)},
		{name: "name missing", body: one(`"type":"public"`)},
		{name: "name null", body: one(`"name":null,"type":"public"`)},
		{name: "name empty", body: one(`"name":"","type":"public"`)},
		{name: "name of 101 characters", body: one(`"name":"` + repeat("é", 101) + `","type":"public"`)},
		{name: "name not a string", body: one(`"name":42,"type":"public"`)},

		{name: "type missing", body: one(`"name":"A"`)},
		{name: "type unknown", body: one(`"name":"A","type":"secret"`)},
		{name: "type in another case", body: one(`"name":"A","type":"Public"`)},
		{name: "type escaped", body: one(`"name":"A","type":"publ\u0069c"`)},
		{name: "type not a string", body: one(`"name":"A","type":true`)},
		{name: "password missing for a password group", body: one(`"name":"A","type":"password"`)},
		{name: "password empty for a password group", body: one(`"name":"A","type":"password","password":""`)},
		{name: "password of 101 characters", body: one(`"name":"A","type":"password","password":"` + repeat("p", 101) + `"`)},
		{name: "password not a string", body: one(`"name":"A","type":"password","password":1`)},
		{name: "icon of 3001 characters", body: one(ok + `,"icon":"` + repeat("i", 3001) + `"`)},
		{name: "icon not a string", body: one(ok + `,"icon":{}`)},
		{name: "owner not a string", body: one(ok + `,"owner":["u1"]`)},
		{name: "metadata an array", body: one(ok + `,"metadata":[1]`)},
		{name: "metadata a string", body: one(ok + `,"metadata":"{\"a\":1}"`)},
		{name: "metadata a number", body: one(ok + `,"metadata":1`)},
		{name: "metadata of 5121 bytes", body: one(ok + `,"metadata":{"k":"` + repeat("m", 5121-8) + `"}`)},
		{name: "26 tags", body: one(ok + `,"tags":` + quoted(append(tags25, "x")...))},
		{name: "tag of 101 characters", body: one(ok + `,"tags":["ok","` + repeat("t", 101) + `"]`)},
		{name: "tags not strings", body: one(ok + `,"tags":[1]`)},
		{name: "tags with a null", body: one(ok + `,"tags":["a",null]`)},
		{name: "tags nested", body: one(ok + `,"tags":[["a"]]`)},
		{name: "tags an object", body: one(ok + `,"tags":{"a":"b"}`)},
		{name: "tags a string", body: one(ok + `,"tags":"a"`)},
		{name: "createdAt in milliseconds", body: one(ok + `,"createdAt":1673421419000`)},
		{name: "createdAt a fraction", body: one(ok + `,"createdAt":1673421419.5`)},
		{name: "createdAt with an exponent", body: one(ok + `,"createdAt":1e9`)},
		{name: "createdAt negative", body: one(ok + `,"createdAt":-1`)},
		{name: "createdAt a date", body: one(ok + `,"createdAt":"2023-01-11"`)},
		{name: "createdAt an empty string", body: one(ok + `,"createdAt":""`)},
		{name: "createdAt a string of 11 digits", body: one(ok + `,"createdAt":"16734214190"`)},

		{name: "createdAt true", body: one(ok + `,"createdAt":true`)},
		{name: "owner differs from groupOwnerDetails.uid", body: one(ok + `,"owner":"u1","groupOwnerDetails":{"uid":"u2","name":"Two"}`)},
		{name: "groupOwnerDetails empty", body: owner(`{}`)},
		{name: "groupOwnerDetails without name", body: owner(`{"uid":"u1"}`)},
		{name: "groupOwnerDetails with an empty uid", body: one(ok + `,"groupOwnerDetails":{"uid":"","name":"One"}`)},
		{name: "groupOwnerDetails with a null name", body: owner(`{"uid":"u1","name":null}`)},
		{name: "groupOwnerDetails with an unknown field", body: owner(`{"uid":"u1","name":"One","email":"a@b"}`)},
		{name: "groupOwnerDetails createdAt in milliseconds", body: owner(`{"uid":"u1","name":"One","createdAt":1673421419000}`)},
		{name: "groupOwnerDetails metadata an array", body: owner(`{"uid":"u1","name":"One","metadata":[]}`)},
		{name: "groupOwnerDetails tags with a number", body: owner(`{"uid":"u1","name":"One","tags":[1]}`)},
		{name: "groupOwnerDetails a string", body: one(ok + `,"groupOwnerDetails":"u1"`)},
		{name: "unknown field", body: one(ok + `,"description":"not importable"`)},
		{name: "row null", body: body(`"a":null`, `"good":{"guid":"good","name":"G","type":"public"}`)},
		{name: "row not an object", body: body(`"a":"just a string"`)},
		{name: "row an array", body: body(`"a":[{"guid":"a","name":"A","type":"public"}]`)},
		{name: "row empty", body: body(`"a":{}`)},

		// Refused requests.
		{name: "empty body", body: ``},
		{name: "body null", body: `null`},
		{name: "body an array", body: `[]`},
		{name: "invalid JSON", body: `{"groups": {`},
		{name: "groups missing", body: `{}`},
		{name: "groups null", body: `{"groups": null}`},
		{name: "groups an array", body: `{"groups": [{"guid":"a","name":"A","type":"public"}]}`},
		{name: "groups empty", body: `{"groups": {}}`},
		{name: "groups in another case", body: `{"Groups":{"a":{"guid":"a","name":"A","type":"public"}}}`},
		{name: "groups sent twice", body: `{"groups":{"x":{"guid":"x","name":"X","type":"public"}},"groups":{"a":{"guid":"a","name":"A","type":"public"}}}`},
		{name: "unknown top-level field", body: `{"users": {}, "groups": {}}`},
		{name: "unknown top-level field after groups", body: `{"groups":{"a":{"guid":"a","name":"A","type":"public"}},"users":{}}`},
		{name: "51 groups", body: rows(51)},
		{name: "4 groups over a limit of 3", body: rows(4), maxBatch: 3},
		{name: "guid twice in different case", body: body(`"abc":{"guid":"abc","name":"A","type":"public"}`, `"ABC":{"guid":"ABC","name":"x","type":"public"}`)},
		{name: "guid twice", body: body(`"abc":{"guid":"abc","name":"A","type":"public"}`, `"abc":{"guid":"abc","name":"x","type":"public"}`)},
		{name: "text after the body", body: body(`"a":{"guid":"a","name":"A","type":"public"}`) + ` x`},
		{name: "a second value after the body", body: body(`"a":{"guid":"a","name":"A","type":"public"}`) + `{}`},
		{name: "closing brace missing", body: `{"groups":{"a":{"guid":"a","name":"A","type":"public"}}`},
		{name: "trailing comma in a row", body: one(ok + `,`)},
		{name: "trailing comma in groups", body: body(`"a":{"guid":"a","name":"A","type":"public"}`, ``)},
		{name: "trailing comma in tags", body: one(ok + `,"tags":["a",]`)},
		{name: "missing comma", body: one(`"name":"A" "type":"public"`)},
		{name: "missing colon", body: one(`"name" "A","type":"public"`)},
		{name: "invalid JSON in metadata", body: one(ok + `,"metadata":{"a":}`)},
		{name: "mismatched brackets in metadata", body: one(ok + `,"metadata":{"a":[1}]`)},
		{name: "unterminated string in metadata", body: one(ok + `,"metadata":{"a":"}`)},
		{name: "createdAt with a leading zero", body: one(ok + `,"createdAt":01673421419`)},
		{name: "null misspelt", body: one(ok + `,"icon":nul`)},
		{name: "null followed by a letter", body: one(ok + `,"icon":nullx`)},
		{name: "control character in a string", body: one(`"name":"A` + "\n" + `","type":"public"`)},
		{name: "invalid escape", body: one(`"name":"\x","type":"public"`)},
		{name: "unterminated string", body: `{"groups":{"a":{"guid":"a","name":"A`},
	}
}

// fixedNow is the emulator clock in the path comparisons, so that server
// creation times do not differ between the two emulators.
func fixedNow() time.Time { return time.Unix(1700000000, 0) }

// importPath is one import endpoint, for the comparisons of its fast and
// reference paths.
type importPath struct {
	path     string
	rejected string                                        // the key RejectRow refuses
	setup    func(e *Emulator)                             // what the app holds before the request
	stored   func(e *Emulator) any                         // everything the endpoint stores
	rows     func(tb testing.TB, e *Emulator, body []byte) // compareRows for its kind
	takes    func(e *Emulator, body []byte) bool           // whether the fast path takes the request
}

// pathOf describes the endpoint path of kind k.
func pathOf[T any](path, rejected string, k importKind[T], setup func(*Emulator), stored func(*Emulator) any) importPath {
	return importPath{path: path, rejected: rejected, setup: setup, stored: stored,
		rows: func(tb testing.TB, e *Emulator, body []byte) { compareRows(tb, e, body, k) },
		takes: func(e *Emulator, body []byte) bool {
			_, ok := parseImportFast(e, body, k)
			return ok
		}}
}

// groupPath is POST /data_import/groups, to an app that has the group
// "taken".
var groupPath = pathOf("/v3/data_import/groups", "rejected", groupImport,
	func(e *Emulator) { e.Put(cometchat.Group{GUID: "taken", Name: "Existing", Type: "public"}) },
	func(e *Emulator) any { return e.Groups() })

// importOutcome is everything a client or a test could observe of one
// import request.
type importOutcome struct {
	status int
	body   string
	stored any
	stats  Stats
}

// importWith sends body to p on a fresh emulator set up by p, that refuses
// the row p.rejected, with the fast path on or off.
func importWith(tb testing.TB, p importPath, c importCase, faults Faults, referenceOnly bool) importOutcome {
	tb.Helper()
	e := New(Config{APIKey: testKey, MaxBatch: c.maxBatch})
	e.now = fixedNow
	e.referenceOnly = referenceOnly
	p.setup(e)
	faults.RejectRow = func(key string) (string, string, bool) { return "", "refused", key == p.rejected }
	e.SetFaults(faults)
	req := httptest.NewRequest(http.MethodPost, p.path, strings.NewReader(c.body))
	req.Header.Set("apikey", testKey)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return importOutcome{status: rec.Code, body: rec.Body.String(), stored: p.stored(e), stats: e.Stats()}
}

// compareImportPaths fails when the fast path of p answers c differently
// from the reference path, or decodes a row the reference path would not.
func compareImportPaths(tb testing.TB, p importPath, c importCase) {
	tb.Helper()
	for _, faults := range []Faults{{}, {PartialImportRate: 1}} {
		fast := importWith(tb, p, c, faults, false)
		ref := importWith(tb, p, c, faults, true)
		if fast.status != ref.status || fast.body != ref.body {
			tb.Errorf("faults %+v: fast path answered HTTP %d\n%s\nreference path HTTP %d\n%s",
				faults, fast.status, fast.body, ref.status, ref.body)
		}
		if !reflect.DeepEqual(fast.stored, ref.stored) {
			tb.Errorf("faults %+v: fast path stored\n%+v\nreference path\n%+v", faults, fast.stored, ref.stored)
		}
		if !reflect.DeepEqual(fast.stats, ref.stats) {
			tb.Errorf("faults %+v: fast path stats %+v, reference path %+v", faults, fast.stats, ref.stats)
		}
	}
	e := New(Config{APIKey: testKey, MaxBatch: c.maxBatch})
	e.now = fixedNow
	p.rows(tb, e, []byte(c.body))
}

// compareRows fails when the fast path of k splits body differently from
// the reference path, or decodes one of its rows differently.
func compareRows[T any](tb testing.TB, e *Emulator, body []byte, k importKind[T]) {
	tb.Helper()
	rows, msg := parseRows[T](e, body, k.wrapper, k.keyName)
	if fastRows, ok := parseImportFast(e, body, k); ok {
		if msg != "" || len(fastRows) != len(rows) {
			tb.Fatalf("the fast path took a request the reference path refuses (%q) or split differently", msg)
		}
		for i, row := range fastRows {
			if row.key != rows[i].key {
				tb.Errorf("row %d: fast path key %q, reference path %q", i, row.key, rows[i].key)
			}
		}
	}
	for _, row := range rows {
		item, ok := k.decodeFast(row)
		if !ok {
			continue
		}
		want, ferr := k.decode(row)
		if ferr != nil {
			tb.Errorf("row %q: fast path took a row the reference path refuses: %s", row.key, ferr.message())
		} else if !reflect.DeepEqual(item, want) {
			tb.Errorf("row %q: fast path decoded\n%+v\nreference path\n%+v", row.key, item, want)
		}
	}
}

// testImportPaths runs the comparison of p over cases, and checks which
// requests the fast path takes whole.
func testImportPaths(t *testing.T, p importPath, cases []importCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compareImportPaths(t, p, c)
			e := New(Config{APIKey: testKey, MaxBatch: c.maxBatch})
			e.now = fixedNow
			if ok := p.takes(e, []byte(c.body)); ok != c.fast {
				t.Errorf("fast path took the request: %v, want %v", ok, c.fast)
			}
		})
	}
}

// fuzzImportPaths seeds f with cases and looks for a request p's two paths
// answer differently.
func fuzzImportPaths(f *testing.F, p importPath, cases []importCase) {
	for _, c := range cases {
		f.Add([]byte(c.body), uint8(c.maxBatch))
	}
	f.Fuzz(func(t *testing.T, body []byte, maxBatch uint8) {
		compareImportPaths(t, p, importCase{body: string(body), maxBatch: int(maxBatch % 8)})
	})
}

func TestImportFastPathMatchesReference(t *testing.T) {
	testImportPaths(t, groupPath, importPathCases(t))
}

// FuzzImportFastPath looks for a groups request the two paths answer
// differently. Run it with go test -fuzz FuzzImportFastPath
// ./internal/cometchat/cometchattest.
func FuzzImportFastPath(f *testing.F) {
	fuzzImportPaths(f, groupPath, importPathCases(f))
}
