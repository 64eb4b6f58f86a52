package packet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// MaxAttachments bounds the attachments of one binary packet (the reference
// parser's default).
const MaxAttachments = 10

// maxPlaceholderDepth bounds the nesting ValidatePlaceholders walks.
const maxPlaceholderDepth = 64

// AppendPlaceholder appends the JSON that stands for binary attachment i in a
// BINARY_EVENT or BINARY_ACK: {"_placeholder":true,"num":i}.
func AppendPlaceholder(dst []byte, i int) []byte {
	dst = append(dst, `{"_placeholder":true,"num":`...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, '}')
}

// ValidatePlaceholders checks, like socket.io-parser's reconstructPacket,
// that every {"_placeholder":true,"num":n} in a binary packet's payload has
// an integer 0 <= n < attachments.
func ValidatePlaceholders(data []byte, attachments int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: binary payload: %w", ErrBadPacket, err)
	}
	return walkPlaceholders(v, attachments, 0)
}

func walkPlaceholders(v any, n, depth int) error {
	if depth > maxPlaceholderDepth {
		return fmt.Errorf("%w: binary payload nested too deep", ErrBadPacket)
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if err := walkPlaceholders(e, n, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if x["_placeholder"] == true {
			num, ok := x["num"].(json.Number)
			i, err := num.Int64()
			if !ok || err != nil || i < 0 || i >= int64(n) {
				return fmt.Errorf("%w: illegal attachments", ErrBadPacket)
			}
			return nil
		}
		for _, e := range x {
			if err := walkPlaceholders(e, n, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
