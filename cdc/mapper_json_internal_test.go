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
		{oidNumeric, `{{1.50,2},{-3,0.001}}`, `[[1.50,2],[-3,0.001]]`},
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
