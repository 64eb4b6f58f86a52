// Package cdc turns a Postgres database's committed changes into walcast events.
//
// Data flows one way:
//
//	Postgres --pgoutput--> Reader --Change--> Mapper --Event--> Sink (the bus)
//
// The Reader streams a durable logical replication slot with pgoutput, decodes
// Relation, Type, Begin, Insert, Update, Delete, Truncate, logical Message and
// Commit messages, and hands each row of a committed transaction on as it
// arrives (pgoutput only sends committed transactions), so memory does not grow
// with transaction size. It acknowledges a transaction's end LSN to Postgres
// only after the Sink has accepted every event of that transaction, and never
// past ReaderConfig.AckLimit when one is set (a caller that rebuilds a buffer
// from the slot after a restart holds the slot back to the oldest event it
// still needs).
//
// The Mapper is a pure function of changes plus lookup state (variant → product,
// product → name and seller, running order metrics); it knows nothing of sockets.
//
// Goroutine safety: a Reader is driven by one goroutine (its Run). A Mapper's
// Map runs on the pipeline's goroutine; its MetricsEvent, CurrentMetrics,
// AppendRowJSON and Stats may be called from any goroutine. A Change and the
// byte slices it refers to are only valid until the handler it was passed to
// returns; copy what you keep.
//
// Context: Run returns when its context ends; an in-flight Publish is cancelled
// with it and the transaction is not acknowledged, so Postgres sends it again.
package cdc
