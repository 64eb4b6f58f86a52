package packet_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/walcast/walcast/hub/packet"
)

func TestAppendEventMessage(t *testing.T) {
	args := []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`"x"`)}
	tests := []struct {
		name  string
		typ   byte
		atts  int
		nsp   string
		id    int64
		event string
		want  string
	}{
		{"event", packet.SocketEvent, 0, "/", -1, "news", `42["news",{"a":1},"x"]`},
		{"event nsp ack id", packet.SocketEvent, 0, "/admin", 7, "news", `42/admin,7["news",{"a":1},"x"]`},
		{"binary event", packet.SocketBinaryEvent, 2, "", -1, "bin", `452-["bin",{"a":1},"x"]`},
		{"ack", packet.SocketAck, 0, "/", 3, "ignored", `433[{"a":1},"x"]`},
		{"binary ack", packet.SocketBinaryAck, 1, "/x", 3, "", `461-/x,3[{"a":1},"x"]`},
		{"escaped name", packet.SocketEvent, 0, "/", -1, "a\b\u2028z", `42["a\b` + "\u2028" + `z",{"a":1},"x"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(packet.AppendEventMessage(nil, tt.typ, tt.atts, tt.nsp, tt.id, tt.event, args))
			if got != tt.want {
				t.Fatalf("AppendEventMessage = %s, want %s", got, tt.want)
			}
			p, err := packet.ParseSocket([]byte(got[1:]))
			if err != nil {
				t.Fatalf("ParseSocket(%s): %v", got[1:], err)
			}
			if p.Type != tt.typ || p.Attachments != tt.atts || p.Nsp != packet.Namespace(tt.nsp) || p.ID != tt.id {
				t.Fatalf("ParseSocket(%s) = %+v", got[1:], p)
			}
		})
	}
}

func TestValidatePlaceholders(t *testing.T) {
	ph := string(packet.AppendPlaceholder(nil, 1))
	if ph != `{"_placeholder":true,"num":1}` {
		t.Fatalf("AppendPlaceholder(1) = %s", ph)
	}
	for _, tt := range []struct {
		data string
		n    int
		ok   bool
	}{
		{`["e",` + ph + `]`, 2, true},
		{`["e",{"x":[` + ph + `]}]`, 2, true},
		{`["e",` + ph + `]`, 1, false},
		{`["e",{"_placeholder":true,"num":-1}]`, 1, false},
		{`["e",{"_placeholder":true,"num":"0"}]`, 1, false},
		{`["e",{"_placeholder":true}]`, 1, false},
		{`[`, 1, false},
	} {
		err := packet.ValidatePlaceholders([]byte(tt.data), tt.n)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePlaceholders(%s, %d) = %v, want ok=%v", tt.data, tt.n, err, tt.ok)
		}
		if err != nil && !errors.Is(err, packet.ErrBadPacket) {
			t.Errorf("ValidatePlaceholders(%s, %d) = %v, want an ErrBadPacket", tt.data, tt.n, err)
		}
	}
}

func TestReserved(t *testing.T) {
	for _, e := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"} {
		if !packet.Reserved(e) {
			t.Errorf("Reserved(%q) = false, want true", e)
		}
		if _, err := packet.ParseSocket([]byte(`2["` + e + `"]`)); !errors.Is(err, packet.ErrBadPacket) {
			t.Errorf("ParseSocket of a %q EVENT = %v, want ErrBadPacket", e, err)
		}
	}
	if packet.Reserved("message") {
		t.Error(`Reserved("message") = true, want false`)
	}
}
