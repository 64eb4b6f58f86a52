package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/jsonw"
	"golang.org/x/sys/unix"
)

// This file is the load tool's own minimal WebSocket client (RFC 6455, client
// side) and its use of hub/packet. It handles exactly what a subscribed
// storefront client sees: the upgrade, the EIO open packet, CONNECT with an auth
// token, one acked subscribe, server pings, events and close frames. It does no
// per-frame allocation on the delivery path: there an event is recognised by
// its bytes (parseStockEvent) instead of packet.ParseSocket, which validates
// the whole JSON payload and allocates, and would make the tool's CPU per
// delivery rival the server's. The WebSocket frames are its own: the hub's
// frame code is internal to the hub and server side (unmasked writes).

// Frame opcodes.
const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// errFrameTooLarge is returned for a frame whose length cannot be held.
var errFrameTooLarge = errors.New("websocket frame too large")

// maskKey is the client masking key. RFC 6455 wants it unpredictable so that
// proxies cannot be confused; one random key per process is enough on loopback
// and keeps the hot path free of randomness.
var maskKey [4]byte

func init() { _, _ = rand.Read(maskKey[:]) }

// appendClientFrame appends one masked, final frame with opcode op.
func appendClientFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, maskKey[:]...)
	for i, b := range payload {
		dst = append(dst, b^maskKey[i&3])
	}
	return dst
}

// pongFrame is the Engine.IO pong "3" as a masked text frame, built once.
var pongFrame = appendClientFrame(nil, opText, []byte{packet.EnginePong})

// isPing reports whether the text frame payload p is an Engine.IO ping.
func isPing(p []byte) bool { return len(p) == 1 && p[0] == packet.EnginePing }

// parseFrame reads one server frame from b. It returns the opcode, the payload
// (a sub-slice of b, valid until b is reused) and the bytes consumed; n == 0
// means b holds no complete frame yet.
func parseFrame(b []byte, limit int) (op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	op = b[0] & 0x0f
	masked := b[1]&0x80 != 0
	l := int(b[1] & 0x7f)
	h := 2
	switch l {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, nil
		}
		l = int(binary.BigEndian.Uint16(b[2:]))
		h = 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u > uint64(limit) {
			return 0, nil, 0, fmt.Errorf("%w: %d bytes", errFrameTooLarge, u)
		}
		l = int(u)
		h = 10
	}
	if l > limit {
		return 0, nil, 0, fmt.Errorf("%w: %d bytes", errFrameTooLarge, l)
	}
	var key []byte
	if masked {
		if len(b) < h+4 {
			return 0, nil, 0, nil
		}
		key = b[h : h+4]
		h += 4
	}
	if len(b) < h+l {
		return 0, nil, 0, nil
	}
	payload = b[h : h+l]
	if masked {
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return op, payload, h + l, nil
}

// eventPrefix is what a product:stock-updated EVENT on namespace "/" starts
// with: 42["product:stock-updated",
var eventPrefix = func() []byte {
	b := packet.AppendEventMessage(nil, packet.SocketEvent, 0, "/", -1, "product:stock-updated", nil)
	return append(b[:len(b)-1], ',') // the arguments follow the name
}()

var availableKey = []byte(`"available":`)

