package cometchattest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// The fast path of POST /data_import/groups.
//
// Why it exists: the throughput benchmark runs the emulator on the same cores
// as cometsync, so every microsecond the emulator spends on a row is charged
// to cometsync's figures. The reference path (parseImportReference and
// decodeImportGroup) decodes each row into a map and each field with its own
// json.Unmarshal: about 40 µs of CPU per row in BenchmarkImport50, where
// the fast path, reading a whole request in one pass, takes about 8 µs.
//
// Why it is not encoding/json into a struct: that matches field names
// case-insensitively ("Name" would fill name, where the reference path
// refuses an unknown field), merges an object sent twice where the
// reference path keeps the last, and cannot tell null from absent; telling
// those apart needs a pass over the keys anyway.
//
// How it stays honest: it is a small strict parser for the shape a
// well-formed import has, and it only ever accepts. It takes a request, or a
// row, only when the reference path would take it with exactly the same
// result. Anything else (a syntax error, an unknown or repeated field, a
// wrong type, a broken constraint, a repeated guid, too many rows) makes it
// give up, and the reference path decodes the request or the row again from
// the start. Every error message therefore comes from the reference path.
// TestImportFastPathMatchesReference and FuzzImportFastPath hold the two
// paths to the same answers.

// parseImportFast reads a request the reference path would accept, with
// every row valid, into its rows already decoded. ok is false when it
// cannot vouch for the request.
func (e *Emulator) parseImportFast(body []byte) (rows []importRow, ok bool) {
	s := scanner{b: body}
	if !s.eat('{') {
		return nil, false
	}
	if key, ok := s.key(); !ok || string(key) != "groups" || !s.eat('{') {
		return nil, false
	}
	for first := true; ; first = false {
		more, ok := s.more(first, '}')
		if !ok || (more && len(rows) == e.maxBatch) {
			return nil, false
		}
		if !more {
			break
		}
		key, ok := s.str()
		if !ok || !s.eat(':') {
			return nil, false
		}
		s.ws()
		start := s.i
		g, ok := s.importGroup(key)
		if !ok {
			return nil, false
		}
		rows = append(rows, importRow{key: key, raw: body[start:s.i], group: g, decoded: true})
	}
	// One member, "groups", and nothing after the body.
	if !s.eat('}') || !s.end() || len(rows) == 0 {
		return nil, false
	}
	// Every guid passed checkGUID, so it is lowercase ASCII and the
	// reference path's case-insensitive comparison is plain equality.
	seen := make(map[string]struct{}, len(rows))
	for _, row := range rows {
		if _, dup := seen[row.group.GUID]; dup {
			return nil, false
		}
		seen[row.group.GUID] = struct{}{}
	}
	return rows, true
}

// decodeImportGroupFast decodes one row that the reference path has already
// split off, when decodeImportGroup would accept it.
func decodeImportGroupFast(row importRow) (cometchat.Group, bool) {
	s := scanner{b: row.raw}
	g, ok := s.importGroup(row.key)
	return g, ok && s.end()
}

// Bits of the fields of an import row, in importFields order, to notice
// a field sent twice (the reference path keeps the last one).
const (
	bitGUID = 1 << iota
	bitName
	bitType
	bitPassword
	bitIcon
	bitOwner
	bitCreatedAt
	bitMetadata
	bitTags
	bitOwnerDetails
)

