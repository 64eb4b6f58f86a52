package rooms

import "github.com/walcast/walcast/internal/logkey"

// Log attribute keys used by this package (internal/logkey: the same
// vocabulary as the hub).
const (
	LogKeyComponent = logkey.Component
	LogKeyUserID    = logkey.UserID
	LogKeySocket    = logkey.Conn
	LogKeyRoom      = logkey.Room
	LogKeyEvent     = logkey.Event
	LogKeyReason    = logkey.Reason
	LogKeyRole      = logkey.Role
	LogKeyError     = logkey.Err
)
