package packet_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/walcast/walcast/hub/packet"
)

// Seeds captured from socket.io-client 4.8 traffic and the protocol suites.
var socketSeeds = []string{
	`0`, `0{"token":"123"}`, `0/admin,{"token":"123"}`, `0/random`, `0{"pid":"p","offset":"100-0","token":"t"}`,
	`1`, `1/custom,`, `2["message",1,"2",{"3":[true]}]`, `2456["message-with-ack",1,"2",{"3":[false]}]`,
	`21["foo"]`, `2/admin,13["bar"]`, `3/admin,13["bar"]`, `30["yes"]`, `31[]`,
	`4{"message":"Invalid namespace"}`, `4"err"`,
	`52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
	`52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
	`62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
	`abc`, `2{}`, `2abc["x"]`, `2[]`, `2["connect"]`, `2[1,2]`, `511-["x"]`, `5-["x"]`, `2999999999999999999["x"]`,
}

func FuzzSocketPacket(f *testing.F) {
	for _, s := range socketSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := packet.ParseSocket(b)
		if err != nil {
			return
		}
		enc := packet.AppendSocket(nil, p)
		q, err := packet.ParseSocket(enc)
		if err != nil {
			t.Fatalf("re-decode %q (from %q): %v", enc, b, err)
		}
		if p.Type != q.Type || p.Attachments != q.Attachments || p.Nsp != q.Nsp || p.ID != q.ID || !bytes.Equal(p.Data, q.Data) {
			t.Fatalf("round trip %q -> %q: %+v != %+v", b, enc, p, q)
		}
		if p.Type == packet.SocketEvent || p.Type == packet.SocketBinaryEvent {
			var args []json.RawMessage
			if json.Unmarshal(p.Data, &args) != nil || len(args) == 0 {
				t.Fatalf("accepted event without args: %q", b)
			}
		}
	})
}

func FuzzEnginePacket(f *testing.F) {
	for _, s := range []string{"0", "1", "2", "3", "2probe", "3probe", "4hello", "5", "6", `40{"token":"x"}`, "", "9", "b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := packet.ParseEngine(b)
		if err != nil {
			return
		}
		enc := packet.AppendEngine(nil, p)
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip %q -> %q", b, enc)
		}
		q, err := packet.ParseEngine(enc)
		if err != nil || q.Type != p.Type || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("re-decode %q: %+v %v", enc, q, err)
		}
	})
}

func FuzzPollingPayload(f *testing.F) {
	for _, s := range []string{
		"40", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA==", "3", "1", "abc", "\x1e", "4a\x1e",
		"451-[\"m\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID", "b", "b!!!", "2\x1e3\x1e6",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := packet.ParsePayload(b)
		if err != nil {
			return
		}
		if len(ps) == 0 {
			t.Fatalf("no packets and no error for %q", b)
		}
		enc := packet.AppendPayload(nil, ps)
		qs, err := packet.ParsePayload(enc)
		if err != nil || len(qs) != len(ps) {
			t.Fatalf("re-decode %q: %d packets, %v; want %d", enc, len(qs), err, len(ps))
		}
		for i := range ps {
			if ps[i].Type != qs[i].Type || ps[i].Binary != qs[i].Binary || !bytes.Equal(ps[i].Data, qs[i].Data) {
				t.Fatalf("packet %d: %+v != %+v", i, ps[i], qs[i])
			}
		}
	})
}
