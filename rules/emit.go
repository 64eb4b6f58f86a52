package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/walcast/walcast/cdc"
)

// Limits on walcast.emit messages: a message over them is dropped and
// counted, so one bad emit cannot flood every client of a room.
const (
	maxRoomLen   = 256
	maxEventLen  = 256
	MaxEmitBytes = 1 << 20 // content of one walcast.emit message (1 MiB)
)

type emitMessage struct {
	Room    *string         `json:"room"`
	Event   *string         `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

// mapMessageLocked maps a logical message: prefix "walcast" is a
// walcast.emit; other prefixes (the heartbeat, other apps) give nothing.
func (en *Engine) mapMessageLocked(dst []cdc.Event, c *cdc.Change) []cdc.Event {
	if c.Prefix != cdc.MessagePrefix || (en.r.File.Emit != nil && !*en.r.File.Emit) {
		return dst
	}
	room, event, payload, err := parseEmit(c.Content)
	if err != nil {
		en.badMessages.Add(1)
		en.log.Warn("dropped a bad walcast.emit message", "lsn", c.CommitLSN.String(), "xid", c.XID, "reason", err.Error())
		return dst
	}
	return append(dst, cdc.Event{
		ID:         cdc.EventID{LSN: c.CommitLSN, Index: c.Index * maxEventsPerOp},
		Room:       room,
		Name:       event,
		Payload:    append(json.RawMessage(nil), payload...),
		CommitTime: c.CommitTime,
	})
}

// parseEmit validates a walcast.emit message's content.
func parseEmit(content []byte) (room, event string, payload []byte, err error) {
	if len(content) > MaxEmitBytes {
		return "", "", nil, fmt.Errorf("content is %d bytes, more than %d", len(content), MaxEmitBytes)
	}
	var msg emitMessage
	if err := json.Unmarshal(content, &msg); err != nil {
		return "", "", nil, fmt.Errorf("content is not a JSON object: %w", err)
	}
	if msg.Room == nil || strings.TrimSpace(*msg.Room) == "" {
		return "", "", nil, errors.New(`"room" must be a non-empty string`)
	}
	if msg.Event == nil || strings.TrimSpace(*msg.Event) == "" {
		return "", "", nil, errors.New(`"event" must be a non-empty string`)
	}
	room, event = *msg.Room, *msg.Event
	if len(room) > maxRoomLen || strings.ContainsFunc(room, isControl) {
		return "", "", nil, fmt.Errorf("room %.40q is longer than %d bytes or has control characters", room, maxRoomLen)
	}
	if len(event) > maxEventLen || strings.ContainsFunc(event, isControl) {
		return "", "", nil, fmt.Errorf("event %.40q is longer than %d bytes or has control characters", event, maxEventLen)
	}
	if reservedEventNames[event] {
		return "", "", nil, fmt.Errorf("event name %q is reserved by Socket.IO", event)
	}
	payload = msg.Payload
	if len(payload) == 0 {
		payload = []byte("null")
	}
	return room, event, payload, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
