package wsframe

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// budget is a Handler that allows max bytes and records control frames.
type budget struct {
	max, read int64
	pings     [][]byte
	pongs     int
}

var errBudget = errors.New("over budget")

func (b *budget) ChargeFrame(n int64) error {
	b.read += n
	if b.max > 0 && b.read > b.max {
		return errBudget
	}
	return nil
}

func (b *budget) ControlFrame(op byte, p []byte) error {
	if op == OpPing {
		b.pings = append(b.pings, p)
	} else {
		b.pongs++
	}
	return nil
}

func TestReader_ReadMessage(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	var in []byte
	in = AppendMasked(in, true, OpPing, []byte("p"), key)
	in = AppendMasked(in, false, OpText, []byte(`42["a`), key)
	in = AppendMasked(in, true, OpPong, nil, key) // between fragments
	in = AppendMasked(in, true, OpContinuation, []byte(`"]`), key)
	in = AppendMasked(in, true, OpBinary, make([]byte, 70000), key)
	in = AppendMasked(in, true, OpText, nil, key)
	in = AppendMasked(in, true, OpClose, nil, key)
	var r Reader
	h := &budget{}
	src := bytes.NewReader(in)
	m, err := r.ReadMessage(src, 1e6, false, h)
	if err != nil || m.Binary || string(m.Data) != `42["a"]` {
		t.Fatalf("fragmented text: got %q, %v; want 42[\"a\"]", m.Data, err)
	}
	if len(h.pings) != 1 || string(h.pings[0]) != "p" || h.pongs != 1 {
		t.Fatalf("control frames: got pings %q and %d pongs, want [p] and 1", h.pings, h.pongs)
	}
	m, err = r.ReadMessage(src, 1e6, false, h)
	if err != nil || !m.Binary || len(m.Data) != 70000 {
		t.Fatalf("binary 70000: got %d bytes, %v", len(m.Data), err)
	}
	m, err = r.ReadMessage(src, 1e6, false, h)
	if err != nil || m.Data == nil || len(m.Data) != 0 {
		t.Fatalf("empty text: got %v, %v; want a non-nil empty message", m.Data, err)
	}
	if _, err = r.ReadMessage(src, 1e6, false, h); err != ErrClosed {
		t.Fatalf("close: got %v, want ErrClosed", err)
	}
	if h.read != int64(len(in)) {
		t.Fatalf("charged %d bytes, want the %d read", h.read, len(in))
	}
	if _, err := r.ReadMessage(bytes.NewReader(AppendMasked(nil, true, OpText, make([]byte, 200), key)), 100, false, h); err != ErrTooBig {
		t.Fatalf("limit: got %v, want ErrTooBig", err)
	}
	// The caller read the first two header bytes itself.
	f := AppendMasked(nil, true, OpText, []byte("2probe"), key)
	copy(r.Header(), f[:2])
	if m, err := r.ReadMessage(bytes.NewReader(f[2:]), 100, true, h); err != nil || string(m.Data) != "2probe" {
		t.Fatalf("haveHeader: got %q, %v; want 2probe", m.Data, err)
	}
	// A frame announcing 1e6 bytes of which 100 arrived holds a buffer the
	// size of the first read chunk, not of the announcement.
	short := AppendMasked(nil, true, OpText, make([]byte, 1e6), key)[:14+100]
	m, err = r.ReadMessage(bytes.NewReader(short), 1e6, false, h)
	if !errors.Is(err, io.ErrUnexpectedEOF) || cap(m.Data) > 2*readChunk {
		t.Fatalf("short 1e6 frame: cap %d, %v; want at most %d and ErrUnexpectedEOF", cap(m.Data), err, 2*readChunk)
	}
	for name, b := range map[string][]byte{
		"unmasked":             func() []byte { b := AppendMasked(nil, true, OpText, []byte("x"), key); b[1] &^= 0x80; return b }(),
		"rsv":                  func() []byte { b := AppendMasked(nil, true, OpText, []byte("x"), key); b[0] |= 0x40; return b }(),
		"fragmented ping":      AppendMasked(nil, false, OpPing, nil, key),
		"long ping":            AppendMasked(nil, true, OpPing, make([]byte, 126), key),
		"continuation first":   AppendMasked(nil, true, OpContinuation, []byte("x"), key),
		"text inside fragment": append(AppendMasked(nil, false, OpText, []byte("x"), key), AppendMasked(nil, true, OpText, []byte("y"), key)...),
		"opcode 3":             AppendMasked(nil, true, 3, nil, key),
		"opcode 11":            AppendMasked(nil, true, 11, nil, key),
	} {
		if _, err := r.ReadMessage(bytes.NewReader(b), 100, false, &budget{}); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want ErrProtocol", name, err)
		}
	}
}

