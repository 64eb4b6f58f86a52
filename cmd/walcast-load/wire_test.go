package main

import (
	"bytes"
	"testing"
)

// serverFrame builds an unmasked server frame.
func serverFrame(op byte, p []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

func TestParseFrame(t *testing.T) {
	ev := []byte(`42["product:stock-updated",{"variantId":"v","available":7,"timestamp":1}]`)
	big := bytes.Repeat([]byte("x"), 70000)
	stream := append(append(append(serverFrame(opText, []byte("2")), serverFrame(opText, ev)...), serverFrame(opText, big)...), serverFrame(opClose, nil)...)
	var ops []byte
	var payloads [][]byte
	b := stream
	for len(b) > 0 {
		op, p, n, err := parseFrame(b, 1<<20)
		if err != nil || n == 0 {
			t.Fatalf("parseFrame: n=%d err=%v with %d bytes left", n, err, len(b))
		}
		ops = append(ops, op)
		payloads = append(payloads, p)
		b = b[n:]
	}
	if !bytes.Equal(ops, []byte{opText, opText, opText, opClose}) {
		t.Fatalf("ops = %v", ops)
	}
	if !bytes.Equal(payloads[1], ev) || len(payloads[2]) != len(big) {
		t.Fatalf("payloads differ")
	}
	// Every strict prefix is incomplete, never an error.
	for i := range len(stream[:100]) {
		if _, _, n, err := parseFrame(stream[2:2+i], 1<<20); err != nil || (n != 0 && n > i) {
			t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
		}
	}
	if _, _, _, err := parseFrame(serverFrame(opText, big), 1000); err == nil {
		t.Fatalf("frame over the limit: got no error")
	}
}

func TestClientFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{'a'}, n)
		f := appendClientFrame(nil, opText, p)
		op, got, m, err := parseFrame(f, 1<<20) // parseFrame unmasks masked frames too
		if err != nil || m != len(f) || op != opText || !bytes.Equal(got, p) {
			t.Fatalf("len %d: op=%d n=%d/%d err=%v equal=%v", n, op, m, len(f), err, bytes.Equal(got, p))
		}
	}
}

// FuzzParseFrame feeds arbitrary server bytes to the frame and event parsers:
// they must never panic, never consume more than they were given, and an
// incomplete frame must stay incomplete when split.
func FuzzParseFrame(f *testing.F) {
	f.Add(serverFrame(opText, []byte(`42["product:stock-updated",{"variantId":"v","available":7,"timestamp":1}]`)))
	f.Add(serverFrame(opText, []byte("2")))
	f.Add(serverFrame(opClose, []byte{3, 232}))
	f.Add([]byte{0x81, 126, 0xff})
	f.Add([]byte{0x81, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := append([]byte(nil), b...)
		for len(buf) > 0 {
			_, p, n, err := parseFrame(buf, 1<<20)
			if err != nil || n == 0 {
				break
			}
			if n > len(buf) || len(p) > n {
				t.Fatalf("consumed %d of %d, payload %d", n, len(buf), len(p))
			}
			parseStockEvent(p)
			buf = buf[n:]
		}
		parseStockEvent(b)
	})
}

func TestHandshakePackets(t *testing.T) {
	if got, want := string(connectPacket("a.b.c")), `40{"token":"a.b.c"}`; got != want {
		t.Errorf("connectPacket = %s, want %s", got, want)
	}
	if got, want := string(subscribePacket("p-1")), `421["subscribe:product","p-1"]`; got != want {
		t.Errorf("subscribePacket = %s, want %s", got, want)
	}
	if got, want := string(eventPrefix), `42["product:stock-updated",`; got != want {
		t.Errorf("eventPrefix = %s, want %s", got, want)
	}
	sp, ok := socketPacket([]byte(`431[{"ok":true}]`))
	if !ok || sp.ID != subscribeAckID || string(sp.Data) != `[{"ok":true}]` {
		t.Errorf("socketPacket(431[…]) = %+v, %v", sp, ok)
	}
	if !isPing([]byte("2")) || isPing([]byte("2probe")) {
		t.Error("isPing: wrong answer for 2 or 2probe")
	}
}
