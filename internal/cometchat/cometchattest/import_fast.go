package cometchattest

import (
	"strings"

	"github.com/cometsync/cometsync/internal/cometchat"
)

// The fast path of the data imports: POST /data_import/groups, /users and
// /members.
//
// Why it exists: the throughput benchmark runs the emulator on the same cores
// as cometsync, so every microsecond the emulator spends on a row is charged
// to cometsync's figures. The reference path (parseRows and an
// importKind's decode) decodes each row into a map and each field with its
// own json.Unmarshal: about 40 µs of CPU per row in BenchmarkImport50, where
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
// wrong type, a broken constraint, a repeated key, too many rows) makes it
// give up, and the reference path decodes the request or the row again from
// the start. Every error message therefore comes from the reference path.
// TestImportFastPathMatchesReference, TestUserImportFastPathMatchesReference,
// TestMemberImportFastPathMatchesReference and their fuzz targets hold the
// two paths to the same answers.

// parseImportFast reads a request the reference path would accept, with
// every row valid, into its rows already decoded. ok is false when it
// cannot vouch for the request.
func parseImportFast[T any](e *Emulator, body []byte, k importKind[T]) (rows []importRow[T], ok bool) {
	s := scanner{b: body}
	if !s.eat('{') {
		return nil, false
	}
	if key, ok := s.key(); !ok || string(key) != k.wrapper || !s.eat('{') {
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
		item, ok := k.scan(&s, key)
		if !ok {
			return nil, false
		}
		rows = append(rows, importRow[T]{key: key, raw: body[start:s.i], item: item, decoded: true})
	}
	// One member, the wrapper, and nothing after the body.
	if !s.eat('}') || !s.end() || len(rows) == 0 {
		return nil, false
	}
	// As the reference path, a key may appear once, in any case.
	seen := make(map[string]struct{}, len(rows))
	for _, row := range rows {
		key := strings.ToLower(row.key)
		if _, dup := seen[key]; dup {
			return nil, false
		}
		seen[key] = struct{}{}
	}
	return rows, true
}

// decodeFast decodes one row that the reference path has already split
// off, when k.decode would accept it.
func (k importKind[T]) decodeFast(row importRow[T]) (T, bool) {
	s := scanner{b: row.raw}
	item, ok := k.scan(&s, row.key)
	return item, ok && s.end()
}

// Bits of the fields of a group import row, in importFields order.
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
	var guid []byte
	// guid, name and type are required, so a null is an error and str
	// refuses it; the reference path reads null as absent for the optional
	// fields.
	seen, ok := s.object(func(name []byte) (bit int, ok bool) {
		switch string(name) {
		case "guid":
			guid, ok = s.plainStr()
			return bitGUID, ok
		case "name":
			g.Name, ok = s.str()
			return bitName, ok
		case "type":
			g.Type, ok = s.oneOf("public", "private", "password") // checkType refuses any other
			return bitType, ok
		case "password":
			g.Password, ok = s.optStr()
			return bitPassword, ok
		case "icon":
			g.Icon, ok = s.optStr()
			return bitIcon, ok
		case "owner":
			g.Owner, ok = s.optStr()
			return bitOwner, ok
		case "createdAt":
			g.CreatedAt, ok = s.unixSeconds()
			return bitCreatedAt, ok
		case "metadata":
			g.Metadata, ok = s.metadata()
			return bitMetadata, ok
		case "tags":
			g.Tags, ok = s.tags()
			return bitTags, ok
		case "groupOwnerDetails":
			g.GroupOwnerDetails, ok = s.ownerDetails()
			return bitOwnerDetails, ok
		}
		return 0, false
	})
	const required = bitGUID | bitName | bitType
	// The guid must equal the key byte for byte; the stored guid is the
	// key lowercased, which is the key itself when it is lowercase already.
	if !ok || seen&required != required || string(guid) != key {
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

// ownerDetails reads null or a groupOwnerDetails object that
// fields.ownerDetails accepts: a user object whose uid and name are not
// empty.
func (s *scanner) ownerDetails() (*cometchat.OwnerDetails, bool) {
	if s.null() {
		return nil, true
	}
	u, uid, _, ok := s.user()
	if !ok || len(uid) == 0 || u.Name == "" {
		return nil, false
	}
	return &cometchat.OwnerDetails{UID: string(uid), Name: u.Name, Avatar: u.Avatar, Link: u.Link, Role: u.Role,
		CreatedAt: u.CreatedAt, LastActiveAt: u.LastActiveAt, Metadata: u.Metadata, Tags: u.Tags,
		DeactivatedAt: u.DeactivatedAt}, true
}
