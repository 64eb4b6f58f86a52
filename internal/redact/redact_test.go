package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecret_NeverPrints(t *testing.T) {
	const pw = "hunter2-very-secret"
	s := Secret(pw)
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "secret", s, "group", slog.GroupValue(slog.Any("s", s)))
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "secret", s)
	j, err := json.Marshal(struct{ S Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	b.Write(j)
	fmt.Fprintf(&b, "%v %s %q %#v %+v", s, s, s, s, struct{ S Secret }{s})
	if strings.Contains(b.String(), pw) {
		t.Fatalf("secret printed: %s", b.String())
	}
	if !strings.Contains(b.String(), Placeholder) {
		t.Fatalf("no placeholder in %s", b.String())
	}
	if s.Reveal() != pw {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	if Secret("").String() != "" {
		t.Fatal("empty secret should print empty")
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db":  "postgres://u:xxxxx@h:5432/db",
		"redis://:pw@h:6379/0":       "redis://:xxxxx@h:6379/0",
		"postgres://u@h/db":          "postgres://u@h/db",
		"host=h password=pw":         "host=h password=pw", // not a URL: Error handles it
		"https://example.com/x.json": "https://example.com/x.json",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestError(t *testing.T) {
	err := errors.New("dial postgres://u:s3cr3t@h/db failed; password=k3y")
	for _, dsn := range []string{"postgres://u:s3cr3t@h/db", "host=h password=k3y"} {
		got := Error(err, dsn)
		if strings.Contains(got, "s3cr3t") && strings.HasPrefix(dsn, "postgres") || strings.Contains(got, "k3y") && strings.HasPrefix(dsn, "host") {
			t.Errorf("Error(_, %q) = %q: password kept", dsn, got)
		}
	}
}
