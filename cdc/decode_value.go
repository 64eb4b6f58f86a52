package cdc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// Errors returned by Change.Value for columns that carry no value.
var (
	// ErrValueUnchanged: an unchanged TOASTed value that Postgres did not send
	// and that could not be filled from a full old row image.
	ErrValueUnchanged = errors.New("cdc: unchanged TOASTed value was not sent")
	// ErrValueAbsent: the column is not part of this row image (a key-only old tuple).
	ErrValueAbsent = errors.New("cdc: column not in row image")
)

// Value decodes column i of tuple t (c.Old or c.New) to a Go value through
// pgx's type map: int64 for int8, string for text, time.Time for timestamps,
// pgtype.Numeric for numeric, map/slice values for json/jsonb and so on. Types
// the map does not know (enums, domains, other user-defined types) come back as
// their text representation, a string. SQL NULL is (nil, nil). A column with
// no value gives ErrValueUnchanged or ErrValueAbsent.
//
// Value allocates; hot paths that only need the text can read t[i].Data.
func (c *Change) Value(t Tuple, i int) (any, error) {
	if i < 0 || i >= len(t) {
		return nil, fmt.Errorf("cdc: column %d out of range (tuple has %d)", i, len(t))
	}
	v := t[i]
	switch v.Kind {
	case ValueNull:
		return nil, nil
	case ValueUnchanged:
		return nil, ErrValueUnchanged
	case ValueAbsent:
		return nil, ErrValueAbsent
	}
	var oid uint32
	var typeName string
	if c.Relation != nil && i < len(c.Relation.Columns) {
		oid = c.Relation.Columns[i].TypeOID
		typeName = c.Relation.Columns[i].TypeName
	}
	m := c.types
	if m == nil {
		m = pgtype.NewMap()
		c.types = m
	}
	return decodeText(m, oid, typeName, v.Data)
}

// decodeText decodes a text-format value of type oid, falling back to the
// built-in type typeName names (a domain's base type), then to the text
// itself for types m does not know or cannot decode (enums).
func decodeText(m *pgtype.Map, oid uint32, typeName string, data []byte) (any, error) {
	t, ok := m.TypeForOID(oid)
	if !ok && strings.HasPrefix(typeName, "pg_catalog.") {
		t, ok = m.TypeForName(strings.TrimPrefix(typeName, "pg_catalog."))
	}
	if ok {
		v, err := t.Codec.DecodeValue(m, t.OID, pgtype.TextFormatCode, data)
		if err == nil {
			return v, nil
		}
		// A value the codec rejects is still worth passing on as text.
	}
	return string(data), nil
}
