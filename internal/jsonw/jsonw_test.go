package jsonw_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/walcast/walcast/internal/jsonw"
)

var cases = []string{
	"", "plain", `quote " and \ backslash`, "a\bz", "a\b\u2028z", "\f\n\r\t", "\x00\x01\x1f\x7f",
	"\u2028\u2029", "<&>", "émoji 😀", "tab\tend", "\ufffd",
}

// TestAppendString_MatchesJSONStringify compares every case with what Node's
// JSON.stringify writes for the same string.
func TestAppendString_MatchesJSONStringify(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not installed")
		}
		t.Skip("node not installed")
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", "-e", `for (const s of JSON.parse(process.argv[1])) console.log(JSON.stringify(s))`, string(in)).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(want) != len(cases) {
		t.Fatalf("node printed %d lines, want %d", len(want), len(cases))
	}
	for i, s := range cases {
		if got := string(jsonw.AppendString(nil, s)); got != want[i] {
			t.Errorf("AppendString(%q) = %s, want %s (JSON.stringify)", s, got, want[i])
		}
		if got := string(jsonw.AppendString(nil, []byte(s))); got != want[i] {
			t.Errorf("AppendString([]byte %q) = %s, want %s", s, got, want[i])
		}
	}
}

func TestAppendString_InvalidUTF8(t *testing.T) {
	got := string(jsonw.AppendString(nil, "a\xffb\xc3"))
	if want := "\"a\ufffdb\ufffd\""; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAppendString_NoAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = jsonw.AppendString(buf[:0], "a\b\u2028z \"q\" é") }); n != 0 {
		t.Errorf("AppendString allocates %.0f times per call, want 0", n)
	}
}

// FuzzAppendString: the output is valid JSON and decodes to the input (with
// invalid UTF-8 replaced).
func FuzzAppendString(f *testing.F) {
	for _, s := range cases {
		f.Add(s)
	}
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		out := jsonw.AppendString(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, out, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); utf8.ValidString(s) && got != want {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}
