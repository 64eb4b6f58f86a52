// Package redact keeps secrets out of logs and error text: the Secret type
// for values that must never print (JWT secrets, database URLs with their
// password, bearer tokens), and URL and Error for text that mentions a
// connection string.
package redact

import (
	"log/slog"
	"net/url"
	"strings"
)

// Placeholder is what a set Secret prints as.
const Placeholder = "[redacted]"

// Secret is a string that prints as Placeholder (or "" when empty) in slog
// output, with %v, %s, %q, %#v and in JSON or text encodings. Reveal returns
// the value for the code that needs it.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return Placeholder
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// String implements fmt.Stringer, so %v, %s and %q print the placeholder.
func (s Secret) String() string { return s.shown() }

// GoString implements fmt.GoStringer, so %#v prints the placeholder.
func (s Secret) GoString() string { return `"` + s.shown() + `"` }

// MarshalText implements encoding.TextMarshaler (JSON included).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// passwordMask replaces a password in URL and Error, as url.URL.Redacted does.
const passwordMask = "xxxxx"

// URL returns s with the password of a URL-form connection string replaced by
// "xxxxx" (url.URL.Redacted); anything that is not such a URL is returned
// as is.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// Error returns err's text with any password of dsn, in URL form
// (postgres://u:pw@h) or keyword form (password=pw), replaced by "xxxxx".
func Error(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, passwordMask)
		}
	}
	for _, f := range strings.Fields(dsn) {
		if k, v, ok := strings.Cut(f, "="); ok && k == "password" && v != "" {
			msg = strings.ReplaceAll(msg, v, passwordMask)
		}
	}
	return msg
}
