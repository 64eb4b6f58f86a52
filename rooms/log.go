package rooms

// Log attribute keys used by this package (shared vocabulary with the hub).
const (
	LogKeyComponent = "component"
	LogKeyUserID    = "user_id"
	LogKeySocket    = "conn_id"
	LogKeyRoom      = "room"
	LogKeyEvent     = "event"
	LogKeyReason    = "reason"
	LogKeyRole      = "role"
	LogKeyError     = "error"
)
