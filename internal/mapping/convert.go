package mapping

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxUnix is the largest 10-digit UNIX time (2286-11-20T17:46:39Z).
const maxUnix = 9_999_999_999

// toText converts a column value to text. ok is false for NULL. Text arrives
// as []byte from the MySQL driver and as string from SQLite; numbers (an
// integer guid column, say) become their decimal text.
func toText(v any, f string) (s string, ok bool, err error) {
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case []byte:
		return string(x), true, nil
	case string:
		return x, true, nil
	case sql.RawBytes:
		return string(x), true, nil
	case int64:
		return strconv.FormatInt(x, 10), true, nil
	case int:
		return strconv.Itoa(x), true, nil
	case int32:
		return strconv.FormatInt(int64(x), 10), true, nil
	case uint64:
		return strconv.FormatUint(x, 10), true, nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true, nil
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), true, nil
	}
	return "", false, nameErr(f, "cannot use a value of type %T as text; select it as a string", v)
}

// toUnix converts a time column to UNIX seconds; 0 (field left out) for NULL,
// empty text and MySQL's zero date.
func toUnix(v any, f string, loc *time.Location) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case time.Time:
		return unixFromTime(x, f)
	case []byte:
		return unixFromText(x, f, loc)
	case string:
		return unixFromText(x, f, loc)
	case sql.RawBytes:
		return unixFromText([]byte(x), f, loc)
	case int64:
		return unixFromInt(x, f)
	case int:
		return unixFromInt(int64(x), f)
	case int32:
		return unixFromInt(int64(x), f)
	case uint64:
		if x > math.MaxInt64 {
			return 0, badInteger(f, strconv.FormatUint(x, 10))
		}
		return unixFromInt(int64(x), f)
	case uint32:
		return unixFromInt(int64(x), f)
	case float64:
		return unixFromFloat(x, f)
	case float32:
		return unixFromFloat(float64(x), f)
	}
	return 0, nameErr(f, "cannot convert a value of type %T to a UNIX time", v)
}

func unixFromTime(t time.Time, f string) (int64, error) {
	if t.IsZero() {
		// The MySQL driver's zero DATETIME (0000-00-00): "no value".
		return 0, nil
	}
	u := t.Unix()
	if u < 0 || u > maxUnix {
		return 0, outOfRange(f, t.UTC().Format(time.RFC3339))
	}
	return u, nil
}

// unixFromInt reads an integer as UNIX seconds (up to 10 digits),
// milliseconds (13 digits) or microseconds (16 digits). Other lengths are
// refused rather than guessed.
func unixFromInt(n int64, f string) (int64, error) {
	switch {
	case n < 0:
		return 0, nameErr(f, "%d is before 1970 (a negative UNIX time)", n)
	case n <= maxUnix:
		return n, nil
	case n >= 1e12 && n < 1e13:
		return n / 1e3, nil
	case n >= 1e15 && n < 1e16:
		return n / 1e6, nil
	}
	return 0, badInteger(f, strconv.FormatInt(n, 10))
}

func unixFromFloat(x float64, f string) (int64, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) || x != math.Trunc(x) || math.Abs(x) >= 1e18 {
		return 0, nameErr(f, "%v is not a whole number of seconds, milliseconds or microseconds", x)
	}
	return unixFromInt(int64(x), f)
}

func badInteger(f string, n string) *FieldError {
	return nameErr(f, "%s is not a UNIX time in seconds (up to 10 digits), milliseconds (13) or microseconds (16)", n)
}

func outOfRange(f string, shown string) *FieldError {
	return nameErr(f, "%s is outside 1970-01-01 to 2286-11-20, the range of a 10-digit UNIX time", shown)
}

