package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/walcast/walcast/internal/jsonw"
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
		p, err := decodeSocketPacket(b)
		if err != nil {
			return
		}
		enc := appendSocketPacket(nil, p)
		q, err := decodeSocketPacket(enc)
		if err != nil {
			t.Fatalf("re-decode %q (from %q): %v", enc, b, err)
		}
		if p.Type != q.Type || p.Attachments != q.Attachments || p.Nsp != q.Nsp || p.ID != q.ID || !bytes.Equal(p.Data, q.Data) {
			t.Fatalf("round trip %q -> %q: %+v != %+v", b, enc, p, q)
		}
		if p.Type == sioEvent || p.Type == sioBinaryEvent {
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
		p, err := decodeEnginePacket(b)
		if err != nil {
			return
		}
		enc := appendEnginePacket(nil, p)
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip %q -> %q", b, enc)
		}
		q, err := decodeEnginePacket(enc)
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
		ps, err := decodePollingPayload(b)
		if err != nil {
			return
		}
		if len(ps) == 0 {
			t.Fatalf("no packets and no error for %q", b)
		}
		enc := appendPollingPayload(nil, ps)
		qs, err := decodePollingPayload(enc)
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

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "a", `"q"`, `back\slash`, "<&>", "\n\t\x00\x1f", "héllo €", "bad\xffutf8", "\u2028"} {
		got := jsonw.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		want := s
		if s == "bad\xffutf8" {
			want = "bad\ufffdutf8"
		}
		if back != want {
			t.Errorf("%q -> %s -> %q", s, got, back)
		}
	}
	if got := string(jsonw.AppendString(nil, "<&>")); got != `"<&>"` {
		t.Errorf("HTML escaped: %s", got)
	}
}

// clientFrame builds a masked client WebSocket frame.
func clientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

func wsReaderConn() *conn {
	s, _ := New(Config{})
	c := &conn{srv: s, closed: true}
	c.connected.Store(true)
	return c
}

func TestReadWSFrames(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	var in []byte
	in = append(in, clientFrame(true, 9, []byte("p"), key)...) // ping, answered via the (closed) queue
	in = append(in, clientFrame(false, 1, []byte("42[\"a"), key)...)
	in = append(in, clientFrame(true, 0, []byte("\"]"), key)...)
	in = append(in, clientFrame(true, 2, make([]byte, 70000), key)...)
	in = append(in, clientFrame(true, 8, nil, key)...)
	c := wsReaderConn()
	r := bytes.NewReader(in)
	m, err := c.readWSFrames(r, 1e6, false)
	if err != nil || m.binary || string(m.data) != `42["a"]` {
		t.Fatalf("fragmented text: %q %v", m.data, err)
	}
	m, err = c.readWSFrames(r, 1e6, false)
	if err != nil || !m.binary || len(m.data) != 70000 {
		t.Fatalf("binary 70000: %d %v", len(m.data), err)
	}
	if _, err = c.readWSFrames(r, 1e6, false); err != errClientClosed {
		t.Fatalf("close: got %v", err)
	}
	if _, err := c.readWSFrames(bytes.NewReader(clientFrame(true, 1, make([]byte, 200), key)), 100, false); err != errFrameTooBig {
		t.Fatalf("limit: got %v", err)
	}
	// A frame announcing 1e6 bytes of which 100 arrived holds a buffer the
	// size of the first read chunk, not of the announcement.
	short := clientFrame(true, 1, make([]byte, 1e6), key)[:14+100]
	m, err = c.readWSFrames(bytes.NewReader(short), 1e6, false)
	if !errors.Is(err, io.ErrUnexpectedEOF) || cap(m.data) > 2*readChunk {
		t.Fatalf("short 1e6 frame: cap %d, %v", cap(m.data), err)
	}
	// Before CONNECT, frames and pings together may not pass MaxPreConnectBytes.
	pre := wsReaderConn()
	pre.connected.Store(false)
	var many []byte
	for len(many) < int(pre.srv.cfg.MaxPreConnectBytes) {
		many = append(many, clientFrame(true, 9, nil, key)...)
		many = append(many, clientFrame(true, 1, make([]byte, 1000), key)...)
	}
	r = bytes.NewReader(many)
	for err == nil || !errors.Is(err, errPreConnectBudget) {
		if _, err = pre.readWSFrames(r, 1e6, false); err != nil && !errors.Is(err, errPreConnectBudget) {
			t.Fatalf("before CONNECT: got %v, want errPreConnectBudget", err)
		}
	}
	if pre.preRead <= pre.srv.cfg.MaxPreConnectBytes || pre.preRead > pre.srv.cfg.MaxPreConnectBytes+1010 {
		t.Fatalf("refused after %d bytes; budget %d", pre.preRead, pre.srv.cfg.MaxPreConnectBytes)
	}
	unmasked := clientFrame(true, 1, []byte("x"), key)
	unmasked[1] &^= 0x80
	if _, err := c.readWSFrames(bytes.NewReader(unmasked), 100, false); err == nil {
		t.Fatal("unmasked frame accepted")
	}
}

func FuzzWSFrames(f *testing.F) {
	key := [4]byte{9, 8, 7, 6}
	f.Add(clientFrame(true, 1, []byte("40"), key))
	f.Add(append(clientFrame(false, 1, []byte("4"), key), clientFrame(true, 0, []byte("2"), key)...))
	f.Add(clientFrame(true, 2, []byte{1, 2, 3}, key))
	f.Add(clientFrame(true, 1, make([]byte, 300), key))
	f.Add(clientFrame(true, 9, []byte("ping"), key))
	f.Add(clientFrame(true, 8, []byte{3, 232}, key))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := wsReaderConn()
		c.connected.Store(len(b)%2 == 0) // odd lengths: before CONNECT
		r := bytes.NewReader(b)
		for range 8 {
			m, err := c.readWSFrames(r, 4096, false)
			if err != nil {
				return
			}
			if !c.connected.Load() && c.preRead > c.srv.cfg.MaxPreConnectBytes {
				t.Fatalf("read %d bytes before CONNECT, over the budget", c.preRead)
			}
			if len(m.data) > 4096 {
				t.Fatalf("message of %d bytes over the 4096 limit", len(m.data))
			}
		}
	})
}
