package hub

import (
	"encoding/json"
	"time"
)

// Broadcast is one event for many sockets; it is encoded once whatever the
// number of receivers. The hub does not modify it; callers must not modify it
// after passing it to Server.Broadcast (the RecoveryStore may keep it).
type Broadcast struct {
	Namespace string   // "" = "/"
	Rooms     []string // empty = every socket of the namespace
	Except    []string // rooms to skip (each socket id is also a room)
	Event     string
	// Args holds each argument's JSON; it may contain
	// {"_placeholder":true,"num":i} referring to Attachments.
	Args        []json.RawMessage
	Attachments [][]byte  // binary arguments (BINARY_EVENT)
	Offset      string    // recovery offset appended as the last argument; "" = none
	CommitTime  time.Time // source commit time, for the commit-to-send histogram
}
