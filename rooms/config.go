package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/internal/redact"
)

// Defaults for zero Config fields.
const (
	DefaultLeeway            = 30 * time.Second
	DefaultMaxTokenLifetime  = 7 * 24 * time.Hour // Supabase's longest JWT expiry setting
	DefaultKeyLookupTimeout  = 2 * time.Second
	DefaultJWKSFetchTimeout  = 10 * time.Second
	DefaultJWKSRefresh       = 10 * time.Minute
	DefaultJWKSMinRefresh    = 5 * time.Second
	DefaultProfileQuery      = `select role, email, full_name from profiles where user_id = $1`
	DefaultProfileCacheTTL   = 30 * time.Second
	DefaultProfileCacheSize  = 10000
	DefaultOrderOwnerQuery   = `select user_id::text from orders where id = $1`
	DefaultDBTimeout         = 2 * time.Second
	DefaultSellerRole        = "seller"
	DefaultCustomerRole      = "customer"
	DefaultEventRate         = 20 // events per second
	DefaultEventBurst        = 40
	DefaultAbuseLimit        = 200 // refused events within AbuseWindow before a disconnect
	DefaultAbuseWindow       = 10 * time.Second
	DefaultMaxRoomsPerSocket = 200
	DefaultMaxCartBytes      = 64 << 10
	DefaultBroadcastTimeout  = 2 * time.Second
	DefaultMaxConnsPerUser   = 20
	DefaultMaxTokenBytes     = 16 << 10
)

// DefaultAdminRoles are the roles treated as admins when Config.AdminRoles is nil.
var DefaultAdminRoles = []string{"admin", "super_admin"}

// Secret is a string that never appears in logs, %v output or JSON.
type Secret = redact.Secret

// MetricsSource gives the current admin metrics so that a new subscriber of
// admin:metrics gets them at once.
type MetricsSource interface {
	// AdminMetrics returns the JSON payload of the current
	// "admin:metrics-updated" event ({"metrics":{…},"timestamp":…}), or nil
	// when none is known yet.
	AdminMetrics(ctx context.Context) (json.RawMessage, error)
}

// StateSource gives a room's current state, so that a socket that subscribes
// to a product or an order (again, after a reconnect) gets the present value
// before the changes that follow.
type StateSource interface {
	// RoomStateAt reads room's current state and commits, in the same
	// transaction, a stream mark with token (one that reaches the hub's mark
	// handler, Policy.OnMark, in commit order). It calls ready with the
	// events before that commit. marked is false when no mark was committed
	// (the room has no state, or the source cannot order it): the events
	// passed to ready, if any, are then unordered with the stream.
	RoomStateAt(ctx context.Context, room, token string, ready func([]StateEvent)) (marked bool, err error)
}

// StateEvent is one event of a room's current state.
type StateEvent struct {
	Name    string
	Payload json.RawMessage
	User    string // when set, only that user's sockets get it
}

