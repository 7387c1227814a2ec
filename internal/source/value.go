package source

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the type of a cursor or key Value.
type Kind int

// The kinds of Value. KindNone is the zero Value: no value (SQL NULL).
const (
	KindNone Kind = iota
	KindInt
	KindText
	KindTime
)

var kindNames = [...]string{KindNone: "none", KindInt: "int", KindText: "text", KindTime: "time"}

// String returns the kind's name as it appears in JSON: none, int, text or
// time.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Value is a cursor or key value exactly as the database returned it. It is
// passed back to the database unchanged as a query argument, and compared
// there: no local time arithmetic, no time zone conversion, full precision.
// A DATETIME read with parseTime=false is KindText ("2024-05-01
// 10:00:00.123456"); read with parseTime=true it is KindTime.
type Value struct {
	Kind Kind
	Int  int64
	Text string
	Time time.Time
}

// ValueOf makes a Value from a value as a database/sql driver returned it:
// integers are KindInt, []byte and string are KindText (the bytes are
// copied: drivers reuse their buffers), time.Time is KindTime. NULL and other
// types (floats, for one) are errors: they cannot be a cursor or a key.
func ValueOf(x any) (Value, error) {
	switch v := x.(type) {
	case int64:
		return Value{Kind: KindInt, Int: v}, nil
	case int:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case int32:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case int16:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case int8:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case uint64:
		if v > math.MaxInt64 {
			return Value{}, fmt.Errorf("integer %d is larger than the largest supported cursor or key (%d)", v, int64(math.MaxInt64))
		}
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case uint32:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case uint16:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case uint8:
		return Value{Kind: KindInt, Int: int64(v)}, nil
	case []byte:
		return Value{Kind: KindText, Text: string(v)}, nil // string() copies
	case string:
		return Value{Kind: KindText, Text: v}, nil
	case time.Time:
		return Value{Kind: KindTime, Time: v}, nil
	case nil:
		return Value{}, errors.New("value is NULL")
	default:
		return Value{}, fmt.Errorf("values of type %T cannot be a cursor or a key (want an integer, text or a date and time)", x)
	}
}

// Arg returns the value as a query argument: int64, string or time.Time,
// and nil for KindNone (SQL NULL).
func (v Value) Arg() any {
	switch v.Kind {
	case KindInt:
		return v.Int
	case KindText:
		return v.Text
	case KindTime:
		return v.Time
	default:
		return nil
	}
}

// String returns the value for people and for keys in the state store: an
// integer in decimal, text as is, a time in RFC 3339 with nanoseconds, and
// "" for KindNone.
func (v Value) String() string {
	switch v.Kind {
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindText:
		return v.Text
	case KindTime:
		return v.Time.Format(time.RFC3339Nano)
	default:
		return ""
	}
}

// IsZero reports whether v is KindNone.
func (v Value) IsZero() bool { return v.Kind == KindNone }

// equal reports whether v and w are the same value of the same kind.
func (v Value) equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindInt:
		return v.Int == w.Int
	case KindText:
		return v.Text == w.Text
	case KindTime:
		return v.Time.Equal(w.Time)
	default:
		return true
	}
}

// valueJSON is Value's JSON form. Every value is a string so that no JSON
// reader rounds a large integer through a float. Text that is not valid UTF-8
// (a binary key) goes in Base64 instead, since JSON would replace its bytes.
type valueJSON struct {
	Kind   string          `json:"kind"`
	Value  json.RawMessage `json:"value,omitempty"`
	Base64 string          `json:"base64,omitempty"`
}

// MarshalJSON encodes v as {"kind":"time","value":"2024-05-01T10:00:00.123456Z"}:
// kind none, int, text or time; an int as a decimal string; a time in RFC 3339
// with nanoseconds and its UTC offset. UnmarshalJSON restores it exactly.
func (v Value) MarshalJSON() ([]byte, error) {
	out := valueJSON{Kind: v.Kind.String()}
	var s string
	switch v.Kind {
	case KindNone:
		return json.Marshal(out)
	case KindInt:
		s = strconv.FormatInt(v.Int, 10)
	case KindText:
		if !utf8.ValidString(v.Text) {
			out.Base64 = base64.StdEncoding.EncodeToString([]byte(v.Text))
			return json.Marshal(out)
		}
		s = v.Text
	case KindTime:
		if y := v.Time.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("time %s: year outside 0000-9999", v.Time)
		}
		s = v.Time.Format(time.RFC3339Nano)
	default:
		return nil, fmt.Errorf("value of unknown kind %d", int(v.Kind))
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	out.Value = raw
	return json.Marshal(out)
}

