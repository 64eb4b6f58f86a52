package rooms_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/walcast/walcast/rooms"
)

func TestClaimPath(t *testing.T) {
	c := map[string]any{
		"role":         "authenticated",
		"app_metadata": map[string]any{"role": "seller", "n": 3.0, "deep": map[string]any{"x": "y"}},
		"empty":        "",
	}
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"app_metadata.role", "seller", true},
		{"role", "authenticated", true},
		{"app_metadata.deep.x", "y", true},
		{"app_metadata.n", "", false},
		{"app_metadata.deep", "", false},
		{"app_metadata.missing", "", false},
		{"role.sub", "", false},
		{"empty", "", false},
		{"", "", false},
	} {
		got, ok := rooms.ClaimPath(c, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ClaimPath(%q): got %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestConfig_Validation(t *testing.T) {
	_, err := rooms.New(rooms.Config{})
	if err == nil || !strings.Contains(err.Error(), "JWTSecret or JWKSURL") {
		t.Fatalf("New(empty): got %v, want the missing key error", err)
	}
	_, err = rooms.New(rooms.Config{JWKSURL: "ftp://x", EventBurst: -1, KeyLookupTimeout: -time.Second})
	for _, want := range []string{"JWKSURL", "EventBurst", "KeyLookupTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(bad): got %v, want a problem naming %s", err, want)
		}
	}
}

func FuzzRoomID(f *testing.F) {
	for _, s := range []string{"p1", "3f1c2a8e-7b1d-4c55-9a7e-0d3c1e2f4a5b", "../x", strings.Repeat("a", 65), "a:b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !rooms.ValidRoomID(s) {
			return
		}
		if len(s) == 0 || len(s) > rooms.MaxRoomIDLen || strings.ContainsAny(s, "./: \\\x00") {
			t.Fatalf("ValidRoomID accepted %q", s)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	k := genKeys(b)
	js := newJWKSServer(b, k)
	v := newTestVerifier(b, k, js, nil)
	for _, bc := range []struct {
		name string
		tok  string
	}{
		{"HS256", k.hs(b, claims("u1", time.Hour))},
		{"RS256", k.rs(b, claims("u1", time.Hour))},
		{"ES256", sign(b, jwt.SigningMethodES256, kidEC, k.ec, claims("u1", time.Hour))},
		{"EdDSA", sign(b, jwt.SigningMethodEdDSA, kidEd, k.ed, claims("u1", time.Hour))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := v.Verify(b.Context(), bc.tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
