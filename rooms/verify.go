package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Client-facing refusal messages (the CONNECT_ERROR "message").
const (
	MsgTokenRequired    = "Authentication token required"
	MsgInvalidToken     = "Invalid authentication token"
	MsgTokenExpired     = "Token expired"
	MsgAuthFailed       = "Authentication failed"
	MsgTooManyConns     = "Too many connections"
	MsgAdminOnly        = "Admin access required"
	MsgInternalRefusal  = "Internal error"
	dataCodeKey         = "code"
	bearerPrefix        = "bearer "
	maxClaimPathSegment = 16
)

// Reason codes put in CONNECT_ERROR data as {"code": …} and used as the
// "reason" label of the auth refusal metric.
const (
	CodeTokenMissing     = "token_missing"
	CodeTokenNotString   = "token_not_string"
	CodeTokenTooLarge    = "token_too_large"
	CodeMalformed        = "token_malformed"
	CodeAlgNotAllowed    = "alg_not_allowed"
	CodeBadSignature     = "bad_signature"
	CodeUnknownKID       = "unknown_kid"
	CodeKeyLookupTimeout = "key_lookup_timeout"
	CodeKeysUnavailable  = "keys_unavailable"
	CodeTokenExpired     = "token_expired"
	CodeNotYetValid      = "token_not_yet_valid"
	CodeBadAudience      = "bad_audience"
	CodeBadIssuer        = "bad_issuer"
	CodeClaimMissing     = "claim_missing"
	CodeLifetimeTooLong  = "token_lifetime_too_long"
	CodeUnknownCrit      = "unknown_crit"
	CodeMissingSubject   = "missing_sub"
	CodeInvalidToken     = "invalid_token"
	CodeProfileLookup    = "profile_unavailable"
	CodeTooManyConns     = "too_many_connections"
	CodeNotAdmin         = "admin_only"
)

// AuthError is a refused handshake: Message is what the client sees as
// connect_error's message, Code goes to its data.
type AuthError struct {
	Message string
	Code    string
	Err     error // the underlying cause, for logs; never sent to the client
}

func (e *AuthError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("rooms: %s (%s): %v", e.Message, e.Code, e.Err)
	}
	return fmt.Sprintf("rooms: %s (%s)", e.Message, e.Code)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Data is the CONNECT_ERROR data object.
func (e *AuthError) Data() map[string]string { return map[string]string{dataCodeKey: e.Code} }

func authErr(msg, code string, err error) *AuthError {
	return &AuthError{Message: msg, Code: code, Err: err}
}

// Claims is a verified token: the subject, its expiry and every claim.
type Claims struct {
	Subject   string
	Email     string
	ExpiresAt time.Time // zero when the token has no exp (never, since exp is required)
	Raw       jwt.MapClaims
}

var (
	errAlgNotAllowed    = errors.New("signing algorithm not allowed")
	errUnknownCrit      = errors.New("token has a crit header (no extension is understood)")
	errKeyLookupTimeout = errors.New("key lookup timed out")
	errKeysUnavailable  = errors.New("key set unavailable")
)

// Verifier checks JWTs: HS256 with the shared secret and/or asymmetric
// algorithms with keys from a JWKS. It is safe for concurrent use.
type Verifier struct {
	secret     []byte
	jwks       *jwksStore // nil without JWKSURL
	parser     *jwt.Parser
	maxBytes   int
	lookupWait time.Duration
	maxLife    time.Duration // 0 = no limit
	leeway     time.Duration
	now        func() time.Time
}

// asymmetric algorithms accepted with JWKS keys. HS* is never looked up in
// the JWKS and asymmetric algorithms never use the secret, so a token signed
// with HS256 and an RSA public key (algorithm confusion) cannot verify.
var asymmetricAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

var hmacAlgs = map[string]bool{"HS256": true, "HS384": true, "HS512": true}

// NewVerifier builds a Verifier from the auth fields of cfg. It does no I/O:
// the JWKS is fetched on first use and by RunJWKS.
func NewVerifier(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return newVerifier(cfg), nil
}

