package packet_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/walcast/walcast/hub/packet"
)

// clusterSeeds are ClusterAdapter messages as @socket.io/redis-adapter 8.3's
// sharded adapter writes them (captured with redis-cli SSUBSCRIBE).
var clusterSeeds = []string{
	`{"type":3,"data":{"packet":{"type":2,"data":["hello",{"a":1}],"nsp":"/"},"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"VBLcQq","nsp":"/"}`,
	`{"type":3,"data":{"packet":{"type":2,"data":["all"],"nsp":"/"},"opts":{"rooms":[],"except":["x"],"flags":{"volatile":true}}},"uid":"VBLcQq","nsp":"/"}`,
	`{"type":7,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"requestId":"5yOQgs"},"uid":"VBLcQq","nsp":"/"}`,
	`{"type":9,"data":{"packet":["ping"]},"uid":"VBLcQq","nsp":"/"}`,
	`{"type":3,"data":{"packet":{"type":2,"data":["x","1-0"],"nsp":"/"},"opts":{"rooms":[1],"except":[],"flags":{"walcastOffset":"1-0"}}},"uid":"u","nsp":"/"}`,
	`{}`, `{"type":3}`, `{"type":3,"data":[]}`, "\x80",
}

func TestClusterBroadcast_RoundTrip(t *testing.T) {
	ct := time.UnixMicro(1_700_000_000_123_456)
	for _, m := range []packet.AdapterMessage{
		{UID: "abc", Namespace: "/", Event: "ev", Args: []json.RawMessage{json.RawMessage(`{"a":"b\u2028"}`), json.RawMessage(`2`)},
			Rooms: []string{"product:1"}, Offset: "10-3", CommitTime: ct},
		{UID: "abc", Namespace: "/admin", Event: "ev", Rooms: []string{"a", "b"}, Except: []string{"c"}},
		{UID: "abc", Namespace: "/", Event: "bin", Args: []json.RawMessage{json.RawMessage(`{"_placeholder":true,"num":0}`)},
			Attachments: [][]byte{{1, 2, 3}}, Offset: "11-0"},
	} {
		enc, err := packet.AppendClusterBroadcast(nil, &m)
		if err != nil {
			t.Fatalf("AppendClusterBroadcast(%s): %v", m.Event, err)
		}
		if json := len(m.Attachments) == 0; json != (enc[0] == '{') {
			t.Errorf("%s: JSON form %v, want %v", m.Event, !json, json)
		}
		got, err := packet.ParseClusterMessage(enc)
		if err != nil {
			t.Fatalf("ParseClusterMessage(%q): %v", enc, err)
		}
		if got.Type != packet.ClusterBroadcast || got.UID != m.UID || got.Namespace != m.Namespace {
			t.Errorf("header = %d %q %q, want 3 %q %q", got.Type, got.UID, got.Namespace, m.UID, m.Namespace)
		}
		b := got.Broadcast
		if !b.CommitTime.Equal(m.CommitTime) {
			t.Errorf("%s: CommitTime %v, want %v", m.Event, b.CommitTime, m.CommitTime)
		}
		b.CommitTime, m.CommitTime = time.Time{}, time.Time{}
		if !reflect.DeepEqual(b, m) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", m.Event, b, m)
		}
	}
}

func TestParseClusterMessage_Node(t *testing.T) {
	m, err := packet.ParseClusterMessage([]byte(clusterSeeds[0]))
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != "VBLcQq" || m.Broadcast.Event != "hello" || string(m.Broadcast.Args[0]) != `{"a":1}` || m.Broadcast.Rooms[0] != "room1" {
		t.Errorf("got %+v", m)
	}
	m, err = packet.ParseClusterMessage([]byte(clusterSeeds[2]))
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != packet.ClusterFetchSockets || m.RequestID != "5yOQgs" || len(m.Rooms) != 1 {
		t.Errorf("fetchSockets request = %+v", m)
	}
}

func FuzzClusterMessage(f *testing.F) {
	for _, s := range clusterSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := packet.ParseClusterMessage(b)
		if err != nil || m.Type != packet.ClusterBroadcast {
			return
		}
		for _, a := range m.Broadcast.Args {
			if !json.Valid(a) {
				return // JSON form passes arguments through; a Node peer wrote valid JSON
			}
		}
		enc, err := packet.AppendClusterBroadcast(nil, &m.Broadcast)
		if err != nil {
			return
		}
		again, err := packet.ParseClusterMessage(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		if again.Broadcast.Event != m.Broadcast.Event || len(again.Broadcast.Args) != len(m.Broadcast.Args) || again.Broadcast.Offset != m.Broadcast.Offset {
			t.Fatalf("round trip changed %+v into %+v", m.Broadcast, again.Broadcast)
		}
	})
}
