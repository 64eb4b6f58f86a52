package rules

import (
	"encoding/json"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/logkey"
)

// mapMessageLocked maps a logical message: prefix "walcast" is a
// walcast.emit, delivered only if its signature verifies (Load reads the
// key); other prefixes (the heartbeat, other apps) give nothing.
func (en *Engine) mapMessageLocked(dst []cdc.Event, c *cdc.Change) []cdc.Event {
	if c.Prefix != cdc.MessagePrefix || (en.r.File.Emit != nil && !*en.r.File.Emit) {
		return dst
	}
	body, ok := en.verify.Verify(en.log, c)
	if !ok {
		return dst
	}
	room, event, payload, err := cdc.ParseEmit(body)
	if err != nil {
		en.badMessages.Add(1)
		en.log.Warn("dropped a bad walcast.emit message", logkey.LSN, c.CommitLSN.String(), logkey.XID, c.XID, logkey.Reason, err.Error())
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
