package mapping

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// The conversions every entity shares: ids, required names, and the
// optional fields a binding reads by field.

// text maps an optional text field of at most max characters; "" when the
// column is absent, NULL or empty.
func (b *binding) text(values []any, f field, max int) (string, error) {
	i := b.index[f]
	if i < 0 {
		return "", nil
	}
	s, _, err := toText(values[i], b.names[f])
	if err != nil {
		return "", err
	}
	if n := runeCount(s, max); n > max {
		return "", nameErr(b.names[f], "must be at most %d characters, got %d", max, n)
	}
	return s, nil
}

func (b *binding) time(values []any, f field) (int64, error) {
	if i := b.index[f]; i >= 0 {
		return toUnix(values[i], b.names[f], b.loc)
	}
	return 0, nil
}

func (b *binding) metadata(values []any, f field) (json.RawMessage, error) {
	if i := b.index[f]; i >= 0 {
		return toMetadata(values[i], b.names[f])
	}
	return nil, nil
}

func (b *binding) tags(values []any, f field) ([]string, error) {
	if i := b.index[f]; i >= 0 {
		return toTags(values[i], b.names[f])
	}
	return nil, nil
}

// checkLen refuses a row whose length does not match the columns: a
// programming error, not a row error.
func (b *binding) checkLen(values []any) error {
	if len(values) != len(b.columns) {
		return fmt.Errorf("map row: got %d values for %d columns", len(values), len(b.columns))
	}
	return nil
}

// mapID maps a required CometChat id (a guid or a uid) named name, of an
// object what ("group", "user"): trimmed and lowercased as CometChat
// lowercases ids, 1 to 100 characters of a-z, 0-9, - and _.
func mapID(v any, name, what string) (string, error) {
	s, ok, err := toText(v, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", nameErr(name, "is NULL; every %s needs a %s", what, name)
	}
	// Lowercasing here keeps the local state keyed as CometChat keys its
	// objects. ToLower returns s itself when there is nothing to change.
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 0 {
		return "", nameErr(name, "must be 1 to %d characters, got 0", maxGUID)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return "", nameErr(name, "may only contain a-z, 0-9, - and _, got %q", truncate(s, 40))
		}
	}
	// All ASCII from here: bytes are characters.
	if len(s) > maxGUID {
		return "", nameErr(name, "must be 1 to %d characters, got %d", maxGUID, len(s))
	}
	return s, nil
}

// mapRequiredText maps a required text field of 1 to max characters.
func mapRequiredText(v any, name, what string, max int) (string, error) {
	s, ok, err := toText(v, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", nameErr(name, "is NULL; every %s needs a %s", what, name)
	}
	if n := runeCount(s, max); n == 0 || n > max {
		return "", nameErr(name, "must be 1 to %d characters, got %d", max, n)
	}
	return s, nil
}

// fingerprint is a hex SHA-256 over the mapping version, the columns, the
// time zone for zone-less times, the query and extra.
func (b *binding) fingerprint(version, query string, extra []string) string {
	h := sha256.New()
	// Length-prefixed parts: no two different inputs share a byte stream.
	part := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	part(version)
	part(fmt.Sprint(len(b.columns)))
	for _, c := range b.columns {
		part(c)
	}
	part(b.loc.String())
	part(query)
	for _, e := range extra {
		part(e)
	}
	return hex.EncodeToString(h.Sum(nil))
}
