package source

import (
	"encoding/json"
	"testing"
	"time"
)

// A checkpoint survives the state store bit for bit: the next pass sends the
// database exactly the value it returned.
func TestValueJSONRoundTrip(t *testing.T) {
	kolkata := time.FixedZone("IST", 5*3600+30*60)
	for _, tc := range []struct {
		name string
		v    Value
		json string
	}{
		{"none", Value{}, `{"kind":"none"}`},
		{"int", Value{Kind: KindInt, Int: 1714557600123}, `{"kind":"int","value":"1714557600123"}`},
		{"int max", Value{Kind: KindInt, Int: 1<<63 - 1}, `{"kind":"int","value":"9223372036854775807"}`},
		{"int negative", Value{Kind: KindInt, Int: -42}, `{"kind":"int","value":"-42"}`},
		{"text datetime", Value{Kind: KindText, Text: "2024-05-01 10:00:00.000100"}, `{"kind":"text","value":"2024-05-01 10:00:00.000100"}`},
		{"text empty", Value{Kind: KindText, Text: ""}, `{"kind":"text","value":""}`},
		{"text unicode", Value{Kind: KindText, Text: "grüße ✓ \"quoted\""}, `{"kind":"text","value":"grüße ✓ \"quoted\""}`},
		{"text binary", Value{Kind: KindText, Text: "\xff\x00\xfe"}, `{"kind":"text","base64":"/wD+"}`},
		{"time utc nanos", Value{Kind: KindTime, Time: time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC)}, `{"kind":"time","value":"2024-05-01T10:00:00.123456789Z"}`},
		{"time offset", Value{Kind: KindTime, Time: time.Date(2024, 5, 1, 10, 0, 0, 100, kolkata)}, `{"kind":"time","value":"2024-05-01T10:00:00.0000001+05:30"}`},
		{"time whole second", Value{Kind: KindTime, Time: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}, `{"kind":"time","value":"2024-05-01T10:00:00Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.json {
				t.Errorf("Marshal = %s, want %s", b, tc.json)
			}
			var back Value
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.Kind != tc.v.Kind || back.Int != tc.v.Int || back.Text != tc.v.Text || !back.Time.Equal(tc.v.Time) {
				t.Errorf("round trip = %#v, want %#v", back, tc.v)
			}
			_, wantOffset := tc.v.Time.Zone()
			if _, offset := back.Time.Zone(); offset != wantOffset {
				t.Errorf("round trip offset = %d, want %d", offset, wantOffset)
			}
			if back.String() != tc.v.String() {
				t.Errorf("round trip String() = %q, want %q", back.String(), tc.v.String())
			}
		})
	}

	var pos Position
	if err := json.Unmarshal([]byte(`{"cursor":{"kind":"int","value":17},"key":{"kind":"text","value":"g-1"}}`), &pos); err != nil {
		t.Fatal(err)
	}
	if pos.Cursor != (Value{Kind: KindInt, Int: 17}) || pos.Key != (Value{Kind: KindText, Text: "g-1"}) {
		t.Errorf("Position = %+v; a JSON number is an int too", pos)
	}
	for _, bad := range []string{`{"kind":"float","value":"1.5"}`, `{"kind":"int","value":"1.5"}`, `{"kind":"time","value":"yesterday"}`} {
		if err := json.Unmarshal([]byte(bad), new(Value)); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want an error", bad)
		}
	}
}

func TestValueOf(t *testing.T) {
	buf := []byte("g-123")
	v, err := ValueOf(buf)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the driver reuses its buffer for the next row
	if v != (Value{Kind: KindText, Text: "g-123"}) {
		t.Errorf("ValueOf([]byte) = %#v after the buffer changed; want its own copy of g-123", v)
	}

	now := time.Now()
	for _, tc := range []struct {
		in   any
		want Value
	}{
		{int64(-5), Value{Kind: KindInt, Int: -5}},
		{uint64(1 << 40), Value{Kind: KindInt, Int: 1 << 40}},
		{7, Value{Kind: KindInt, Int: 7}},
		{"2024-05-01", Value{Kind: KindText, Text: "2024-05-01"}},
		{now, Value{Kind: KindTime, Time: now}},
	} {
		if got, err := ValueOf(tc.in); err != nil || got != tc.want {
			t.Errorf("ValueOf(%#v) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []any{nil, 1.5, uint64(1 << 63)} {
		if got, err := ValueOf(in); err == nil {
			t.Errorf("ValueOf(%#v) = %#v, want an error", in, got)
		}
	}
	if got := (Value{Kind: KindTime, Time: time.Date(2024, 5, 1, 10, 0, 0, 5000, time.UTC)}).String(); got != "2024-05-01T10:00:00.000005Z" {
		t.Errorf("String() = %q, want RFC 3339 with the fraction", got)
	}
}

func TestParseStart(t *testing.T) {
	for _, tc := range []struct {
		in      string
		intCur  bool
		want    Value
		wantErr string
	}{
		{in: "2024-05-01T12:00:00+02:00", want: Value{Kind: KindText, Text: "2024-05-01 10:00:00.000000"}},
		{in: "2024-05-01T10:00:00.1234567Z", want: Value{Kind: KindText, Text: "2024-05-01 10:00:00.123456"}},
		{in: "2024-05-01 10:00:00.5", want: Value{Kind: KindText, Text: "2024-05-01 10:00:00.500000"}},
		{in: "2024-05-01T10:00", want: Value{Kind: KindText, Text: "2024-05-01 10:00:00.000000"}},
		{in: " 2024-05-01 ", want: Value{Kind: KindText, Text: "2024-05-01 00:00:00.000000"}},
		{in: "1714557600000", intCur: true, want: Value{Kind: KindInt, Int: 1714557600000}},
		{in: "yesterday", wantErr: `cursor start "yesterday": want RFC 3339 ("2024-05-01T10:00:00Z") or "2024-05-01 10:00:00"`},
		{in: "2024-05-01", intCur: true, wantErr: `cursor start "2024-05-01": the cursor column is an integer, so the start must be an integer`},
	} {
		got, err := ParseStart(tc.in, tc.intCur)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseStart(%q) error = %v, want %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseStart(%q, %t) = %#v, %v; want %#v", tc.in, tc.intCur, got, err, tc.want)
		}
	}
}
