package main

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/walcast/walcast/hub"
)

func messageFor(t *testing.T, args []string, att [][]byte) *hub.Message {
	t.Helper()
	m := &hub.Message{Event: "message", Attachments: att}
	for _, a := range args {
		m.Args = append(m.Args, json.RawMessage(a))
	}
	return m
}

func TestPlaceholder(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want bool
	}{
		{`{"_placeholder":true,"num":0}`, 0, true},
		{`{"num":3,"_placeholder":true}`, 3, true},
		{`{"_placeholder":true,"num":-1}`, 0, false},
		{`{"_placeholder":false,"num":0}`, 0, false},
		{`{"_placeholder":true,"num":0,"x":1}`, 0, false},
		{`{"_placeholder":true,"num":"0"}`, 0, false},
		{`[1]`, 0, false},
		{`"x"`, 0, false},
		{``, 0, false},
	} {
		n, ok := placeholder(json.RawMessage(tc.in))
		if ok != tc.want || (ok && n != tc.n) {
			t.Errorf("placeholder(%s) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.want)
		}
	}
}

func TestEchoArgs(t *testing.T) {
	m := messageFor(t, []string{`{"_placeholder":true,"num":1}`, `"x"`, `{"_placeholder":true,"num":0}`, `{"_placeholder":true,"num":7}`},
		[][]byte{{1}, {2, 3}})
	got := echoArgs(m)
	want := []any{[]byte{2, 3}, json.RawMessage(`"x"`), []byte{1}, json.RawMessage(`{"_placeholder":true,"num":7}`)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("echoArgs: got %#v, want %#v", got, want)
	}
}

func FuzzPlaceholder(f *testing.F) {
	for _, s := range []string{`{"_placeholder":true,"num":0}`, `{"_placeholder":true,"num":1e3}`, `{}`, `null`, `{"_placeholder":true,"num":99999999999999999999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, ok := placeholder(b); ok && n < 0 {
			t.Fatalf("placeholder(%q) = %d, true", b, n)
		}
	})
}
