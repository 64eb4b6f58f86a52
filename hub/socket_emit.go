package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/jsonw"
)

// marshalArg encodes one argument as JSON like JSON.stringify (no HTML
// escaping); json.RawMessage passes through after validation.
func marshalArg(v any) ([]byte, error) {
	if r, ok := v.(json.RawMessage); ok {
		if !json.Valid(r) {
			return nil, fmt.Errorf("hub: argument is not valid JSON")
		}
		return r, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("hub: encode argument: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// encodeArgs turns Emit/Ack arguments into JSON arguments and attachments:
// json.RawMessage passes through, []byte becomes a binary attachment, the
// rest is JSON-encoded.
func encodeArgs(args []any) ([]json.RawMessage, [][]byte, error) {
	raw := make([]json.RawMessage, len(args))
	var atts [][]byte
	for i, a := range args {
		if b, ok := a.([]byte); ok {
			raw[i] = packet.AppendPlaceholder(nil, len(atts))
			atts = append(atts, b)
			continue
		}
		r, err := marshalArg(a)
		if err != nil {
			return nil, nil, err
		}
		raw[i] = r
	}
	if len(atts) > packet.MaxAttachments {
		return nil, nil, fmt.Errorf("hub: %d binary arguments, limit %d", len(atts), packet.MaxAttachments)
	}
	return raw, atts, nil
}

func attachmentFrames(atts [][]byte) []frame {
	fs := make([]frame, len(atts))
	for i, a := range atts {
		fs[i] = frame{data: a, op: opBinary}
	}
	return fs
}

// encodeBroadcast encodes b once: the text frame and its attachment frames.
// With recovery on (withOffset) the offset is always the last argument.
func encodeBroadcast(b *Broadcast, withOffset bool, offset string) (frame, []frame) {
	typ := packet.SocketEvent
	if len(b.Attachments) > 0 {
		typ = packet.SocketBinaryEvent
	}
	size := 16 + len(b.Namespace) + len(b.Event) + len(offset)
	for _, a := range b.Args {
		size += len(a) + 1
	}
	args := b.Args
	if withOffset {
		args = append(args[:len(args):len(args)], offsetArg(offset))
	}
	text := packet.AppendEventMessage(make([]byte, 0, size), typ, len(b.Attachments), packet.Namespace(b.Namespace), -1,
		b.Event, args)
	return frame{data: text, op: opText}, attachmentFrames(b.Attachments)
}

// offsetFor returns the offset appended to an event without ack when
// recovery is on: every such event must end with a string or the client would
// take the application's last string argument as its offset.
func (n *Namespace) offsetFor(own string) string {
	if own != "" || n.srv.cfg.Recovery == nil {
		return own
	}
	if p := n.lastOffset.Load(); p != nil {
		return *p
	}
	return ""
}

func offsetArg(offset string) json.RawMessage {
	return jsonw.AppendString(nil, offset)
}

func (s *Socket) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Emit sends an event to this socket. json.RawMessage arguments pass through,
// []byte becomes a binary attachment, anything else is json.Marshal'ed (with
// JavaScript escaping rules). With recovery on, the namespace's latest offset
// is appended as the last argument, as socket.io does.
func (s *Socket) Emit(event string, args ...any) error {
	raw, atts, err := encodeArgs(args)
	if err != nil {
		return err
	}
	return s.emitRaw(event, raw, atts, -1)
}

// EmitRaw sends an event whose arguments are already JSON; args may contain
// {"_placeholder":true,"num":i} referring to attachments (as in a received
// Message, so an echo is EmitRaw(name, m.Args, m.Attachments)).
func (s *Socket) EmitRaw(event string, args []json.RawMessage, attachments [][]byte) error {
	return s.emitRaw(event, args, attachments, -1)
}

func (s *Socket) emitRaw(event string, raw []json.RawMessage, atts [][]byte, id int64) error {
	if packet.Reserved(event) {
		return fmt.Errorf("hub: %q is a reserved event name", event)
	}
	if s.isClosed() {
		return ErrDisconnected
	}
	typ := packet.SocketEvent
	if len(atts) > 0 {
		typ = packet.SocketBinaryEvent
	}
	evArgs := raw
	if id < 0 && s.nsp.srv.cfg.Recovery != nil {
		// The last argument must be an offset string even before any exists.
		raw = append(raw[:len(raw):len(raw)], offsetArg(s.nsp.offsetFor("")))
	}
	text := packet.AppendEventMessage(nil, typ, len(atts), s.nsp.name, id, event, raw)
	fs := append([]frame{{data: text, op: opText}}, attachmentFrames(atts)...)
	if !s.c.enqueue(fs...) {
		return ErrDisconnected
	}
	s.nsp.srv.m.eventOut(event, 1)
	s.observeEventOut(event, evArgs)
	return nil
}

// EmitWithAck sends an event asking for an acknowledgement and waits for the
// client's answer until ctx ends. Binary attachments of the answer are
// dropped (placeholders stay in the returned arguments); use EmitWithAckRaw
// to get them.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]json.RawMessage, error) {
	raw, atts, err := encodeArgs(args)
	if err != nil {
		return nil, err
	}
	m, err := s.EmitWithAckRaw(ctx, event, raw, atts)
	if err != nil {
		return nil, err
	}
	return m.Args, nil
}

// EmitWithAckRaw is EmitWithAck with JSON arguments (placeholders referring
// to attachments allowed); the client's answer is returned as a Message
// (Event empty) with its arguments and binary attachments.
func (s *Socket) EmitWithAckRaw(ctx context.Context, event string, raw []json.RawMessage, atts [][]byte) (*Message, error) {
	ch := make(chan ackReply, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrDisconnected
	}
	id := s.nextAck
	s.nextAck++
	if s.acks == nil {
		s.acks = make(map[int64]chan ackReply)
	}
	s.acks[id] = ch
	s.mu.Unlock()
	if err := s.emitRaw(event, raw, atts, id); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrDisconnected
		}
		return &Message{Args: r.args, Attachments: r.attachments, s: s, ackID: -1}, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.acks, id)
		s.mu.Unlock()
		return nil, fmt.Errorf("hub: wait for ack of %q: %w", event, ctx.Err())
	}
}

