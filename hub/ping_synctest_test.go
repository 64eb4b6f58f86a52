package hub

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/walcast/walcast/hub/internal/wsframe"
)

// readServerFrame reads one unmasked server frame (payload < 126 bytes).
func readServerFrame(t *testing.T, c net.Conn) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	p := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0] & 0x0f, p
}

// TestPing_Schedule checks the heartbeat with the default 25s/20s in a
// synctest bubble: pings every PingInterval after the last pong, and a close
// PingTimeout after an unanswered ping.
func TestPing_Schedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := New(Config{ConnectTimeout: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		sc, cc := net.Pipe()
		defer cc.Close()
		c := &conn{srv: srv, sid: newID(), transport: transportWebSocket}
		c.setNetConn(sc)
		srv.register(c)
		go c.readLoopWS(sc)
		c.enqueue(frame{data: []byte(`40`), op: opText}) // anything, to start

		readServerFrame(t, cc)
		start := time.Now()
		for i := range 3 {
			op, p := readServerFrame(t, cc)
			if op != opText || !bytes.Equal(p, framePing) {
				t.Fatalf("ping %d: got op %d %q", i, op, p)
			}
			if d := time.Since(start); d != DefaultPingInterval {
				t.Fatalf("ping %d after %v, want %v", i, d, DefaultPingInterval)
			}
			time.Sleep(time.Second)
			cc.Write(wsframe.AppendMasked(nil, true, wsframe.OpText, framePong, [4]byte{1, 2, 3, 4}))
			synctest.Wait()
			start = time.Now()
		}
		readServerFrame(t, cc) // the 4th ping, not answered
		sent := time.Now()
		// The server closes the connection PingTimeout later.
		var b [1]byte
		_, err = cc.Read(b[:])
		if err == nil {
			t.Fatalf("connection still open, read %q", b[:])
		}
		if d := time.Since(sent); d != DefaultPingTimeout {
			t.Fatalf("closed %v after the ping, want %v", d, DefaultPingTimeout)
		}
		synctest.Wait()
		if srv.Stats().Connections != 0 {
			t.Fatalf("connection not finished: %+v", srv.Stats())
		}
	})
}
