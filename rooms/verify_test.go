package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/walcast/walcast/internal/testutil"
	"github.com/walcast/walcast/rooms"
)

func newTestVerifier(t testing.TB, k *testKeys, js *jwksServer, mod func(*rooms.Config)) *rooms.Verifier {
	t.Helper()
	cfg := rooms.Config{
		JWTSecret:              rooms.Secret(k.secret),
		Issuer:                 testIssuer,
		Audience:               testAudience,
		Leeway:                 time.Second,
		KeyLookupTimeout:       500 * time.Millisecond,
		JWKSMinRefreshInterval: 50 * time.Millisecond,
		Logger:                 testutil.Logger(t, slog.LevelDebug),
	}
	if js != nil {
		cfg.JWKSURL = js.URL()
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := rooms.NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

type tokenCase struct {
	name     string
	token    func(t testing.TB, k *testKeys) string
	wantMsg  string // "" = accepted
	wantCode string
}

func tokenCases() []tokenCase {
	good := func(c jwt.MapClaims) jwt.MapClaims { return c }
	return []tokenCase{
		{"HS256", func(t testing.TB, k *testKeys) string { return k.hs(t, claims("u1", time.Hour)) }, "", ""},
		{"RS256", func(t testing.TB, k *testKeys) string { return k.rs(t, claims("u1", time.Hour)) }, "", ""},
		{"ES256", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodES256, kidEC, k.ec, claims("u1", time.Hour))
		}, "", ""},
		{"EdDSA", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodEdDSA, kidEd, k.ed, claims("u1", time.Hour))
		}, "", ""},
		{"RS256NoKid", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodRS256, "", k.rsa, claims("u1", time.Hour))
		}, "", ""},
		{"Garbage", func(t testing.TB, k *testKeys) string { return "not-a-jwt" }, rooms.MsgInvalidToken, rooms.CodeMalformed},
		{"ThreeGarbageParts", func(t testing.TB, k *testKeys) string { return "a.b.c" }, rooms.MsgInvalidToken, rooms.CodeMalformed},
		{"AlgNone", func(t testing.TB, k *testKeys) string { return k.none(t, claims("u1", time.Hour)) }, rooms.MsgInvalidToken, rooms.CodeAlgNotAllowed},
		{"AlgConfusionHS256WithRSAPublicKey", func(t testing.TB, k *testKeys) string {
			return k.confused(t, claims("u1", time.Hour))
		}, rooms.MsgInvalidToken, rooms.CodeBadSignature},
		{"BadSignatureHS256", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodHS256, "", []byte("some other secret of enough length"), claims("u1", time.Hour))
		}, rooms.MsgInvalidToken, rooms.CodeBadSignature},
		{"RS256SignedByUnpublishedKey", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodRS256, kidRSA, k.rsa2, claims("u1", time.Hour))
		}, rooms.MsgInvalidToken, rooms.CodeBadSignature},
		{"ES256WithRSAKid", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodES256, kidRSA, k.ec, claims("u1", time.Hour))
		}, rooms.MsgInvalidToken, rooms.CodeAlgNotAllowed},
		{"Expired", func(t testing.TB, k *testKeys) string { return k.hs(t, claims("u1", -time.Minute)) }, rooms.MsgTokenExpired, rooms.CodeTokenExpired},
		{"ExpiredRS256", func(t testing.TB, k *testKeys) string { return k.rs(t, claims("u1", -time.Minute)) }, rooms.MsgTokenExpired, rooms.CodeTokenExpired},
		{"NotYetValid", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			c["nbf"] = time.Now().Add(10 * time.Minute).Unix()
			return k.hs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeNotYetValid},
		{"WrongAudience", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			c["aud"] = "someone-else"
			return k.hs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeBadAudience},
		{"WrongAudienceAndExpired", func(t testing.TB, k *testKeys) string {
			c := claims("u1", -time.Hour)
			c["aud"] = "someone-else"
			return k.hs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeBadAudience},
		{"WrongIssuer", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			c["iss"] = "https://evil.example"
			return k.rs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeBadIssuer},
		{"UnknownKid", func(t testing.TB, k *testKeys) string {
			return sign(t, jwt.SigningMethodRS256, "nope", k.rsa, claims("u1", time.Hour))
		}, rooms.MsgInvalidToken, rooms.CodeUnknownKID},
		{"NoExp", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			delete(c, "exp")
			return k.hs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeClaimMissing},
		{"NoSub", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			delete(c, "sub")
			return k.hs(t, good(c))
		}, rooms.MsgInvalidToken, rooms.CodeMissingSubject},
		// A leaked token with a far exp was good for ever; the lifetime is
		// exp − iat, or exp − now without iat (default limit 7 days).
		{"ExpYear9999", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			c["exp"] = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
			return k.hs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeLifetimeTooLong},
		{"ExpYear9999NoIat", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			c["exp"] = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
			delete(c, "iat")
			return k.rs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeLifetimeTooLong},
		{"Lifetime8Days", func(t testing.TB, k *testKeys) string { return k.hs(t, claims("u1", 8*24*time.Hour)) }, rooms.MsgInvalidToken, rooms.CodeLifetimeTooLong},
		{"Lifetime6DaysNoIat", func(t testing.TB, k *testKeys) string {
			c := claims("u1", 6*24*time.Hour)
			delete(c, "iat")
			return k.hs(t, c)
		}, "", ""},
		{"UnknownCrit", func(t testing.TB, k *testKeys) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("u1", time.Hour))
			tok.Header["crit"] = []string{"exp-ext"}
			tok.Header["exp-ext"] = true
			s, err := tok.SignedString(k.secret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, rooms.MsgInvalidToken, rooms.CodeUnknownCrit},
		{"TooLarge", func(t testing.TB, k *testKeys) string {
			c := claims("u1", time.Hour)
			c["pad"] = strings.Repeat("x", 20000)
			return k.hs(t, c)
		}, rooms.MsgInvalidToken, rooms.CodeTokenTooLarge},
	}
}