// text is a column value holding text: []byte from the MySQL driver, string
// from SQLite. Parsers take it generically to avoid copying []byte to string.
type text interface{ ~string | ~[]byte }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unixFromText reads digit-only text as an integer UNIX time, and anything
// else as a DATETIME/TIMESTAMP ("2023-01-11 07:16:59[.123456]", in loc) or
// RFC 3339 text.
func unixFromText[T text](s T, f string, loc *time.Location) (int64, error) {
	start, end := 0, len(s)
	for start < end && isSpace(s[start]) {
		start++
	}
	for end > start && isSpace(s[end-1]) {
		end--
	}
	if start == end {
		return 0, nil
	}
	digits := true
	for i := start; i < end; i++ {
		if s[i] < '0' || s[i] > '9' {
			digits = false
			break
		}
	}
	if digits {
		if end-start > 18 {
			return 0, badInteger(f, string(s)[start:end])
		}
		var n int64
		for i := start; i < end; i++ {
			n = n*10 + int64(s[i]-'0')
		}
		return unixFromInt(n, f)
	}
	u, zero, ok := parseDatetime(s, start, end, loc)
	switch {
	case !ok:
		return 0, nameErr(f, "cannot convert %q to a UNIX time: want a DATETIME or TIMESTAMP (2006-01-02 15:04:05), RFC 3339 text or an integer",
			truncate(string(s)[start:end], 40))
	case zero:
		return 0, nil
	case u < 0 || u > maxUnix:
		return 0, outOfRange(f, strconv.Quote(string(s)[start:end]))
	}
	return u, nil
}

