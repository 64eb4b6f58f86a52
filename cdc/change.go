package cdc

import (
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
)

// LSN is a position in the Postgres write-ahead log. It prints as %X/%X.
type LSN = pglogrepl.LSN

// Op is the kind of a Change.
type Op uint8

// The kinds of Change.
const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	OpTruncate
	OpMessage // a transactional logical decoding message (pg_logical_emit_message)
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpTruncate:
		return "truncate"
	case OpMessage:
		return "message"
	}
	return "unknown"
}

// Column is one column of a Relation, as pgoutput describes it.
type Column struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	Key     bool // part of the replica identity

	// TypeName is "schema.name" of a user-defined type (enum, domain,
	// composite) as announced by a pgoutput Type message; empty for built-in
	// types, whose OIDs pgx knows. For a domain pgoutput names its base type
	// (e.g. "pg_catalog.int4"), which Change.Value uses to decode it.
	TypeName string
}

// Relation is a published table as last described by a pgoutput Relation message.
type Relation struct {
	ID              uint32
	Namespace       string
	Name            string
	ReplicaIdentity byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []Column
}

// ValueKind says what a tuple column carries.
type ValueKind uint8

// The kinds of column value in a tuple.
const (
	ValueAbsent    ValueKind = iota // the column is not in this tuple (old key-only tuple)
	ValueNull                       // SQL NULL
	ValueText                       // Data holds the text representation
	ValueUnchanged                  // an unchanged TOASTed value that Postgres did not send
)

// Value is one column of a Tuple. Data aliases the reader's receive buffer and is
// only valid while the Change is being handled.
type Value struct {
	Kind ValueKind
	Data []byte
}

// Tuple is a row image, indexed like Relation.Columns.
type Tuple []Value

// Change is one decoded change of a committed transaction.
//
// For OpUpdate and OpDelete, Old is the old row image when Postgres sent one
// (REPLICA IDENTITY FULL sends the whole row; DEFAULT/INDEX send key columns only
// on delete or key change) and nil otherwise. Under REPLICA IDENTITY FULL the
// Reader fills ValueUnchanged columns of New from Old, so unchanged TOASTed
// values never turn into nulls; without an old image they stay ValueUnchanged
// and consumers must not invent them.
type Change struct {
	Op       Op
	Relation *Relation // nil for OpMessage
	Old, New Tuple

	// Truncated lists the relations of an OpTruncate (Relation is the first).
	Truncated []*Relation

	// Prefix and Content of an OpMessage.
	Prefix  string
	Content []byte

	XID        uint32
	CommitLSN  LSN       // the transaction's final (commit) LSN, known from its Begin
	CommitTime time.Time // the transaction's commit time
	Index      uint32    // position of this change within its transaction, from 0

	// types decodes column values for Value; set by the Reader (one map per
	// Reader, used only by its goroutine).
	types *pgtype.Map
}

// Column returns the index of the named column in c.Relation, or -1.
func (c *Change) Column(name string) int {
	if c.Relation == nil {
		return -1
	}
	for i := range c.Relation.Columns {
		if c.Relation.Columns[i].Name == name {
			return i
		}
	}
	return -1
}