// importGroup reads one row as decodeImportGroup stores it, when that
// accepts it.
func (s *scanner) importGroup(key string) (cometchat.Group, bool) {
	var g cometchat.Group
	var seen, bit int
	var guid []byte
	if !s.eat('{') {
		return g, false
	}
	for first := true; ; first = false {
		more, ok := s.more(first, '}')
		if !ok {
			return g, false
		}
		if !more {
			break
		}
		name, ok := s.key()
		if !ok {
			return g, false
		}
		// guid, name and type are required, so a null is an error and
		// str refuses it; the reference path reads null as absent for the
		// optional fields.
		switch string(name) {
		case "guid":
			bit = bitGUID
			guid, ok = s.plainStr()
		case "name":
			bit = bitName
			g.Name, ok = s.str()
		case "type":
			bit = bitType
			g.Type, ok = s.groupType()
		case "password":
			bit = bitPassword
			g.Password, ok = s.optStr()
		case "icon":
			bit = bitIcon
			g.Icon, ok = s.optStr()
		case "owner":
			bit = bitOwner
			g.Owner, ok = s.optStr()
		case "createdAt":
			bit = bitCreatedAt
			g.CreatedAt, ok = s.unixSeconds()
		case "metadata":
			bit = bitMetadata
			g.Metadata, ok = s.metadata()
		case "tags":
			bit = bitTags
			g.Tags, ok = s.tags()
		case "groupOwnerDetails":
			bit = bitOwnerDetails
			g.GroupOwnerDetails, ok = s.ownerDetails()
		default:
			return g, false
		}
		if !ok || seen&bit != 0 {
			return g, false
		}
		seen |= bit
	}
	const required = bitGUID | bitName | bitType
	// The guid must equal the key byte for byte; the stored guid is the
	// key lowercased, which is the key itself when it is lowercase already.
	if seen&required != required || string(guid) != key {
		return g, false
	}
	g.GUID = strings.ToLower(key)
	if firstError(checkGUID(g.GUID), checkName(g.Name), checkType(g.Type),
		checkPassword(g.Type, g.Password), checkIcon(g.Icon)) != nil {
		return g, false
	}
	if d := g.GroupOwnerDetails; d != nil && g.Owner != "" && d.UID != g.Owner {
		return g, false
	}
	return g, true
}

// ownerDetailsFields are what groupOwnerDetails may hold, as in
// fields.ownerDetails; a field's bit is 1 << its index.
var ownerDetailsFields = []string{"uid", "name", "avatar", "link", "role", "createdAt",
	"lastActiveAt", "metadata", "tags", "deactivatedAt"}

// ownerDetails reads null or a groupOwnerDetails object that
// fields.ownerDetails accepts.
func (s *scanner) ownerDetails() (*cometchat.OwnerDetails, bool) {
	if s.null() {
		return nil, true
	}
	var d cometchat.OwnerDetails
	seen := 0
	if !s.eat('{') {
		return nil, false
	}
	for first := true; ; first = false {
		more, ok := s.more(first, '}')
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
		name, ok := s.key()
		if !ok {
			return nil, false
		}
		i := slices.Index(ownerDetailsFields, string(name))
		switch i {
		case 0:
			d.UID, ok = s.str()
		case 1:
			d.Name, ok = s.str()
		case 2:
			d.Avatar, ok = s.optStr()
		case 3:
			d.Link, ok = s.optStr()
		case 4:
			d.Role, ok = s.optStr()
		case 5:
			d.CreatedAt, ok = s.unixSeconds()
		case 6:
			d.LastActiveAt, ok = s.unixSeconds()
		case 7:
			d.Metadata, ok = s.metadata()
		case 8:
			d.Tags, ok = s.tags()
		case 9:
			d.DeactivatedAt, ok = s.unixSeconds()
		default:
			return nil, false
		}
		if !ok || seen&(1<<i) != 0 {
			return nil, false
		}
		seen |= 1 << i
	}
	// uid and name are required and must not be empty.
	if d.UID == "" || d.Name == "" {
		return nil, false
	}
	return &d, true
}

