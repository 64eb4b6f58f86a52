package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/walcast/walcast/internal/jsonw"
)

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
