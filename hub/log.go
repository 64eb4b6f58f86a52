package hub

// Log attribute keys used by the hub (STYLE.md: one set of keys).
const (
	logKeyConn      = "conn_id" // Engine.IO session id
	logKeyReason    = "reason"
	logKeyKind      = "kind"
	logKeyNamespace = "namespace"
	logKeyEvent     = "event"
)