func checkRefusal(t *testing.T, err error, wantMsg, wantCode string) {
	t.Helper()
	if wantMsg == "" {
		if err != nil {
			t.Fatalf("Verify: got %v, want accepted", err)
		}
		return
	}
	var ae *rooms.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("Verify: got %v (%T), want *AuthError %q/%q", err, err, wantMsg, wantCode)
	}
	if ae.Message != wantMsg || ae.Code != wantCode {
		t.Fatalf("Verify: got %q/%q (%v), want %q/%q", ae.Message, ae.Code, ae.Err, wantMsg, wantCode)
	}
}

func TestVerifier_Table(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, k)
	v := newTestVerifier(t, k, js, nil)
	for _, tc := range tokenCases() {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), tc.token(t, k))
			checkRefusal(t, err, tc.wantMsg, tc.wantCode)
			if err == nil && c.Subject != "u1" {
				t.Fatalf("Subject: got %q, want u1", c.Subject)
			}
		})
	}
}

func TestVerifier_JWKSOnly(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, k)
	v := newTestVerifier(t, k, js, func(c *rooms.Config) { c.JWTSecret = "" })
	t.Run("HS256Refused", func(t *testing.T) {
		_, err := v.Verify(t.Context(), k.hs(t, claims("u1", time.Hour)))
		checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeAlgNotAllowed)
	})
	t.Run("AlgConfusionRefused", func(t *testing.T) {
		_, err := v.Verify(t.Context(), k.confused(t, claims("u1", time.Hour)))
		checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeAlgNotAllowed)
	})
	t.Run("RS256Accepted", func(t *testing.T) {
		_, err := v.Verify(t.Context(), k.rs(t, claims("u1", time.Hour)))
		checkRefusal(t, err, "", "")
	})
}

func TestVerifier_SecretOnly(t *testing.T) {
	k := genKeys(t)
	v := newTestVerifier(t, k, nil, nil)
	_, err := v.Verify(t.Context(), k.rs(t, claims("u1", time.Hour)))
	checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeAlgNotAllowed)
	_, err = v.Verify(t.Context(), k.hs(t, claims("u1", time.Hour)))
	checkRefusal(t, err, "", "")
}

func TestVerifier_KeyRotation(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, k)
	v := newTestVerifier(t, k, js, nil)
	if _, err := v.Verify(t.Context(), k.rs(t, claims("u1", time.Hour))); err != nil {
		t.Fatalf("Verify(rsa-1): %v", err)
	}
	tok2 := sign(t, jwt.SigningMethodRS256, kidRSA2, k.rsa2, claims("u1", time.Hour))
	_, err := v.Verify(t.Context(), tok2)
	checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeUnknownKID)

	js.add(t, k.rsa2.Public(), kidRSA2, "RS256")
	time.Sleep(60 * time.Millisecond) // JWKSMinRefreshInterval
	start := time.Now()
	if _, err := v.Verify(t.Context(), tok2); err != nil {
		t.Fatalf("Verify(rsa-2) after rotation: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Verify after rotation took %v, want <= KeyLookupTimeout 500ms", d)
	}
}

func TestVerifier_SlowJWKSBounded(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, k)
	js.delay.Store(int64(1500 * time.Millisecond))
	v := newTestVerifier(t, k, js, func(c *rooms.Config) { c.KeyLookupTimeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := v.Verify(t.Context(), k.rs(t, claims("u1", time.Hour)))
	d := time.Since(start)
	checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeKeyLookupTimeout)
	// A correctness bound, not a performance check: far below the 1.5s delay.
	if d > time.Second {
		t.Errorf("Verify with a slow JWKS took %v, want about KeyLookupTimeout (200ms)", d)
	}
	// HS256 never touches the JWKS, so it is not delayed.
	start = time.Now()
	if _, err := v.Verify(t.Context(), k.hs(t, claims("u1", time.Hour))); err != nil {
		t.Fatalf("Verify(HS256) during a slow JWKS: %v", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("HS256 Verify took %v during a slow JWKS fetch", d)
	}
}

func TestVerifier_JWKSDown(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, k)
	url := js.URL()
	js.Close()
	v := newTestVerifier(t, k, nil, func(c *rooms.Config) { c.JWKSURL = url })
	_, err := v.Verify(t.Context(), k.rs(t, claims("u1", time.Hour)))
	checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeKeysUnavailable)
}

