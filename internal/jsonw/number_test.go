package jsonw_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/walcast/walcast/internal/jsonw"
)

// numberCases are JSON number literals and their canonical form.
var numberCases = []struct{ in, want string }{
	{"0", "0"}, {"-0", "0"}, {"-0.0", "0"}, {"7", "7"}, {"-12", "-12"},
	{"12.50", "12.5"}, {"1.0", "1"}, {"100.000", "100"}, {"1e2", "100"}, {"1E+2", "100"},
	{"1e21", "1e+21"}, {"1e+21", "1e+21"}, {"123456789012345680000", "123456789012345680000"},
	{"0.000001", "0.000001"}, {"1e-6", "0.000001"}, {"1e-7", "1e-7"}, {"1e-05", "0.00001"},
	{"1.5e300", "1.5e+300"}, {"-2.5E-10", "-2.5e-10"}, {"0.1", "0.1"}, {"3.14159265358979323846", "3.141592653589793"},
	{"1e400", "null"}, {"-1e400", "null"}, {"1e-400", "0"},
	// Integers that fit an int64 keep every digit (a Node peer rounds those
	// above 2^53 to a float64); larger ones are floats.
	{"9007199254740993", "9007199254740993"}, {"9223372036854775807", "9223372036854775807"},
	{"-9223372036854775808", "-9223372036854775808"}, {"9223372036854775808", "9223372036854776000"},
	{"12345678901234567890123", "1.2345678901234568e+22"},
}

func TestAppendNumber(t *testing.T) {
	for _, tc := range numberCases {
		got, ok := jsonw.AppendNumber(nil, tc.in)
		if !ok || string(got) != tc.want {
			t.Errorf("AppendNumber(%s) = %s, %v, want %s", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "-", "01", "+1", "1.", ".5", "1e", "1e+", "0x10", "1 ", "Infinity", "NaN", "1_000"} {
		if got, ok := jsonw.AppendNumber(nil, bad); ok {
			t.Errorf("AppendNumber(%q) = %s, true, want false", bad, got)
		}
	}
}

func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not installed")
		}
		t.Skip("node not installed")
	}
}

// TestAppendNumber_MatchesJSONStringify: for every case whose value a
// float64 holds exactly, the canonical form is JSON.stringify(JSON.parse(x)).
func TestAppendNumber_MatchesJSONStringify(t *testing.T) {
	needNode(t)
	var lits []string
	for _, tc := range numberCases {
		if n, _, _ := jsonw.ScanNumber(tc.in); n.IsInt && (n.Int > 1<<53 || n.Int < -(1<<53)) {
			continue
		}
		lits = append(lits, tc.in)
	}
	out := node(t, `for (const s of JSON.parse(process.argv[1])) console.log(JSON.stringify(JSON.parse(s)))`, lits)
	for i, lit := range lits {
		if got, _ := jsonw.AppendNumber(nil, lit); string(got) != out[i] {
			t.Errorf("AppendNumber(%s) = %s, JSON.stringify(JSON.parse) = %s", lit, got, out[i])
		}
	}
}

// TestAppendFloat_MatchesJavaScript compares AppendFloat with JavaScript's
// number formatting for random float64 bit patterns, powers of ten around
// the notation switches, and integers near 2^53.
func TestAppendFloat_MatchesJavaScript(t *testing.T) {
	needNode(t)
	r := rand.New(rand.NewPCG(1, 2))
	var fs []float64
	for range 3000 {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		fs = append(fs, f)
	}
	for e := -330; e <= 310; e++ {
		fs = append(fs, math.Pow(10, float64(e)), 1.5*math.Pow(10, float64(e)), -math.Pow(10, float64(e)))
	}
	for i := range 20 {
		fs = append(fs, float64(1<<53+i), r.Float64(), r.NormFloat64()*1e6, float64(r.Int64N(1e12))/100)
	}
	fs = append(fs, math.MaxFloat64, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 5e-324, 1e21, 1e21-65536, 1e-7, 9.999999999999999e-7)
	bits := make([]string, len(fs))
	for i, f := range fs {
		bits[i] = strconv.FormatUint(math.Float64bits(f), 16)
	}
	out := node(t, `const b = Buffer.alloc(8);
for (const h of JSON.parse(process.argv[1])) { b.writeBigUInt64BE(BigInt('0x' + h)); console.log(JSON.stringify(b.readDoubleBE())) }`, bits)
	for i, f := range fs {
		if got := string(jsonw.AppendFloat(nil, f)); got != out[i] {
			t.Errorf("AppendFloat(%v) = %s, JavaScript prints %s", f, got, out[i])
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(jsonw.AppendFloat(nil, f)); got != "null" {
			t.Errorf("AppendFloat(%v) = %s, want null", f, got)
		}
	}
}

// node runs script with the JSON of args as argv[1] and returns its lines.
func node(t *testing.T, script string, args any) []string {
	t.Helper()
	in, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", "-e", script, string(in)).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if n := len(args.([]string)); len(lines) != n {
		t.Fatalf("node printed %d lines, want %d", len(lines), n)
	}
	return lines
}

