package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/walcast/walcast/hub/internal/wsframe"
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

func wsReaderConn() *conn {
	s, _ := New(Config{})
	c := &conn{srv: s, closed: true}
	c.connected.Store(true)
	return c
}

// TestConn_FrameHandler: the conn, as its frame reader's handler, refuses a
// connection without CONNECT after MaxPreConnectBytes (pings included), and
// not once a CONNECT was accepted.
func TestConn_FrameHandler(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	pre := wsReaderConn()
	pre.connected.Store(false)
	var many []byte
	for len(many) < int(2*pre.srv.cfg.MaxPreConnectBytes) {
		many = wsframe.AppendMasked(many, true, wsframe.OpPing, nil, key)
		many = wsframe.AppendMasked(many, true, wsframe.OpText, make([]byte, 1000), key)
	}
	r := bytes.NewReader(many)
	var err error
	for range 1000 {
		if _, err = pre.readWSMessage(r, false); err != nil {
			break
		}
	}
	if !errors.Is(err, errPreConnectBudget) {
		t.Fatalf("before CONNECT: got %v, want errPreConnectBudget", err)
	}
	if pre.preRead <= pre.srv.cfg.MaxPreConnectBytes || pre.preRead > pre.srv.cfg.MaxPreConnectBytes+1010 {
		t.Fatalf("refused after %d bytes; budget %d", pre.preRead, pre.srv.cfg.MaxPreConnectBytes)
	}
	c := wsReaderConn()
	r = bytes.NewReader(many)
	for range len(many) / 1012 {
		if _, err := c.readWSMessage(r, false); err != nil {
			t.Fatalf("after CONNECT: got %v, want no error", err)
		}
	}
}