func TestVerifier_UnknownKidRefetchLimited(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, k)
	v := newTestVerifier(t, k, js, func(c *rooms.Config) { c.JWKSMinRefreshInterval = time.Hour })
	bad := sign(t, jwt.SigningMethodRS256, "forged", k.rsa, claims("u1", time.Hour))
	for range 50 {
		_, err := v.Verify(t.Context(), bad)
		checkRefusal(t, err, rooms.MsgInvalidToken, rooms.CodeUnknownKID)
	}
	if n := js.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetches for 50 forged kids: got %d, want 1", n)
	}
}

func TestTokenFromAuth(t *testing.T) {
	for _, tc := range []struct {
		auth     string
		want     string
		wantCode string
	}{
		{`{}`, "", rooms.CodeTokenMissing},
		{``, "", rooms.CodeTokenMissing},
		{`{"token":null}`, "", rooms.CodeTokenMissing},
		{`{"token":""}`, "", rooms.CodeTokenMissing},
		{`{"token":"  "}`, "", rooms.CodeTokenMissing},
		{`{"token":42}`, "", rooms.CodeTokenNotString},
		{`{"token":{"a":1}}`, "", rooms.CodeTokenNotString},
		{`[1]`, "", rooms.CodeTokenMissing},
		{`{"token":"abc"}`, "abc", ""},
		{`{"token":"Bearer abc"}`, "abc", ""},
		{`{"pid":"x","offset":"1-0","token":"abc"}`, "abc", ""},
	} {
		got, ae := rooms.TokenFromAuth(json.RawMessage(tc.auth))
		switch {
		case tc.wantCode != "" && (ae == nil || ae.Code != tc.wantCode):
			t.Errorf("TokenFromAuth(%s): got %q, %v; want code %s", tc.auth, got, ae, tc.wantCode)
		case tc.wantCode == "" && (ae != nil || got != tc.want):
			t.Errorf("TokenFromAuth(%s): got %q, %v; want %q", tc.auth, got, ae, tc.want)
		}
	}
}

func TestSecret_Redacted(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	cfg := rooms.Config{JWTSecret: "super-secret-value", JWKSURL: "https://user:pw@x.example/jwks"}
	log.Info("cfg", slog.Any("config", cfg), slog.Any("secret", cfg.JWTSecret))
	out := b.String()
	if strings.Contains(out, "super-secret-value") || strings.Contains(out, ":pw@") {
		t.Fatalf("log leaks a secret: %s", out)
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatalf("log does not say [redacted]: %s", out)
	}
}

func TestValidRoomID(t *testing.T) {
	for id, want := range map[string]bool{
		"3f1c2a8e-7b1d-4c55-9a7e-0d3c1e2f4a5b": true,
		"tee-shirt_42":                         true,
		strings.Repeat("a", 64):                true,
		strings.Repeat("a", 65):                false,
		"":                                     false,
		"../etc":                               false,
		"a/b":                                  false,
		"a:b":                                  false,
		"a b":                                  false,
		"é":                                    false,
		"a\x00":                                false,
	} {
		if got := rooms.ValidRoomID(id); got != want {
			t.Errorf("ValidRoomID(%q): got %v, want %v", id, got, want)
		}
	}
}

func FuzzToken(f *testing.F) {
	k := genKeys(f)
	js := newJWKSServer(f, k)
	v := newTestVerifier(f, k, js, func(c *rooms.Config) { c.JWKSMinRefreshInterval = time.Hour })
	for _, tc := range tokenCases() {
		f.Add(tc.token(f, k))
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6W119.e30.AA")
	f.Fuzz(func(t *testing.T, tok string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := v.Verify(ctx, tok)
		if err == nil {
			if c == nil || c.Subject == "" {
				t.Fatalf("Verify accepted %q without a subject", tok)
			}
			return
		}
		var ae *rooms.AuthError
		if !errors.As(err, &ae) || ae.Message == "" || ae.Code == "" {
			t.Fatalf("Verify(%q): got %v, want an *AuthError with message and code", tok, err)
		}
		auth, _ := json.Marshal(map[string]string{"token": tok})
		_, _ = rooms.TokenFromAuth(auth)
		_, _ = rooms.TokenFromAuth(json.RawMessage(tok))
	})
}