func newVerifier(cfg Config) *Verifier {
	opts := []jwt.ParserOption{
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v := &Verifier{
		secret:     []byte(cfg.JWTSecret),
		parser:     jwt.NewParser(opts...),
		maxBytes:   cfg.MaxTokenBytes,
		lookupWait: cfg.KeyLookupTimeout,
		leeway:     cfg.Leeway,
		now:        cfg.now,
	}
	if cfg.MaxTokenLifetime > 0 {
		v.maxLife = cfg.MaxTokenLifetime
	}
	if cfg.JWKSURL != "" {
		v.jwks = newJWKSStore(cfg)
	}
	return v
}

// RunJWKS refreshes the JWKS periodically until ctx ends (no-op without a
// JWKS URL). Policy.Run calls it.
func (v *Verifier) RunJWKS(ctx context.Context) error {
	if v.jwks == nil {
		<-ctx.Done()
		return nil
	}
	return v.jwks.run(ctx)
}

// TokenFromAuth extracts the token from a CONNECT auth object
// ({"token":"…"}; a "Bearer " prefix is tolerated).
func TokenFromAuth(auth json.RawMessage) (string, *AuthError) {
	if len(auth) == 0 {
		return "", authErr(MsgTokenRequired, CodeTokenMissing, nil)
	}
	var a struct {
		Token json.RawMessage `json:"token"`
	}
	if err := json.Unmarshal(auth, &a); err != nil {
		return "", authErr(MsgTokenRequired, CodeTokenMissing, fmt.Errorf("decode auth object: %w", err))
	}
	if len(a.Token) == 0 || string(a.Token) == "null" {
		return "", authErr(MsgTokenRequired, CodeTokenMissing, nil)
	}
	var tok string
	if err := json.Unmarshal(a.Token, &tok); err != nil {
		return "", authErr(MsgInvalidToken, CodeTokenNotString, errors.New("auth.token is not a string"))
	}
	tok = strings.TrimSpace(tok)
	if len(tok) >= len(bearerPrefix) && strings.EqualFold(tok[:len(bearerPrefix)], bearerPrefix) {
		tok = strings.TrimSpace(tok[len(bearerPrefix):])
	}
	if tok == "" {
		return "", authErr(MsgTokenRequired, CodeTokenMissing, nil)
	}
	return tok, nil
}

// Verify checks token and returns its claims, or an *AuthError saying why it
// is refused. A JWKS lookup waits at most KeyLookupTimeout (or until ctx ends).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > v.maxBytes {
		return nil, authErr(MsgInvalidToken, CodeTokenTooLarge, fmt.Errorf("token of %d bytes", len(token)))
	}
	ctx, cancel := context.WithTimeout(ctx, v.lookupWait)
	defer cancel()
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx))
	if err != nil {
		return nil, classify(err)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" || len(sub) > 128 {
		return nil, authErr(MsgInvalidToken, CodeMissingSubject, errors.New("token has no usable sub claim"))
	}
	c := &Claims{Subject: sub, Raw: claims}
	c.Email, _ = claims["email"].(string)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		c.ExpiresAt = exp.Time
	}
	if err := v.checkLifetime(claims, c.ExpiresAt); err != nil {
		return nil, err
	}
	return c, nil
}

// checkLifetime refuses a token valid for longer than the configured maximum:
// exp − iat, or exp − now when the token has no iat.
func (v *Verifier) checkLifetime(claims jwt.MapClaims, exp time.Time) error {
	if v.maxLife == 0 {
		return nil
	}
	from := v.now()
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil {
		from = iat.Time
	}
	if life := exp.Sub(from); life > v.maxLife+v.leeway {
		return authErr(MsgInvalidToken, CodeLifetimeTooLong,
			fmt.Errorf("token valid for %v, longer than the %v maximum", life.Round(time.Second), v.maxLife))
	}
	return nil
}

func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		// RFC 7515 §4.1.11: a crit header names extensions the recipient must
		// understand; walcast understands none, so any crit is refused.
		if _, ok := t.Header["crit"]; ok {
			return nil, errUnknownCrit
		}
		alg := t.Method.Alg()
		switch {
		case hmacAlgs[alg]:
			if len(v.secret) == 0 {
				return nil, fmt.Errorf("%w: %s (no shared secret configured)", errAlgNotAllowed, alg)
			}
			return v.secret, nil
		case asymmetricAlgs[alg]:
			if v.jwks == nil {
				return nil, fmt.Errorf("%w: %s (no JWKS configured)", errAlgNotAllowed, alg)
			}
			return v.jwks.keyfunc(ctx)(t)
		default:
			return nil, fmt.Errorf("%w: %q", errAlgNotAllowed, alg)
		}
	}
}

// classify turns a jwt parse error into the refusal the client sees. Order
// matters: a token for another audience or issuer is reported as such even
// when it is also expired, since a fresh one would not help.
func classify(err error) *AuthError {
	switch {
	case errors.Is(err, errAlgNotAllowed):
		return authErr(MsgInvalidToken, CodeAlgNotAllowed, err)
	case errors.Is(err, errUnknownCrit):
		return authErr(MsgInvalidToken, CodeUnknownCrit, err)
	case errors.Is(err, errKeyLookupTimeout):
		return authErr(MsgInvalidToken, CodeKeyLookupTimeout, err)
	case errors.Is(err, errKeysUnavailable):
		return authErr(MsgInvalidToken, CodeKeysUnavailable, err)
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return authErr(MsgInvalidToken, CodeUnknownKID, err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return authErr(MsgInvalidToken, CodeMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return authErr(MsgInvalidToken, CodeBadSignature, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return authErr(MsgInvalidToken, CodeBadAudience, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return authErr(MsgInvalidToken, CodeBadIssuer, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return authErr(MsgInvalidToken, CodeClaimMissing, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return authErr(MsgTokenExpired, CodeTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return authErr(MsgInvalidToken, CodeNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An algorithm golang-jwt does not know, or a keyfunc failure.
		return authErr(MsgInvalidToken, CodeAlgNotAllowed, err)
	default:
		return authErr(MsgInvalidToken, CodeInvalidToken, err)
	}
}

// claimPath reads a string at a dot path ("app_metadata.role") in claims.
func claimPath(claims map[string]any, path string) (string, bool) {
	if path == "" {
		return "", false
	}
	var cur any = claims
	for i, seg := range strings.Split(path, ".") {
		if i >= maxClaimPathSegment {
			return "", false
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		cur, ok = m[seg]
		if !ok {
			return "", false
		}
	}
	s, ok := cur.(string)
	return s, ok && s != ""
}
