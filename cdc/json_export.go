package cdc

// ParseInt parses a decimal integer column value (an optional sign and at
// most 20 bytes in all) without allocating; false when it is not one or
// does not fit an int64.
func ParseInt(b []byte) (int64, bool) { return parseInt(b) }

// AppendValueJSON appends one column value as to_jsonb would encode a value
// of type oid (domains must be resolved to their base type by the caller):
// numbers as numbers, booleans, json/jsonb embedded, timestamps in to_jsonb's
// form, everything else as a string; NULL and values not sent as null.
func AppendValueJSON(dst []byte, oid uint32, v Value) []byte { return appendValueJSON(dst, oid, v) }

// AppendRowJSON appends row t of rel as to_jsonb(row) prints it. oids and
// elems, when not nil, hold each column's base type and array element type
// (0 for non-arrays); see ArrayElem.
func AppendRowJSON(dst []byte, rel *Relation, oids, elems []uint32, t Tuple) []byte {
	return appendRowJSON(dst, rel, oids, elems, t)
}

// ArrayElem returns the element type of a built-in array type, or 0.
func ArrayElem(oid uint32) uint32 { return arrayElems[oid] }

// ParseEmit validates the content of a walcast.emit logical message and
// returns its room, event name and payload (a JSON value; "null" when
// absent). The limits are MaxEmitBytes for the content and 256 bytes, with
// no control characters, for the room and the event name; Socket.IO's
// reserved event names are refused.
func ParseEmit(content []byte) (room, event string, payload []byte, err error) {
	return parseEmit(content)
}