func (s *Socket) sendAck(id int64, args []any) error {
	raw, atts, err := encodeArgs(args)
	if err != nil {
		return err
	}
	return s.sendAckRaw(id, raw, atts)
}

func (s *Socket) sendAckRaw(id int64, raw []json.RawMessage, atts [][]byte) error {
	if s.isClosed() {
		return ErrDisconnected
	}
	typ := packet.SocketAck
	if len(atts) > 0 {
		typ = packet.SocketBinaryAck
	}
	text := packet.AppendEventMessage(nil, typ, len(atts), s.nsp.name, id, "", raw)
	fs := append([]frame{{data: text, op: opText}}, attachmentFrames(atts)...)
	if !s.c.enqueue(fs...) {
		return ErrDisconnected
	}
	return nil
}

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	changed := false
	for _, r := range rooms {
		if r == s.id {
			continue
		}
		if _, ok := s.rooms[r]; ok {
			continue
		}
		if s.rooms == nil {
			s.rooms = make(map[string]struct{}, len(rooms))
		}
		s.rooms[r] = struct{}{}
		s.nsp.rooms.join(s, r)
		s.observeJoinLocked(r)
		changed = true
	}
	if changed {
		s.sessionChangedLocked(true, false, s.roomListLocked())
	}
}

// Leave removes the socket from rooms.
func (s *Socket) Leave(rooms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, r := range rooms {
		if _, ok := s.rooms[r]; !ok {
			continue
		}
		delete(s.rooms, r)
		s.nsp.rooms.leave(s, r)
		s.observeLeaveLocked(r)
		changed = true
	}
	if changed && !s.closed {
		s.sessionChangedLocked(true, false, s.roomListLocked())
	}
}

// Rooms returns the socket's rooms, its own id first.
func (s *Socket) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rooms)+1)
	out = append(out, s.id)
	for r := range s.rooms {
		out = append(out, r)
	}
	return out
}

// Disconnect sends the namespace DISCONNECT packet and closes the socket; the
// client does not reconnect on its own ("io server disconnect"). The
// Engine.IO connection stays open for other namespaces.
func (s *Socket) Disconnect() {
	// Closed first, then told: a client that drops its connection as soon
	// as it reads the DISCONNECT would otherwise close the socket as
	// "transport close" before this call does.
	if !s.onClose(ReasonServerNamespace) {
		return
	}
	b := []byte{packet.EngineMessage}
	b = packet.AppendSocketHeader(b, packet.SocketDisconnect, 0, s.nsp.name, -1)
	s.c.enqueue(frame{data: b, op: opText})
}

// CloseTransport drops the whole Engine.IO connection without a DISCONNECT
// packet (queued frames are still flushed); the client reconnects on its own.
// reason labels the disconnect metric and OnDisconnect.
func (s *Socket) CloseTransport(reason Reason) {
	if reason == "" {
		reason = ReasonForcedClose
	}
	s.c.close(reason, false)
}
