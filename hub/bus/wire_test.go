package bus

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
)

func raws(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func TestChannelFor(t *testing.T) {
	b := &hub.Broadcast{Rooms: []string{"room1"}, Event: "news"}
	if ch := channelFor("socket.io", b); ch != "socket.io#/#room1#" {
		t.Fatalf("channelFor = %q, want socket.io#/#room1#", ch)
	}
	if ch := channelFor("socket.io", &hub.Broadcast{Rooms: []string{"a", "b"}, Namespace: "/admin"}); ch != "socket.io#/admin#" {
		t.Fatalf("channelFor = %q, want socket.io#/admin#", ch)
	}
}

// TestDecodeMessage_RoundTrip: a hub.Broadcast survives the trip through the
// adapter message with every field the bus carries.
func TestDecodeMessage_RoundTrip(t *testing.T) {
	ct := time.UnixMicro(1_700_000_000_123_456)
	tests := []struct {
		name string
		b    *hub.Broadcast
	}{
		{"plain", &hub.Broadcast{Namespace: "/", Event: "all", Args: raws(`42`)}},
		{"offset", &hub.Broadcast{Namespace: "/", Rooms: []string{"product:1"}, Event: "product:stock-updated",
			Args: raws(`{"variantId":"v1","available":3,"timestamp":1700000000123}`), Offset: "123456-0", CommitTime: ct}},
		{"except", &hub.Broadcast{Namespace: "/admin", Rooms: []string{"a", "b"}, Except: []string{"sid1"}, Event: "x",
			Args: raws(`[1,-2,3.5,"s",null,true,false,{"z":1,"a":[]}]`, `"é\u2028\n\"\\"`, `-9007199254740993`, `0.25`)}},
		{"binary", &hub.Broadcast{Namespace: "/", Event: "bin",
			Args:        raws(`{"_placeholder":true,"num":0}`, `{"f":{"_placeholder":true,"num":1}}`),
			Attachments: [][]byte{{1, 2, 3}, {}}}},
		{"many", &hub.Broadcast{Namespace: "/", Event: "m", Args: raws(`[`+strings.Repeat(`1,`, 40)+`1]`,
			`"`+strings.Repeat("x", 300)+`"`)}},
		{"no args", &hub.Broadcast{Namespace: "/", Event: "ping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := appendMessage(nil, "uid1", tt.b)
			if err != nil {
				t.Fatalf("appendMessage: %v", err)
			}
			m, err := decodeMessage(data)
			if err != nil {
				t.Fatalf("decodeMessage: %v", err)
			}
			if m.uid != "uid1" {
				t.Errorf("uid = %q, want uid1", m.uid)
			}
			want := *tt.b
			if want.Args == nil {
				want.Args = []json.RawMessage{}
			}
			if !want.CommitTime.IsZero() {
				want.CommitTime = time.UnixMicro(want.CommitTime.UnixMicro())
			}
			got := *m.b
			if !reflect.DeepEqual(normalize(&got), normalize(&want)) {
				t.Errorf("decodeMessage(appendMessage(b)):\n got %+v\nwant %+v", normalize(&got), normalize(&want))
			}
		})
	}
}

// normalize turns args into compact JSON strings for comparison.
func normalize(b *hub.Broadcast) hub.Broadcast {
	c := *b
	c.Args = nil
	for _, a := range b.Args {
		var v any
		d := json.NewDecoder(strings.NewReader(string(a)))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			c.Args = append(c.Args, json.RawMessage("invalid:"+string(a)))
			continue
		}
		out, _ := json.Marshal(v)
		c.Args = append(c.Args, out)
	}
	if len(c.Attachments) == 0 {
		c.Attachments = nil
	}
	return c
}

func BenchmarkAppendMessage(b *testing.B) {
	br := &hub.Broadcast{Namespace: "/", Rooms: []string{"product:42"}, Event: "product:stock-updated",
		Args:   raws(`{"variantId":"8f2c2a9e-1d1b-4c53-9d1a-7d2f0c4f1a11","available":17,"timestamp":1700000000123}`),
		Offset: "123456789-3", CommitTime: time.Now()}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendMessage(buf[:0], "abcdef", br)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeMessage(b *testing.B) {
	br := &hub.Broadcast{Namespace: "/", Rooms: []string{"product:42"}, Event: "product:stock-updated",
		Args:   raws(`{"variantId":"8f2c2a9e-1d1b-4c53-9d1a-7d2f0c4f1a11","available":17,"timestamp":1700000000123}`),
		Offset: "123456789-3", CommitTime: time.Now()}
	data, _ := appendMessage(nil, "abcdef", br)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMessage(data); err != nil {
			b.Fatal(err)
		}
	}
}
