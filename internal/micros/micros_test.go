package micros

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/walcast/walcast/internal/jsonw"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"12.34", 12_340_000, true}, {"-0.5", -500_000, true}, {"7", 7_000_000, true},
		{"0.0000005", 1, true}, {"0.0000004", 0, true}, {"1.", 1_000_000, true},
		{"NaN", 0, false}, {"1e5", 0, false}, {"", 0, false}, {"-", 0, false},
		{"99999999999999999999", 0, false},
	} {
		got, ok := Parse([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAppendJSON(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0"}, {12_340_000, "12.34"}, {-500_000, "-0.5"}, {1, "0.000001"}, {-3_000_001, "-3.000001"},
		// More significant digits than a float64 holds: as JavaScript prints
		// the nearest float64 (what the amount reads as after Redis).
		{1_234_567_890_123_456_789, "1234567890123.4568"},
		{math.MinInt64, "-9223372036854.775"},
	} {
		if got := string(AppendJSON(nil, tc.in)); got != tc.want {
			t.Errorf("AppendJSON(%d) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzParse: any text either fails or gives an amount whose JSON is valid
// and already canonical (jsonw.AppendNumber leaves it unchanged).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"12.34", "-0.5", "7", "0.0000005", "1.", "NaN", "99999999999999999999", "+1.9999995"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Parse([]byte(s))
		if !ok {
			return
		}
		out := AppendJSON(nil, v)
		if !json.Valid(out) {
			t.Fatalf("AppendJSON(Parse(%q) = %d) = %s: not JSON", s, v, out)
		}
		if again, _ := jsonw.AppendNumber(nil, out); string(again) != string(out) {
			t.Fatalf("AppendJSON(%d) = %s is not canonical (%s)", v, out, again)
		}
	})
}