func TestReader_ChargesBeforePayload(t *testing.T) {
	key := [4]byte{5, 6, 7, 8}
	var many []byte
	for len(many) < 64<<10 {
		many = AppendMasked(many, true, OpPing, nil, key)
		many = AppendMasked(many, true, OpText, make([]byte, 1000), key)
	}
	var r Reader
	h := &budget{max: 10000}
	src := bytes.NewReader(many)
	var err error
	for range 100 {
		if _, err = r.ReadMessage(src, 1e6, false, h); err != nil {
			break
		}
	}
	if err != errBudget {
		t.Fatalf("got %v, want the handler's error", err)
	}
	// Refused at the frame that crossed the budget, before its payload.
	if read := int64(len(many)) - int64(src.Len()); read > h.max {
		t.Fatalf("read %d bytes from the source; budget %d", read, h.max)
	}
}

func TestAppendHeader(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		h := AppendHeader(nil, OpText, n)
		if len(h) != HeaderLen(n) {
			t.Errorf("AppendHeader(%d): %d bytes, HeaderLen says %d", n, len(h), HeaderLen(n))
		}
		// A client frame of the same length has the same header plus the mask bit.
		c := AppendMasked(nil, true, OpText, make([]byte, n), [4]byte{})
		c[1] &^= 0x80
		if !bytes.Equal(h, c[:len(h)]) {
			t.Errorf("AppendHeader(%d) = %x, want %x", n, h, c[:len(h)])
		}
	}
	long := string(bytes.Repeat([]byte("é"), 100)) // 200 bytes
	c := AppendClose(nil, 1008, long)
	if len(c) != 2+2+122 || c[0] != 0x88 || int(c[1]) != len(c)-2 || c[2] != 1008>>8 || c[3] != 1008&0xff {
		t.Fatalf("AppendClose with a 200-byte reason: % x", c[:4])
	}
}

func FuzzWSFrames(f *testing.F) {
	key := [4]byte{9, 8, 7, 6}
	f.Add(AppendMasked(nil, true, OpText, []byte("40"), key))
	f.Add(append(AppendMasked(nil, false, OpText, []byte("4"), key), AppendMasked(nil, true, OpContinuation, []byte("2"), key)...))
	f.Add(AppendMasked(nil, true, OpBinary, []byte{1, 2, 3}, key))
	f.Add(AppendMasked(nil, true, OpText, make([]byte, 300), key))
	f.Add(AppendMasked(nil, true, OpPing, []byte("ping"), key))
	f.Add(AppendMasked(nil, true, OpClose, []byte{3, 232}, key))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Reader
		h := &budget{}
		if len(b)%2 == 1 { // odd lengths: with a budget
			h.max = 1000
		}
		src := bytes.NewReader(b)
		for range 8 {
			m, err := r.ReadMessage(src, 4096, false, h)
			if err != nil {
				return
			}
			if h.max > 0 && h.read > h.max {
				t.Fatalf("read %d bytes, over the budget of %d", h.read, h.max)
			}
			if len(m.Data) > 4096 {
				t.Fatalf("message of %d bytes over the 4096 limit", len(m.Data))
			}
		}
	})
}
