package rooms_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// testKeys are the signing keys of a test run, generated at test time.
type testKeys struct {
	secret []byte
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	rsa2   *rsa.PrivateKey // the key added by the rotation test
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
)

func genKeys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		k := &testKeys{secret: make([]byte, 40)}
		rand.Read(k.secret)
		var err error
		if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
		keysVal = k
	})
	return keysVal
}

const (
	kidRSA  = "rsa-1"
	kidEC   = "ec-1"
	kidEd   = "ed-1"
	kidRSA2 = "rsa-2"
)

// jwksServer serves a JWK Set that tests can change, counts fetches and can
// be made slow.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	set     jwkset.JWKSMarshal
	fetches atomic.Int64
	delay   atomic.Int64 // nanoseconds
}

func newJWKSServer(t testing.TB, k *testKeys) *jwksServer {
	t.Helper()
	js := &jwksServer{}
	js.add(t, k.rsa.Public(), kidRSA, jwkset.AlgRS256)
	js.add(t, k.ec.Public(), kidEC, jwkset.AlgES256)
	js.add(t, k.ed.Public(), kidEd, jwkset.AlgEdDSA)
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		if d := time.Duration(js.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		js.mu.Lock()
		b, err := json.Marshal(js.set)
		js.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) add(t testing.TB, pub crypto.PublicKey, kid string, alg jwkset.ALG) {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatalf("NewJWKFromKey(%s): %v", kid, err)
	}
	js.mu.Lock()
	js.set.Keys = append(js.set.Keys, j.Marshal())
	js.mu.Unlock()
}

func (js *jwksServer) URL() string { return js.Server.URL + "/auth/v1/.well-known/jwks.json" }

// claims returns standard claims for user sub, valid for d.
func claims(sub string, d time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":   sub,
		"email": sub + "@example.test",
		"aud":   testAudience,
		"iss":   testIssuer,
		"iat":   now.Unix(),
		"exp":   now.Add(d).Unix(),
		"role":  "authenticated",
	}
}

const (
	testAudience = "authenticated"
	testIssuer   = "https://project.example.test/auth/v1"
)

func sign(t testing.TB, m jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func (k *testKeys) hs(t testing.TB, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodHS256, "", k.secret, c)
}

func (k *testKeys) rs(t testing.TB, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodRS256, kidRSA, k.rsa, c)
}

func (k *testKeys) none(t testing.TB, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType, c)
}

// confused signs c with HS256 using the RSA public key (PEM) as the HMAC
// secret: the classic algorithm-confusion forgery.
func (k *testKeys) confused(t testing.TB, c jwt.MapClaims) string {
	der, err := x509.MarshalPKIXPublicKey(k.rsa.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return sign(t, jwt.SigningMethodHS256, kidRSA, pemKey, c)
}