// parseDatetime parses s[i:end] as YYYY-MM-DD, optionally followed by
// [ T]hh:mm:ss[.fraction] and a zone (Z, ±hh, ±hhmm, ±hh:mm). Without a zone
// the time is read in loc. zero reports MySQL's zero date 0000-00-00.
func parseDatetime[T text](s T, i, end int, loc *time.Location) (unix int64, zero, ok bool) {
	num := func(n int) int {
		if i+n > end {
			return -1
		}
		v := 0
		for k := 0; k < n; k++ {
			c := s[i+k]
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		i += n
		return v
	}
	sep := func(c byte) bool {
		if i < end && s[i] == c {
			i++
			return true
		}
		return false
	}
	year := num(4)
	if year < 0 || !sep('-') {
		return 0, false, false
	}
	month := num(2)
	if month < 0 || !sep('-') {
		return 0, false, false
	}
	day := num(2)
	if day < 0 {
		return 0, false, false
	}
	hour, minute, second := 0, 0, 0
	if i < end && (s[i] == ' ' || s[i] == 'T' || s[i] == 't') {
		i++
		if hour = num(2); hour < 0 || !sep(':') {
			return 0, false, false
		}
		if minute = num(2); minute < 0 || !sep(':') {
			return 0, false, false
		}
		if second = num(2); second < 0 {
			return 0, false, false
		}
		if sep('.') {
			n := 0
			for i < end && s[i] >= '0' && s[i] <= '9' {
				i++
				n++
			}
			if n == 0 || n > 9 {
				return 0, false, false
			}
		}
	}
	if year == 0 && month == 0 && day == 0 {
		return 0, true, i == end || s[i] == 'Z' || s[i] == '+' || s[i] == '-'
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59 {
		return 0, false, false
	}
	if i == end {
		return time.Date(year, time.Month(month), day, hour, minute, second, 0, loc).Unix(), false, true
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		sign := 1
		if s[i] == '-' {
			sign = -1
		}
		i++
		h := num(2)
		m := 0
		if i < end {
			sep(':')
			m = num(2)
		}
		if h < 0 || h > 23 || m < 0 || m > 59 {
			return 0, false, false
		}
		offset = sign * (h*3600 + m*60)
	default:
		return 0, false, false
	}
	if i != end {
		return 0, false, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, 0, time.UTC)
	return t.Unix() - int64(offset), false, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// toMetadata converts a JSON or text column holding a JSON object into its
// compact form; nil (field left out) for NULL, empty text and JSON null.
func toMetadata(v any, f string) (json.RawMessage, error) {
	var src []byte
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		src = x
	case string:
		src = []byte(x)
	case sql.RawBytes:
		src = x
	default:
		return nil, nameErr(f, "must be a JSON object, got a value of type %T", v)
	}
	src = bytes.TrimSpace(src)
	if len(src) == 0 || string(src) == "null" {
		return nil, nil
	}
	// Compact validates as it copies; the copy is needed anyway because the
	// driver may reuse src for the next row.
	var buf bytes.Buffer
	buf.Grow(len(src))
	if err := json.Compact(&buf, src); err != nil {
		return nil, nameErr(f, "must be a JSON object, got invalid JSON: %v", err)
	}
	out := buf.Bytes()
	if out[0] != '{' {
		return nil, nameErr(f, "must be a JSON object, got %s", jsonKind(out[0]))
	}
	if len(out) > maxMetadata {
		return nil, nameErr(f, "must be at most %d bytes as compact JSON, got %d", maxMetadata, len(out))
	}
	return out, nil
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	}
	return "a JSON number"
}

// toTags converts a JSON array of strings, a PostgreSQL array literal (a
// text[] column as the driver returns it: {a,"b c"}) or a comma-separated
// list into tags: trimmed, empty ones dropped; nil (field left out) when none remain.
func toTags(v any, f string) ([]string, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		s = string(x)
	case string:
		s = x
	case sql.RawBytes:
		s = string(x)
	default:
		return nil, nameErr(f, "must be a JSON array of strings or a comma-separated list, got a value of type %T", v)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var tags []string
	switch {
	case s[0] == '[':
		var err error
		if tags, err = jsonStrings(s, f); err != nil {
			return nil, err
		}
	case s[0] == '{' && s[len(s)-1] == '}':
		var err error
		if tags, err = pgArray(s, f); err != nil {
			return nil, err
		}
	default:
		tags = commaList(s)
	}
	if len(tags) > maxTags {
		return nil, nameErr(f, "must be at most %d tags, got %d", maxTags, len(tags))
	}
	for i, t := range tags {
		if n := runeCount(t, maxTag); n > maxTag {
			return nil, nameErr(f, "tag %d must be at most %d characters, got %d", i+1, maxTag, n)
		}
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// commaList splits s at commas; the tags share s's memory.
func commaList(s string) []string {
	tags := make([]string, 0, strings.Count(s, ",")+1)
	for s != "" {
		t := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			t, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// jsonStrings parses a JSON array of strings without reflection; strings
// without escapes share s's memory.
func jsonStrings(s string, f string) ([]string, error) {
	invalid := func() error {
		return nameErr(f, "must be a JSON array of strings or a comma-separated list, got invalid JSON")
	}
	skip := func(i int) int {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		return i
	}
	var tags []string
	i := skip(1)
	if i < len(s) && s[i] == ']' {
		i++
	} else {
		for n := 1; ; n++ {
			if i >= len(s) {
				return nil, invalid()
			}
			if s[i] != '"' {
				return nil, nameErr(f, "must be a JSON array of strings, element %d is not a string", n)
			}
			j, escaped := i+1, false
			for j < len(s) && s[j] != '"' {
				if s[j] < 0x20 {
					return nil, invalid()
				}
				if s[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, invalid()
			}
			t := s[i+1 : j]
			if escaped {
				// Rare: let encoding/json undo the escapes.
				if err := json.Unmarshal([]byte(s[i:j+1]), &t); err != nil {
					return nil, invalid()
				}
			}
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
			i = skip(j + 1)
			if i < len(s) && s[i] == ',' {
				i = skip(i + 1)
				continue
			}
			if i < len(s) && s[i] == ']' {
				i++
				break
			}
			return nil, invalid()
		}
	}
	if skip(i) != len(s) {
		return nil, invalid()
	}
	return tags, nil
}

// pgArray parses a one-dimensional PostgreSQL array literal, {a,"b c",NULL}:
// elements trimmed, quoted ones unescaped, NULL elements dropped.
func pgArray(s string, f string) ([]string, error) {
	invalid := func(why string) error {
		return nameErr(f, "must be a JSON array of strings, a PostgreSQL text[] or a comma-separated list, got an array literal %s", why)
	}
	body := s[1 : len(s)-1]
	var tags []string
	for i := 0; i < len(body); {
		for i < len(body) && isSpace(body[i]) {
			i++
		}
		var elem strings.Builder
		quoted := i < len(body) && body[i] == '"'
		if quoted {
			for i++; ; i++ {
				if i >= len(body) {
					return nil, invalid("with an unterminated quote")
				}
				if body[i] == '\\' && i+1 < len(body) {
					i++
				} else if body[i] == '"' {
					i++
					break
				}
				elem.WriteByte(body[i])
			}
		} else {
			for ; i < len(body) && body[i] != ','; i++ {
				if body[i] == '{' || body[i] == '"' {
					return nil, invalid("that is nested or badly quoted")
				}
				elem.WriteByte(body[i])
			}
		}
		for i < len(body) && isSpace(body[i]) {
			i++
		}
		if i < len(body) && body[i] != ',' {
			return nil, invalid("with text after a quoted element")
		}
		i++
		t := strings.TrimSpace(elem.String())
		if t != "" && (quoted || !strings.EqualFold(t, "NULL")) {
			tags = append(tags, t)
		}
	}
	return tags, nil
}