func TestAppendNumber_NoAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	lit := []byte("12.50")
	if n := testing.AllocsPerRun(100, func() { buf, _ = jsonw.AppendNumber(buf[:0], lit) }); n != 0 {
		t.Errorf("AppendNumber allocates %.0f times per call, want 0", n)
	}
}

var canonicalCases = []struct{ in, want string }{
	{`{"a": 1, "b": [1.50, 2, {"c": null}], "d": "x\u00e9\/y\u2028"}`, "{\"a\":1,\"b\":[1.5,2,{\"c\":null}],\"d\":\"x\u00e9/y\u2028\"}"},
	{" [ true , false ,null ] \n", `[true,false,null]`},
	{`{"a\b":"\u0008\u001F","a":1,"a":2}`, `{"a\b":"\b\u001f","a":1,"a":2}`},
	{`"\ud83d\ude00 \ud800x"`, "\"\U0001F600 \ufffdx\""},
	{`{}`, `{}`}, {`[]`, `[]`}, {`1e21`, `1e+21`},
}

func TestAppendCanonical(t *testing.T) {
	for _, tc := range canonicalCases {
		got, err := jsonw.AppendCanonical(nil, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("AppendCanonical(%s) = %s, %v, want %s", tc.in, got, err, tc.want)
		}
		again, err := jsonw.AppendCanonical(nil, got)
		if err != nil || string(again) != string(got) {
			t.Errorf("AppendCanonical is not idempotent on %s: %s, %v", got, again, err)
		}
	}
	for _, bad := range []string{``, `{`, `[1,]`, `{"a" 1}`, `01`, `"x`, "\"\x01\"", `[1] 2`, `{1:2}`, `tru`, `"\x"`} {
		got, err := jsonw.AppendCanonical([]byte("keep"), []byte(bad))
		if err == nil || !errors.Is(err, jsonw.ErrSyntax) || string(got) != "keep" {
			t.Errorf("AppendCanonical(%q) = %q, %v, want dst unchanged and an ErrSyntax", bad, got, err)
		}
	}
}

// TestAppendCanonical_MatchesJSONStringify: for inputs without big integers
// and without lone surrogates, the canonical form is
// JSON.stringify(JSON.parse(x)).
func TestAppendCanonical_MatchesJSONStringify(t *testing.T) {
	needNode(t)
	var ins []string
	for _, tc := range canonicalCases {
		if !strings.Contains(tc.in, `\ud800`) && !strings.Contains(tc.in, `"a":2`) {
			ins = append(ins, tc.in)
		}
	}
	out := node(t, `for (const s of JSON.parse(process.argv[1])) console.log(JSON.stringify(JSON.parse(s)))`, ins)
	for i, in := range ins {
		if got, _ := jsonw.AppendCanonical(nil, []byte(in)); string(got) != out[i] {
			t.Errorf("AppendCanonical(%s) = %s, JSON.stringify(JSON.parse) = %s", in, got, out[i])
		}
	}
}

// FuzzAppendCanonical: valid JSON has a canonical form that is valid JSON,
// equal in value, and its own canonical form; anything else is an error.
func FuzzAppendCanonical(f *testing.F) {
	for _, tc := range canonicalCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range numberCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := jsonw.AppendCanonical(nil, in)
		if !json.Valid(in) {
			if err == nil {
				t.Fatalf("AppendCanonical(%q) = %s, want an error for invalid JSON", in, out)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendCanonical(%q): %v", in, err)
		}
		if !json.Valid(out) {
			t.Fatalf("AppendCanonical(%q) = %q: not JSON", in, out)
		}
		again, err := jsonw.AppendCanonical(nil, out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("canonical form %q of %q is not canonical: %q, %v", out, in, again, err)
		}
		var a, b any
		if json.Unmarshal(in, &a) == nil && json.Unmarshal(out, &b) == nil && !reflect.DeepEqual(a, b) {
			t.Fatalf("AppendCanonical(%q) = %q: another value", in, out)
		}
	})
}
