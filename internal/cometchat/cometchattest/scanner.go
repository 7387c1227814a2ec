package cometchattest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

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

// object reads an object whose members field reads: field is called with
// each member's name, s at its value, and returns the member's bit (0 for a
// name it does not know) and whether it read the value. object returns the
// bits of the members read, and gives up on an unknown member or one sent
// twice (the reference path keeps the last one).
func (s *scanner) object(field func(name []byte) (bit int, ok bool)) (seen int, ok bool) {
	if !s.eat('{') {
		return 0, false
	}
	for first := true; ; first = false {
		more, ok := s.more(first, '}')
		if !ok {
			return 0, false
		}
		if !more {
			return seen, true
		}
		name, ok := s.key()
		if !ok {
			return 0, false
		}
		bit, ok := field(name)
		if !ok || bit == 0 || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
	}
}

// oneOf reads a string without escapes that is one of values, returning
// that constant rather than allocating a string per row.
func (s *scanner) oneOf(values ...string) (string, bool) {
	v, ok := s.plainStr()
	if !ok {
		return "", false
	}
	for _, want := range values {
		if string(v) == want {
			return want, true
		}
	}
	return "", false
}

// notTrue reads what fields.boolean reads as false: null, false or
// "false". True is refused: every true the API takes is a row error here.
func (s *scanner) notTrue() bool {
	if s.null() {
		return true
	}
	for _, lit := range []string{"false", `"false"`} {
		if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
			s.i += len(lit)
			return true
		}
	}
	return false
}