// parseStockEvent returns the "available" number of a product:stock-updated
// event payload (an Engine.IO message, e.g. 42["product:stock-updated",{...}]).
func parseStockEvent(p []byte) (int64, bool) {
	if !bytes.HasPrefix(p, eventPrefix) {
		return 0, false
	}
	i := bytes.Index(p[len(eventPrefix):], availableKey)
	if i < 0 {
		return 0, false
	}
	p = p[len(eventPrefix)+i+len(availableKey):]
	for len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	var v int64
	neg := false
	if len(p) > 0 && p[0] == '-' {
		neg = true
		p = p[1:]
	}
	j := 0
	for ; j < len(p) && p[j] >= '0' && p[j] <= '9'; j++ {
		v = v*10 + int64(p[j]-'0')
	}
	if j == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// dialOptions configure one blocking handshake.
type dialOptions struct {
	Server netip.AddrPort
	Source netip.Addr // 127.0.0.x source address; invalid = any
	Host   string     // Host header
	Path   string     // e.g. /socket.io/
	Token  string
	Room   string // product id for subscribe:product; "" = no subscribe
	// SmallRcvBuf shrinks the socket's receive buffer to the minimum, so that a
	// client that never reads (a stuck browser tab) pushes back on the server
	// after a few KB instead of the default 128 KB.
	SmallRcvBuf bool
	Timeout     time.Duration
}

// dialResult is a connected, subscribed client socket, still blocking.
type dialResult struct {
	fd   int
	rest []byte // bytes read past the subscribe ack, to be parsed by the poller
}

// handshakeError says which step failed.
type handshakeError struct {
	Step string
	Err  error
}

func (e *handshakeError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *handshakeError) Unwrap() error { return e.Err }

// dial opens a TCP socket with raw syscalls (so that the fd is never registered
// with the Go netpoller and can go to our own epoll), upgrades it to a WebSocket,
// reads the Engine.IO open packet, sends the Socket.IO CONNECT with auth.token,
// waits for the CONNECT reply, then emits subscribe:product with an ack and waits
// for that ack. Server pings met on the way are answered.
func dial(o dialOptions) (_ dialResult, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return dialResult{}, &handshakeError{"socket", err}
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	tv := unix.NsecToTimeval(o.Timeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if o.SmallRcvBuf {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1024)
	}
	if o.Source.IsValid() {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: o.Source.As4()}); err != nil {
			return dialResult{}, &handshakeError{"bind " + o.Source.String(), err}
		}
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: o.Server.Addr().As4(), Port: int(o.Server.Port())}); err != nil {
		return dialResult{}, &handshakeError{"connect", err}
	}
	var keyRaw [16]byte
	_, _ = rand.Read(keyRaw[:])
	req := "GET " + o.Path + "?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + o.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(keyRaw[:]) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if err := writeAll(fd, []byte(req)); err != nil {
		return dialResult{}, &handshakeError{"write upgrade", err}
	}
	buf := make([]byte, 0, 1024)
	// HTTP response head.
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
				line, _, _ := bytes.Cut(buf, []byte("\r\n"))
				return dialResult{}, &handshakeError{"upgrade", fmt.Errorf("got %q", line)}
			}
			buf = buf[:copy(buf, buf[i+4:])]
			break
		}
		if buf, err = readMore(fd, buf); err != nil {
			return dialResult{}, &handshakeError{"read upgrade", err}
		}
	}
	// step 0: wait for EIO open; 1: CONNECT reply; 2: subscribe ack.
	step := 0
	stepName := [...]string{"engine.io open", "socket.io connect", "subscribe ack"}
	var out []byte
	for {
		op, p, n, perr := parseFrame(buf, 1<<20)
		if perr != nil {
			return dialResult{}, &handshakeError{stepName[step], perr}
		}
		if n == 0 {
			if buf, err = readMore(fd, buf); err != nil {
				return dialResult{}, &handshakeError{stepName[step], err}
			}
			continue
		}
		out = out[:0]
		switch op {
		case opClose:
			return dialResult{}, &handshakeError{stepName[step], fmt.Errorf("server closed the websocket: %q", p)}
		case opPing:
			out = appendClientFrame(out, opPong, p)
		case opText:
			if isPing(p) {
				out = append(out, pongFrame...)
				break
			}
			if step == 0 && len(p) > 0 && p[0] == packet.EngineOpen {
				out = appendClientFrame(out, opText, connectPacket(o.Token))
				step = 1
				break
			}
			sp, ok := socketPacket(p)
			if !ok {
				break
			}
			switch {
			case step == 1 && sp.Type == packet.SocketConnect:
				if o.Room == "" {
					buf = buf[:copy(buf, buf[n:])]
					return dialResult{fd: fd, rest: buf}, nil
				}
				out = appendClientFrame(out, opText, subscribePacket(o.Room))
				step = 2
			case step == 1 && sp.Type == packet.SocketConnectError:
				return dialResult{}, &handshakeError{stepName[step], fmt.Errorf("connect_error %s", sp.Data)}
			case step == 2 && sp.Type == packet.SocketAck && sp.ID == subscribeAckID:
				if bytes.Contains(sp.Data, []byte(`"ok":false`)) {
					return dialResult{}, &handshakeError{stepName[step], fmt.Errorf("refused: %s", sp.Data)}
				}
				buf = buf[:copy(buf, buf[n:])]
				return dialResult{fd: fd, rest: buf}, nil
			case step == 1 && sp.Type == packet.SocketDisconnect:
				return dialResult{}, &handshakeError{stepName[step], fmt.Errorf("server sent DISCONNECT")}
			}
		}
		if len(out) > 0 {
			if err := writeAll(fd, out); err != nil {
				return dialResult{}, &handshakeError{stepName[step], err}
			}
		}
		buf = buf[:copy(buf, buf[n:])]
	}
}

// subscribeAckID is the ack id of the one subscribe:product a client sends.
const subscribeAckID = 1

// connectPacket is the Engine.IO message carrying a CONNECT to "/" with
// auth {"token": token}.
func connectPacket(token string) []byte {
	b := packet.AppendSocketHeader([]byte{packet.EngineMessage}, packet.SocketConnect, 0, "/", -1)
	b = append(b, `{"token":`...)
	b = jsonw.AppendString(b, token)
	return append(b, '}')
}

// subscribePacket is the Engine.IO message carrying subscribe:product for
// product id with ack id subscribeAckID.
func subscribePacket(id string) []byte {
	return packet.AppendEventMessage(nil, packet.SocketEvent, 0, "/", subscribeAckID, "subscribe:product",
		[]json.RawMessage{jsonw.AppendString(nil, id)})
}

// socketPacket parses the Engine.IO message p of the handshake as a
// Socket.IO packet; ok is false for anything else.
func socketPacket(p []byte) (packet.Socket, bool) {
	e, err := packet.ParseEngine(p)
	if err != nil || e.Type != packet.EngineMessage {
		return packet.Socket{}, false
	}
	sp, err := packet.ParseSocket(e.Data)
	return sp, err == nil
}

func readMore(fd int, buf []byte) ([]byte, error) {
	if cap(buf)-len(buf) < 512 {
		nb := make([]byte, len(buf), 2*cap(buf)+512)
		copy(nb, buf)
		buf = nb
	}
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n == 0 {
			return buf, errors.New("connection closed by server")
		}
		return buf[:len(buf)+n], nil
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			// Non-blocking socket with a full send buffer: the server is not
			// reading. Our writes are tiny pongs; give up on this one.
			return err
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