// DB is the part of a *pgxpool.Pool the policy uses. It must be safe for
// concurrent use.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config configures a Policy. Every zero field takes its Default… value.
type Config struct {
	// JWTSecret is the HS256 shared secret (Supabase legacy JWT secret);
	// "" = HS256 tokens are refused. At least one of JWTSecret and JWKSURL is
	// required.
	JWTSecret Secret
	// JWKSURL is the address of a JWK Set with the asymmetric keys (RS256,
	// ES256, EdDSA…; Supabase: <project>/auth/v1/.well-known/jwks.json);
	// "" = asymmetric tokens are refused.
	JWKSURL string
	// HTTPClient fetches the JWKS; nil = http.DefaultClient.
	HTTPClient *http.Client
	// Issuer is the required "iss" claim; "" = not checked.
	Issuer string
	// Audience is the required "aud" claim (Supabase: "authenticated");
	// "" = not checked.
	Audience string
	// Leeway is the clock skew allowed on exp/nbf/iat; 0 = 30s, negative = none.
	Leeway time.Duration
	// MaxTokenLifetime refuses a token valid for longer: exp − iat, or
	// exp − now when it has no iat (Leeway is added). 0 = 7 days, negative =
	// no limit. A leaked token with an exp in the year 9999 is otherwise good
	// for ever.
	MaxTokenLifetime time.Duration
	// KeyLookupTimeout bounds how long a handshake waits for a JWKS key lookup
	// (including a refresh for an unknown kid); 0 = 2s.
	KeyLookupTimeout time.Duration
	// JWKSFetchTimeout bounds one JWKS HTTP fetch (which goes on in the
	// background after a handshake gave up waiting); 0 = 10s.
	JWKSFetchTimeout time.Duration
	// JWKSRefreshInterval is the period of the background JWKS refresh done
	// by Run; 0 = 10m, negative = no periodic refresh.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval is the minimum time between two fetches caused
	// by tokens with an unknown kid (so forged kids cannot hammer the key
	// server); 0 = 5s.
	JWKSMinRefreshInterval time.Duration

	// RoleClaim is the dot path of the claim holding the role, e.g.
	// "app_metadata.role"; "" = role from the profile query.
	RoleClaim string
	// ProfileQuery returns (role, email, full_name) for a user id ($1), each
	// nullable; "" = DefaultProfileQuery. Used when RoleClaim is empty or
	// absent from the token and DB is set.
	ProfileQuery string
	// ProfileCacheTTL is how long a profile row is cached; 0 = 30s,
	// negative = no cache.
	ProfileCacheTTL time.Duration
	// OrderOwnerQuery returns the owner user id (text) of the order $1 (text);
	// no row = not found; "" = DefaultOrderOwnerQuery.
	OrderOwnerQuery string
	// DBTimeout bounds each profile or order-owner query; 0 = 2s.
	DBTimeout time.Duration
	// MarkWait bounds the wait of a subscribe for its stream mark (see
	// StateSource); 0 = DefaultMarkWait.
	MarkWait time.Duration
	// DB runs the profile and order-owner queries (a *pgxpool.Pool); nil = no
	// profiles (every user without a role claim is a customer) and
	// subscribe:order is allowed to admins only.
	DB DB

	// AdminRoles are the roles that are admins; nil = DefaultAdminRoles.
	AdminRoles []string
	// SellerRole is the sellers' role; "" = "seller".
	SellerRole string

	// EventRate is the sustained client events per second per socket
	// (token bucket); 0 = 20, negative = unlimited.
	EventRate float64
	// EventBurst is the bucket size; 0 = 40.
	EventBurst int
	// AbuseLimit is the number of events refused for the rate limit within
	// AbuseWindow after which the socket is disconnected; 0 = 200,
	// negative = never.
	AbuseLimit int
	// AbuseWindow is the window AbuseLimit counts in; 0 = 10s.
	AbuseWindow time.Duration
	// MaxRoomsPerSocket caps the rooms a socket may subscribe to (auto-joined
	// rooms are not counted); 0 = 200, negative = unlimited.
	MaxRoomsPerSocket int
	// MaxCartBytes caps the JSON size of a cart:update payload; 0 = 64 KiB.
	MaxCartBytes int
	// MaxConnsPerUser caps the sockets one user id may have open per
	// namespace on this node; 0 = 20, negative = unlimited.
	MaxConnsPerUser int
	// MaxTokenBytes refuses longer tokens without parsing them; 0 = 16 KiB.
	MaxTokenBytes int

	// BroadcastTimeout bounds one hub.Server.Broadcast of a client-originated
	// event (cart:synced), which reaches a user's devices on every node
	// through the hub's adapter; 0 = 2s.
	BroadcastTimeout time.Duration

	// Kinds are the room kinds clients subscribe to (a rules file's rooms);
	// nil = DefaultKinds(OrderOwnerQuery).
	Kinds []Kind
	// RLSRole is the database role RLS rules run as (walcast's role must be
	// a member of it); "" = DefaultRLSRole.
	RLSRole string
	// RLSRecheckInterval re-checks every subscription that rests on an RLS
	// rule this often, as if a policy had changed (see PoliciesChanged): the
	// fallback where no event trigger reports policy changes. Zero or
	// negative means never.
	RLSRecheckInterval time.Duration

	// RoomRules are the room kinds declared outside the built-in catalogue
	// (see RoomRule), re-checked on role changes and recovery; nil = none.
	RoomRules []RoomRule

	// AdminNamespace declares "/admin", which only admins may connect to.
	AdminNamespace bool
	// Metrics gives new admin:metrics subscribers the current value; nil =
	// they wait for the next update.
	Metrics MetricsSource
	// State gives new product and order subscribers the current state
	// (sent before the subscribe ack); nil = they get changes only.
	State StateSource
	// Prom holds optional Prometheus collectors (NewPromMetrics); nil = none.
	Prom *PromMetrics
	// Logger receives the policy's logs; nil = slog.Default().
	Logger *slog.Logger

	// now is the clock (tests); nil = time.Now.
	now func() time.Time
}