// UnmarshalJSON decodes the form MarshalJSON writes. An int may also be a
// JSON number.
func (v *Value) UnmarshalJSON(data []byte) error {
	var in valueJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	var s string
	if len(in.Value) > 0 {
		if in.Kind == "int" && !strings.HasPrefix(string(in.Value), `"`) {
			s = string(in.Value) // a JSON number
		} else if err := json.Unmarshal(in.Value, &s); err != nil {
			return fmt.Errorf("value of kind %q: %w", in.Kind, err)
		}
	}
	switch in.Kind {
	case "none":
		*v = Value{}
	case "int":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("value of kind int: %w", err)
		}
		*v = Value{Kind: KindInt, Int: n}
	case "text":
		if in.Base64 != "" {
			b, err := base64.StdEncoding.DecodeString(in.Base64)
			if err != nil {
				return fmt.Errorf("value of kind text: %w", err)
			}
			s = string(b)
		}
		*v = Value{Kind: KindText, Text: s}
	case "time":
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("value of kind time: %w", err)
		}
		*v = Value{Kind: KindTime, Time: t}
	default:
		return fmt.Errorf("value of unknown kind %q (want none, int, text or time)", in.Kind)
	}
	return nil
}

// startLayouts are the date-time forms ParseStart accepts without a zone.
var startLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// startFormat is the one text form ParseStart produces. Six fractional
// digits, always: MariaDB compares it to a DATETIME/TIMESTAMP as a date and
// time, and SQLite compares it to 'YYYY-MM-DD HH:MM:SS.SSS' text so that a
// stored value equal to the start sorts before it (the start is exclusive).
const startFormat = "2006-01-02 15:04:05.000000"

// ParseStart parses the configured cursor start. For an integer cursor it
// must be an integer (unix time in the cursor's unit, or any integer the
// column holds). Otherwise it is a date and time, and the result is always
// KindText in the form "2006-01-02 15:04:05.000000" (not KindTime: SQLite
// compares text, and a time.Time argument would be sent in the driver's own
// format): RFC 3339 with a zone ("2024-05-01T10:00:00+02:00") is converted to
// UTC; a value without a zone ("2024-05-01 10:00:00", "2024-05-01") is kept
// as written, as the column's own wall-clock time.
//
// As a Position{Cursor: start} (with no Key) the start is exclusive: reading
// begins with rows whose cursor is after it.
func ParseStart(s string, intCursor bool) (Value, error) {
	s = strings.TrimSpace(s)
	if intCursor {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("cursor start %q: the cursor column is an integer, so the start must be an integer", s)
		}
		return Value{Kind: KindInt, Int: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Value{Kind: KindText, Text: t.UTC().Format(startFormat)}, nil
	}
	for _, layout := range startLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return Value{Kind: KindText, Text: t.Format(startFormat)}, nil
		}
	}
	return Value{}, fmt.Errorf(`cursor start %q: want RFC 3339 ("2024-05-01T10:00:00Z") or "2024-05-01 10:00:00"`, s)
}

// Behind is how far the cursor value from lies before to, both as read
// from the database (the checkpoint and the clock): a duration for date-time
// cursors, and for integer cursors the difference in unit ("seconds",
// "milliseconds" or "microseconds"; anything else is read as seconds). ok
// is false when the two cannot be compared.
func Behind(from, to Value, unit string) (d time.Duration, ok bool) {
	if from.Kind == KindInt && to.Kind == KindInt {
		per, known := perSecond[unit]
		if !known {
			per = 1
		}
		return time.Duration(to.Int-from.Int) * (time.Second / time.Duration(per)), true
	}
	f, ok1 := from.asTime()
	t, ok2 := to.asTime()
	if !ok1 || !ok2 {
		return 0, false
	}
	return t.Sub(f), true
}

// asTime reads a date-time cursor value; text without a zone is read as
// UTC, which is right for a difference of two values in the same zone.
func (v Value) asTime() (time.Time, bool) {
	switch v.Kind {
	case KindTime:
		return v.Time, true
	case KindText:
		for _, layout := range append([]string{time.RFC3339Nano}, startLayouts...) {
			if t, err := time.Parse(layout, v.Text); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}
