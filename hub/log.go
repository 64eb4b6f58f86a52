package hub

import "github.com/walcast/walcast/internal/logkey"

// Log attribute keys used by the hub.
const (
	logKeyConn      = logkey.Conn // Engine.IO session id
	logKeyReason    = logkey.Reason
	logKeyKind      = logkey.Kind
	logKeyNamespace = logkey.Namespace
	logKeyEvent     = logkey.Event
	logKeyErr       = logkey.Err
)