// LogValue implements slog.LogValuer so a Config can be logged safely.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("jwt_secret", c.JWTSecret),
		slog.String("jwks_url", redact.URL(c.JWKSURL)),
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.String("role_claim", c.RoleClaim),
		slog.Bool("admin_namespace", c.AdminNamespace),
	)
}

// withDefaults returns a copy of c with zero fields filled, or every problem found.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.JWTSecret == "" && c.JWKSURL == "" {
		errs = append(errs, errors.New("rooms: JWTSecret or JWKSURL is required"))
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("rooms: JWKSURL %q is not an http(s) URL", redact.URL(c.JWKSURL)))
		}
	}
	dur := func(name string, d *time.Duration, def time.Duration, negOK bool) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0 && !negOK:
			errs = append(errs, fmt.Errorf("rooms: %s %v must not be negative", name, *d))
		}
	}
	dur("Leeway", &c.Leeway, DefaultLeeway, true)
	if c.Leeway < 0 {
		c.Leeway = 0
	}
	dur("MaxTokenLifetime", &c.MaxTokenLifetime, DefaultMaxTokenLifetime, true)
	dur("KeyLookupTimeout", &c.KeyLookupTimeout, DefaultKeyLookupTimeout, false)
	dur("JWKSFetchTimeout", &c.JWKSFetchTimeout, DefaultJWKSFetchTimeout, false)
	dur("JWKSRefreshInterval", &c.JWKSRefreshInterval, DefaultJWKSRefresh, true)
	dur("JWKSMinRefreshInterval", &c.JWKSMinRefreshInterval, DefaultJWKSMinRefresh, false)
	dur("ProfileCacheTTL", &c.ProfileCacheTTL, DefaultProfileCacheTTL, true)
	dur("DBTimeout", &c.DBTimeout, DefaultDBTimeout, false)
	dur("MarkWait", &c.MarkWait, DefaultMarkWait, false)
	dur("AbuseWindow", &c.AbuseWindow, DefaultAbuseWindow, false)
	dur("BroadcastTimeout", &c.BroadcastTimeout, DefaultBroadcastTimeout, false)
	if c.ProfileQuery == "" {
		c.ProfileQuery = DefaultProfileQuery
	}
	if c.OrderOwnerQuery == "" {
		c.OrderOwnerQuery = DefaultOrderOwnerQuery
	}
	if c.Kinds == nil {
		c.Kinds = DefaultKinds(c.OrderOwnerQuery)
	} else {
		c.Kinds = append([]Kind(nil), c.Kinds...)
	}
	if err := checkKinds(c.Kinds); err != nil {
		errs = append(errs, err)
	}
	if c.RLSRole == "" {
		c.RLSRole = DefaultRLSRole
	}
	if c.AdminRoles == nil {
		c.AdminRoles = DefaultAdminRoles
	}
	if c.SellerRole == "" {
		c.SellerRole = DefaultSellerRole
	}
	if c.EventRate == 0 {
		c.EventRate = DefaultEventRate
	}
	num := func(name string, v *int, def int, negOK bool) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 && !negOK:
			errs = append(errs, fmt.Errorf("rooms: %s %d must not be negative", name, *v))
		}
	}
	num("EventBurst", &c.EventBurst, DefaultEventBurst, false)
	num("AbuseLimit", &c.AbuseLimit, DefaultAbuseLimit, true)
	num("MaxRoomsPerSocket", &c.MaxRoomsPerSocket, DefaultMaxRoomsPerSocket, true)
	num("MaxCartBytes", &c.MaxCartBytes, DefaultMaxCartBytes, false)
	num("MaxConnsPerUser", &c.MaxConnsPerUser, DefaultMaxConnsPerUser, true)
	num("MaxTokenBytes", &c.MaxTokenBytes, DefaultMaxTokenBytes, false)
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, errors.Join(errs...)
}
