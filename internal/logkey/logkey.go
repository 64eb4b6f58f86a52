// Package logkey holds the log attribute keys of walcast, one name for one
// thing in every package's log lines (the list the README gives operators).
// It holds only constants and imports nothing, so that cdc and hub, which
// import no other walcast package, can use it too.
package logkey

// Attribute keys.
const (
	Component = "component"
	Slot      = "slot"
	LSN       = "lsn" // printed as %X/%X
	XID       = "xid"
	Relation  = "relation"
	Conn      = "conn_id" // an Engine.IO session (a client connection)
	UserID    = "user_id"
	Namespace = "namespace"
	Room      = "room"
	Event     = "event"
	Reason    = "reason"
	Kind      = "kind"
	Role      = "role"
	Err       = "err"     // the error being logged
	Attempt   = "attempt" // 1 at the first failure of a step that is retried
	Remote    = "remote"  // a client's address (host:port, or the IP alone)
	Addr      = "addr"    // an address walcast listens on or dials
	Count     = "count"
)
