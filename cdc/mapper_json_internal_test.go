package cdc

import (
	"encoding/json"
	"testing"
)

func TestAppendArrayJSON(t *testing.T) {
	for _, tc := range []struct {
		elem     uint32
		in, want string
	}{
		{oidInt4, `{1,2,NULL}`, `[1,2,null]`},
		{25, `{gift,"a,b","say \"hi\"",NULL,"back\\slash","","NULL"," pad "}`, `["gift","a,b","say \"hi\"",null,"back\\slash","","NULL"," pad "]`},
		{oidNumeric, `{{1.50,2},{-3,0.001}}`, `[[1.5,2],[-3,0.001]]`},
		{oidBool, `{t,f}`, `[true,false]`},
		{oidNumeric, `{NaN,Infinity}`, `["NaN","Infinity"]`},
		{oidTimestamptz, `{"2026-02-20 01:00:00+00"}`, `["2026-02-20T01:00:00+00:00"]`},
		{25, `{}`, `[]`},
	} {
		got, ok := appendArrayJSON(nil, tc.elem, []byte(tc.in))
		if !ok || string(got) != tc.want {
			t.Errorf("appendArrayJSON(%s) = %s, %v; want %s", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{`[0:1]={1,2}`, `{1,2`, `{"a}`, `{1,,2}`, `{1}x`, `1,2`, ``, `{{{{{{{{1}}}}}}}}`} {
		if got, ok := appendArrayJSON([]byte("x"), oidInt4, []byte(bad)); ok || string(got) != "x" {
			t.Errorf("appendArrayJSON(%s) = %s, %v; want rejected with dst unchanged", bad, got, ok)
		}
	}
}

// FuzzArrayJSON: whatever the text, an accepted array is valid JSON.
func FuzzArrayJSON(f *testing.F) {
	for _, s := range []string{`{1,2,NULL}`, `{"a,b","c\"d"}`, `{{1,2},{3,4}}`, `{}`, `{ a , b }`, `[1:2]={1,2}`} {
		f.Add(s, uint8(0))
	}
	elems := []uint32{oidInt4, 25, oidNumeric, oidBool, oidJSONB, oidTimestamptz, oidTimestamp}
	f.Fuzz(func(t *testing.T, s string, e uint8) {
		out, ok := appendArrayJSON(nil, elems[int(e)%len(elems)], []byte(s))
		if ok && !json.Valid(out) {
			t.Fatalf("appendArrayJSON(%q) = %s: not valid JSON", s, out)
		}
	})
}

func TestAppendValueJSON(t *testing.T) {
	for _, tc := range []struct {
		oid      uint32
		in, want string
	}{
		{oidTimestamptz, "2026-02-14 10:00:00.123456+05:30", `"2026-02-14T04:30:00.123456+00:00"`},
		{oidTimestamptz, "2026-02-14 23:59:59.5-08", `"2026-02-15T07:59:59.5+00:00"`},
		{oidTimestamptz, "1900-01-01 00:00:00+00:19:32", `"1899-12-31T23:40:28+00:00"`},
		{oidTimestamptz, "2026-02-14 10:00:00+00", `"2026-02-14T10:00:00+00:00"`},
		{oidTimestamptz, "infinity", `"infinity"`},
		{oidTimestamptz, "0044-03-15 12:00:00+00 BC", `"0044-03-15 12:00:00+00 BC"`},
		{oidTimestamp, "2026-02-14 10:00:00.5", `"2026-02-14T10:00:00.5"`},
		// Numbers and json in canonical form (JSON.stringify's), the form
		// they have after crossing Redis: the same bytes on every node.
		{oidNumeric, "-0.000100", `-0.0001`},
		{oidNumeric, "19.90", `19.9`},
		{oidNumeric, "120.00", `120`},
		{oidNumeric, "12345678901234567890.5", `12345678901234567000`},
		{oidNumeric, "NaN", `"NaN"`},
		{oidFloat8, "1e+100", `1e+100`},
		{oidFloat8, "-Infinity", `"-Infinity"`},
		{oidInt8, "9223372036854775807", `9223372036854775807`},
		{oidBool, "t", `true`},
		{oidJSONB, `{"a": [1, "x"]}`, `{"a":[1,"x"]}`},
		{oidJSON, `{"p": 1.0, "e": "\u00e9\/"}`, `{"p":1,"e":"é/"}`},
		{25, "tab\there \"q\" \\ \x01 \xff é", "\"tab\\there \\\"q\\\" \\\\ \\u0001 \ufffd é\""}, // invalid UTF-8: a raw U+FFFD, as JSON.stringify prints it
		{2950, "00000000-0000-4000-8000-000000000001", `"00000000-0000-4000-8000-000000000001"`},
	} {
		got := appendValueJSON(nil, tc.oid, Value{Kind: ValueText, Data: []byte(tc.in)})
		if string(got) != tc.want {
			t.Errorf("appendValueJSON(%d, %q) = %s, want %s", tc.oid, tc.in, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("appendValueJSON(%d, %q) = %s: not valid JSON", tc.oid, tc.in, got)
		}
	}
}
