package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"
)

// userID returns the deterministic uuid of load client i. It is a valid uuid so
// that servers that look the user up in profiles(user_id uuid) get "no row"
// (role customer) instead of a type error.
func userID(i int) string { return fmt.Sprintf("50000000-0000-4000-8000-%012d", i) }

// userIndex is the user a client's token names: client i itself when users
// is 0, else i mod users (clients sharing user ids).
func userIndex(i, users int) int {
	if users <= 0 {
		return i
	}
	return i % users
}

// signHS256 returns a Supabase-shaped HS256 JWT for client i, valid for ttl.
func signHS256(secret []byte, i int, now time.Time, ttl time.Duration) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := fmt.Sprintf(`{"sub":%q,"aud":"authenticated","role":"authenticated","iat":%d,"exp":%d}`,
		userID(i), now.Unix(), now.Add(ttl).Unix())
	msg := header + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}
