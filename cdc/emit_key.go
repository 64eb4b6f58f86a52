package cdc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walcast/walcast/internal/logkey"
)

// EmitKey is the key walcast.emit signs its messages with (the key column
// of walcast.emit_key, 32 bytes). A message with prefix "walcast" is
// delivered only if it carries HMAC-SHA256(key, xid ":" body) in lower-case
// hex before its body, where xid is the decimal id of the transaction that
// wrote it: only the SECURITY DEFINER functions walcast.emit and
// walcast.notify can read the key, so only roles with EXECUTE on them can
// emit, while pg_logical_emit_message itself is open to every login.
//
// An EmitKey is immutable and safe for concurrent use. It prints as
// [redacted] in logs.
type EmitKey struct{ k []byte }

// NewEmitKey returns the EmitKey for key (32 bytes, as stored in
// walcast.emit_key.key).
func NewEmitKey(key []byte) (EmitKey, error) {
	if len(key) != sha256.Size {
		return EmitKey{}, fmt.Errorf("cdc: emit key is %d bytes, want %d", len(key), sha256.Size)
	}
	return EmitKey{k: append([]byte(nil), key...)}, nil
}

// IsZero reports whether k holds no key (every message then fails to verify).
func (k EmitKey) IsZero() bool { return len(k.k) == 0 }

// LogValue implements slog.LogValuer: the key never appears in logs.
func (k EmitKey) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// emitSigLen is the length of the hex signature in front of a message body.
const emitSigLen = 2 * sha256.Size

// Errors of VerifyEmit. Both mean the message was not written by
// walcast.emit with the key walcast read.
var (
	ErrEmitUnsigned     = errors.New("cdc: walcast message is not signed (not written by walcast.emit)")
	ErrEmitBadSignature = errors.New("cdc: walcast message signature does not verify (forged, another transaction's, or signed with another key)")
	ErrEmitNoKey        = errors.New("cdc: no emit key loaded (walcast.emit_key missing or not readable), so no walcast message verifies")
)

// SignEmit returns the content walcast.emit writes for body in transaction
// xid: the signature in hex, then body. Tests and other producers that hold
// the key use it; walcast itself only verifies.
func (k EmitKey) SignEmit(xid uint32, body []byte) []byte {
	out := make([]byte, emitSigLen, emitSigLen+len(body))
	hex.Encode(out, k.mac(nil, xid, body))
	return append(out, body...)
}

func (k EmitKey) mac(dst []byte, xid uint32, body []byte) []byte {
	h := hmac.New(sha256.New, k.k)
	var b [11]byte
	h.Write(strconv.AppendUint(b[:0], uint64(xid), 10))
	h.Write([]byte{':'})
	h.Write(body)
	return h.Sum(dst)
}

// VerifyEmit checks content, the content of a "walcast" message of
// transaction xid, and returns its body (a sub-slice of content).
func (k EmitKey) VerifyEmit(xid uint32, content []byte) ([]byte, error) {
	if len(content) < emitSigLen {
		return nil, ErrEmitUnsigned
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], content[:emitSigLen]); err != nil {
		return nil, ErrEmitUnsigned
	}
	if k.IsZero() {
		return nil, ErrEmitNoKey
	}
	var buf [sha256.Size]byte
	body := content[emitSigLen:]
	if !hmac.Equal(got[:], k.mac(buf[:0], xid, body)) {
		return nil, ErrEmitBadSignature
	}
	return body, nil
}

// LoadEmitKey reads the key from walcast.emit_key (created by walcast
// migrate). The error says what to do when the table is missing or the role
// may not read it.
func LoadEmitKey(ctx context.Context, q Querier) (EmitKey, error) {
	var key []byte
	err := q.QueryRow(ctx, `SELECT key FROM walcast.emit_key`).Scan(&key)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return EmitKey{}, errors.New("cdc: load emit key: walcast.emit_key is empty; run walcast migrate")
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return EmitKey{}, errors.New("cdc: load emit key: walcast.emit_key does not exist; run walcast migrate")
	case errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
		return EmitKey{}, fmt.Errorf("cdc: load emit key: this role may not read walcast.emit_key (GRANT SELECT ON walcast.emit_key TO the role walcast connects as): %w", err)
	case err != nil:
		return EmitKey{}, fmt.Errorf("cdc: load emit key: %w", err)
	}
	return NewEmitKey(key)
}

// EmitVerifier checks "walcast" messages against an EmitKey for a mapper
// (cdc.Mapper, the rule engine). A message that fails is counted (Dropped)
// and logged at Warn, at most once per 10 s with the count since the last
// line: any database login can write such messages, so one line per message
// would let it flood the log. The zero value has no key and verifies
// nothing. Safe for concurrent use.
type EmitVerifier struct {
	mu      sync.Mutex
	key     EmitKey
	last    time.Time
	pending uint64
	dropped atomic.Uint64
}

// forgedLogEvery is the least time between two Warn lines about dropped
// messages.
const forgedLogEvery = 10 * time.Second

// SetKey sets the key later messages are checked with.
func (v *EmitVerifier) SetKey(k EmitKey) {
	v.mu.Lock()
	v.key = k
	v.mu.Unlock()
}

// Dropped returns how many messages failed verification.
func (v *EmitVerifier) Dropped() uint64 { return v.dropped.Load() }

// Verify returns the body of c, a "walcast" message, and true if its
// signature verifies; otherwise it counts and logs the message and returns
// false.
func (v *EmitVerifier) Verify(log *slog.Logger, c *Change) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	body, err := v.key.VerifyEmit(c.XID, c.Content)
	if err == nil {
		return body, true
	}
	v.dropped.Add(1)
	v.pending++
	now := time.Now()
	if v.last.IsZero() || now.Sub(v.last) >= forgedLogEvery {
		log.Warn("dropped walcast messages that walcast.emit did not sign",
			logkey.Count, v.pending, logkey.LSN, c.CommitLSN.String(), logkey.XID, c.XID, logkey.Reason, err.Error())
		v.last, v.pending = now, 0
	}
	return nil, false
}
