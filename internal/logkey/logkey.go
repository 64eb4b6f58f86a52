// Package logkey holds the log attribute keys of walcast, one name for one
// thing in every package's log lines (the list the README gives operators).
// It holds only constants.
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
	Err       = "err" // the error being logged
)