// scanner reads JSON strictly from b[i:]. Its methods report ok=false for
// anything they do not fully understand, valid JSON included; the caller
// then gives the input to the reference path.
type scanner struct {
	b []byte
	i int
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat consumes c after optional whitespace.
func (s *scanner) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// null consumes a JSON null.
func (s *scanner) null() bool {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// more is called after an object's '{' or an array's '[' (first) and after
// each of its elements: it reports whether another element follows,
// consuming the ',' between them, or consumes the closing byte.
func (s *scanner) more(first bool, closing byte) (more, ok bool) {
	if s.eat(closing) {
		return false, true
	}
	if first || s.eat(',') {
		return true, true
	}
	return false, false
}

// key reads an object key and its ':'. Only keys of printable ASCII
// without escapes are taken: every field name the API knows is one.
func (s *scanner) key() ([]byte, bool) {
	k, ok := s.plainStr()
	if !ok || !s.eat(':') {
		return nil, false
	}
	return k, true
}

// plainStr reads a JSON string of printable ASCII without escapes and
// returns the bytes between its quotes.
func (s *scanner) plainStr() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

// str reads a JSON string (not null) as json.Unmarshal decodes it.
func (s *scanner) str() (string, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i
	plain, ascii := true, true
	for s.i++; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			raw := s.b[start+1 : s.i-1]
			if plain && (ascii || utf8.Valid(raw)) {
				return string(raw), true
			}
			// Escapes and invalid UTF-8 are rare: let encoding/json decode
			// them, as the reference path does.
			var v string
			if json.Unmarshal(s.b[start:s.i], &v) != nil {
				return "", false
			}
			return v, true
		case c == '\\':
			plain = false
			s.i++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", false // not JSON
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// optStr reads a string or null, which the reference path reads as absent.
func (s *scanner) optStr() (string, bool) {
	if s.null() {
		return "", true
	}
	return s.str()
}

// groupType reads the type, sharing the constant strings of the valid
// types rather than allocating one per row.
func (s *scanner) groupType() (string, bool) {
	t, ok := s.plainStr()
	if !ok {
		return "", false
	}
	switch string(t) {
	case "public":
		return "public", true
	case "private":
		return "private", true
	case "password":
		return "password", true
	}
	return "", false // checkType refuses it
}

// unixSeconds reads what fields.unixSeconds accepts: null, or an integer
// of 1 to 10 digits, bare or as a string.
func (s *scanner) unixSeconds() (int64, bool) {
	if s.null() {
		return 0, true
	}
	if s.i < len(s.b) && s.b[s.i] == '"' {
		v, ok := s.str()
		return seconds(v, ok)
	}
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	// A leading zero is not JSON. A sign, a fraction or an exponent stops
	// the caller, which expects ',' or '}' after the digits.
	digits := s.b[start:s.i]
	return seconds(digits, len(digits) < 2 || digits[0] != '0')
}

// seconds parses 1 to 10 decimal digits.
func seconds[T string | []byte](digits T, ok bool) (int64, bool) {
	if !ok || len(digits) == 0 || len(digits) > maxTimeDigits {
		return 0, false
	}
	var n int64
	for i := range len(digits) {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// metadata reads null or an object, compacted as fields.metadata stores it.
func (s *scanner) metadata() (json.RawMessage, bool) {
	if s.null() {
		return nil, true
	}
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, false
	}
	start := s.i
	if !s.skipNested() {
		return nil, false
	}
	raw := s.b[start:s.i]
	// json.Compact checks that raw is valid JSON, so skipNested need not.
	// (Within maxMetadata bytes the nesting cannot come near encoding/json's
	// depth limit, which the reference path applies to the whole body.)
	buf := bytes.NewBuffer(make([]byte, 0, len(raw)))
	if json.Compact(buf, raw) != nil || buf.Len() > maxMetadata {
		return nil, false
	}
	return buf.Bytes(), true
}

// skipNested moves past the object or array at s.i by matching brackets
// outside strings, without checking what is between them.
func (s *scanner) skipNested() bool {
	depth := 0
	for ; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '"':
			for s.i++; s.i < len(s.b) && s.b[s.i] != '"'; s.i++ {
				if s.b[s.i] == '\\' {
					s.i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				s.i++
				return true
			}
		}
	}
	return false
}

// tags reads null or an array of strings that checkTags accepts; an empty
// array is nil, as the reference path stores it.
func (s *scanner) tags() ([]string, bool) {
	if s.null() {
		return nil, true
	}
	if !s.eat('[') {
		return nil, false
	}
	var tags []string
	for first := true; ; first = false {
		more, ok := s.more(first, ']')
		if !ok || (more && len(tags) == maxTags) {
			return nil, false
		}
		if !more {
			return tags, true
		}
		tag, ok := s.str()
		if !ok || utf8.RuneCountInString(tag) > maxTagLen {
			return nil, false
		}
		tags = append(tags, tag)
	}
}
