package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/redis/go-redis/v9"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/redact"
	"github.com/walcast/walcast/rules"
	"golang.org/x/crypto/bcrypt"
)

// secret is a string that never prints (slog, %v, JSON).
type secret = redact.Secret

// config is everything the subcommands read from flags and the environment.
type config struct {
	DatabaseURL     secret        // required for serve, migrate, check; holds the password
	Listen          string        // HTTP listen address; default ":3001"
	JWTSecret       secret        // HS256 secret
	JWKSURL         string        // JWKS for asymmetric tokens
	JWTIssuer       string        // checked when set
	JWTAudience     string        // checked when set
	RoleClaim       string        // claim path of the app role; "" = profiles query
	AdminRoles      []string      // roles that count as admin; default admin,super_admin
	AllowedOrigins  []string      // nil = allow all (with a warning)
	RedisURL        string        // "" = in-process bus
	RedisMode       string        // "classic" (default: PUBLISH/PSUBSCRIBE) or "sharded" (Redis 7 SPUBLISH/SSUBSCRIBE)
	RedisCluster    bool          // RedisURL names Redis Cluster nodes (redis://h1:p1?addr=h2:p2)
	Slot            string        // default "walcast"
	Publication     string        // default "walcast"
	Mapping         string        // path of the mapping file; "" = built-in seed schema
	Rules           string        // path of a rules file; "" = use the mapping
	LogLevel        slog.Level    // LOG_LEVEL: debug, info, warn, error
	LogFormat       string        // LOG_FORMAT: text or json
	ShutdownTimeout time.Duration // drain budget on SIGINT/SIGTERM; default 10s
	RLSRecheck      time.Duration // re-check rls subscriptions this often; 0 = only on policy changes
	PingInterval    time.Duration // Engine.IO ping interval; 0 = hub default (25s)
	PingTimeout     time.Duration // Engine.IO ping timeout; 0 = hub default (20s)
	MaxQueueBytes   int           // per-connection outbound budget; 0 = hub default (1 MiB)
	MaxPayload      int64         // bytes per Engine.IO message; 0 = hub default (1e6)
	RecoveryWindow  time.Duration // connection state recovery window; 0 = off; default 2m
	RateLimit       float64       // client events per second per socket; 0 = rooms default
	AdminNamespace  bool          // also serve the admins-only "/admin" namespace
	PprofListen     string        // own address for Go's profiler at /debug/pprof/; "" = off (never on the public listener: it exposes the command line)
	MetricsListen   string        // own address for GET /metrics; "" = the public listener
	// Per-IP caps (hub.Config): 0 = hub default (a config built in code); negative = unlimited.
	MaxHandshakesPerIP      int
	MaxConnsPerIP           int
	MaxUnauthenticatedPerIP int
	TrustedProxies          []netip.Prefix // peers whose X-Forwarded-For names the client IP; nil = none
	MetricsToken            secret         // bearer token GET /metrics requires; "" = none
	DBPoolSize              int            // ordinary connections for profile, order-owner and mapper lookups; default 8
	MaxConnsPerUser         int            // sockets one user id may hold per namespace on a node; 0 = rooms default (20); negative = unlimited (the setting's 0)
	MaxTokenLifetime        time.Duration  // refuse tokens valid longer (exp − iat, or exp − now); 0 = rooms default (7 days); negative = no limit (the setting's 0)

	// The Socket.IO Admin UI (internal/adminui): on when both the username
	// and the bcrypt hash are set.
	AdminUIUsername     string
	AdminUIPasswordHash secret
	AdminUINamespace    string // default "/walcast-admin"
	AdminUIReadOnly     bool   // offer no action
	AdminUIMode         string // "development" (default) or "production"

	// Warnings are printed (logged) at start; they do not stop walcast.
	Warnings []string
}

// The names the CDC reader accepts (it builds replication commands from them).
var (
	slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	pubNameRE  = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)
)

// option is one setting: a flag, the environment variables it falls back to
// (first non-empty wins), a default, and how to store it.
type option struct {
	flag  string
	envs  []string
	def   string
	usage string
	set   func(c *config, v string) error
}

// The option groups each subcommand uses.
const (
	optDB = 1 << iota
	optServe
	optLog
)

func options() []struct {
	groups int
	option
} {
	type o = struct {
		groups int
		option
	}
	str := func(p func(c *config) *string) func(*config, string) error {
		return func(c *config, v string) error { *p(c) = v; return nil }
	}
	dur := func(p func(c *config) *time.Duration) func(*config, string) error {
		return func(c *config, v string) error {
			if v == "" {
				return nil
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration (use Go syntax such as 30s or 2m)", v)
			}
			if d < 0 {
				return fmt.Errorf("%q is negative", v)
			}
			*p(c) = d
			return nil
		}
	}
	size := func(p func(c *config) *int64) func(*config, string) error {
		return func(c *config, v string) error {
			if v == "" {
				return nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a non-negative number of bytes", v)
			}
			*p(c) = n
			return nil
		}
	}
	list := func(p func(c *config) *[]string) func(*config, string) error {
		return func(c *config, v string) error { *p(c) = splitList(v); return nil }
	}
	return []o{
		{optDB | optServe, option{"database-url", []string{"WALCAST_DATABASE_URL", "DATABASE_URL"}, "",
			"Postgres connection string (direct, not a pooler)", func(c *config, v string) error {
				if v == "" {
					return nil
				}
				if _, err := pgconn.ParseConfig(v); err != nil {
					return fmt.Errorf("not a valid connection string: %s", redact.Error(err, v))
				}
				c.DatabaseURL = secret(v)
				return nil
			}}},
		{optDB | optServe, option{"slot", []string{"WALCAST_SLOT"}, "walcast", "replication slot name", func(c *config, v string) error {
			if !slotNameRE.MatchString(v) {
				return fmt.Errorf("%q is not a slot name (lower-case letters, digits and _, at most 63)", v)
			}
			c.Slot = v
			return nil
		}}},
		{optDB | optServe, option{"publication", []string{"WALCAST_PUBLICATION"}, "walcast", "publication name", func(c *config, v string) error {
			if !pubNameRE.MatchString(v) {
				return fmt.Errorf("%q is not a publication name (letters, digits and _, at most 63)", v)
			}
			c.Publication = v
			return nil
		}}},
		{optDB | optServe, option{"mapping", []string{"WALCAST_MAPPING"}, "", "mapping file (default: built-in seed schema)", func(c *config, v string) error {
			if v == "" {
				return nil
			}
			if _, err := cdc.LoadMapping(v); err != nil {
				return err
			}
			c.Mapping = v
			return nil
		}}},
		{optDB | optServe, option{"rules", []string{"WALCAST_RULES"}, "", "rules file (in preview; replaces the mapping when set)", func(c *config, v string) error {
			if v == "" {
				return nil
			}
			if _, err := rules.Load(v); err != nil {
				return err
			}
			c.Rules = v
			return nil
		}}},
		{optServe, option{"listen", []string{"WALCAST_LISTEN"}, ":3001", "HTTP/WebSocket listen address", func(c *config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q is not host:port", v)
			}
			c.Listen = v
			return nil
		}}},
		{optServe, option{"jwt-secret", []string{"WALCAST_JWT_SECRET", "SUPABASE_JWT_SECRET"}, "", "HS256 secret (Supabase legacy JWT secret)", func(c *config, v string) error {
			c.JWTSecret = secret(v)
			return nil
		}}},
		{optServe, option{"jwks-url", []string{"WALCAST_JWKS_URL"}, "", "JWKS URL for RS256/ES256/EdDSA tokens (default: derived from SUPABASE_URL)", func(c *config, v string) error {
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("%q is not an http(s) URL", v)
			}
			c.JWKSURL = v
			return nil
		}}},
		{optServe, option{"jwt-issuer", []string{"WALCAST_JWT_ISSUER"}, "", "required token issuer (iss)", str(func(c *config) *string { return &c.JWTIssuer })}},
		{optServe, option{"jwt-audience", []string{"WALCAST_JWT_AUDIENCE"}, "", "required token audience (aud)", str(func(c *config) *string { return &c.JWTAudience })}},
		{optServe, option{"role-claim", []string{"WALCAST_ROLE_CLAIM"}, "", "claim path of the app role, e.g. app_metadata.role (default: profiles query)", str(func(c *config) *string { return &c.RoleClaim })}},
		{optServe, option{"admin-roles", []string{"WALCAST_ADMIN_ROLES"}, "admin,super_admin", "comma-separated roles treated as admin", list(func(c *config) *[]string { return &c.AdminRoles })}},
		{optServe, option{"allowed-origins", []string{"WALCAST_ALLOWED_ORIGINS"}, "", "comma-separated browser origins (default: STOREFRONT_URL,ADMIN_URL; else all)", list(func(c *config) *[]string { return &c.AllowedOrigins })}},
		{optServe, option{"redis-url", []string{"WALCAST_REDIS_URL", "REDIS_URL"}, "", "Redis URL; enables the Redis bus for several nodes", func(c *config, v string) error {
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
				return fmt.Errorf("%q is not a redis:// URL", redact.URL(v))
			}
			c.RedisURL = v
			return nil
		}}},
		{optServe, option{"redis-mode", []string{"WALCAST_REDIS_MODE"}, "classic", "Redis pub/sub: classic (PUBLISH, every node gets every event) or sharded (Redis 7 SPUBLISH, a node gets only its rooms' events)", func(c *config, v string) error {
			switch v {
			case "classic", "sharded":
				c.RedisMode = v
				return nil
			}
			return fmt.Errorf("%q is not classic or sharded", v)
		}}},
		{optServe, option{"redis-cluster", []string{"WALCAST_REDIS_CLUSTER"}, "false", "the Redis URL names Redis Cluster nodes (redis://host:port?addr=host2:port2)", func(c *config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			c.RedisCluster = b
			return nil
		}}},
		{optServe, option{"shutdown-timeout", []string{"WALCAST_SHUTDOWN_TIMEOUT"}, "10s", "how long a graceful shutdown may drain", dur(func(c *config) *time.Duration { return &c.ShutdownTimeout })}},
		{optServe, option{"rls-recheck-interval", []string{"WALCAST_RLS_RECHECK_INTERVAL"}, "", "re-check rls subscriptions this often (where no event trigger reports policy changes); empty or 0 = never", dur(func(c *config) *time.Duration { return &c.RLSRecheck })}},
		{optServe, option{"ping-interval", []string{"WALCAST_PING_INTERVAL"}, "", "Engine.IO ping interval (default 25s)", dur(func(c *config) *time.Duration { return &c.PingInterval })}},
		{optServe, option{"ping-timeout", []string{"WALCAST_PING_TIMEOUT"}, "", "Engine.IO ping timeout (default 20s)", dur(func(c *config) *time.Duration { return &c.PingTimeout })}},
		{optServe, option{"recovery-window", []string{"WALCAST_RECOVERY_WINDOW"}, "2m", "how long a dropped client can recover missed events; 0 = off", dur(func(c *config) *time.Duration { return &c.RecoveryWindow })}},
		{optServe, option{"max-queue-bytes", []string{"WALCAST_MAX_QUEUE_BYTES"}, "", "per-connection outbound budget in bytes (default 1 MiB)", func(c *config, v string) error {
			var n int64
			if err := size(func(*config) *int64 { return &n })(c, v); err != nil {
				return err
			}
			c.MaxQueueBytes = int(n)
			return nil
		}}},
		{optServe, option{"max-payload", []string{"WALCAST_MAX_PAYLOAD"}, "", "max bytes per Engine.IO message (default 1000000)", size(func(c *config) *int64 { return &c.MaxPayload })}},
		{optServe, option{"rate-limit", []string{"WALCAST_RATE_LIMIT"}, "", "client events per second per socket (default: rooms default)", func(c *config, v string) error {
			if v == "" {
				return nil
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return fmt.Errorf("%q is not a non-negative number", v)
			}
			c.RateLimit = f
			return nil
		}}},
		{optServe, option{"db-pool-size", []string{"WALCAST_DB_POOL_SIZE"}, "8", "ordinary database connections for profile, order-owner and mapping lookups (the replication connection is extra)", func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return fmt.Errorf("%q is not a pool size between 1 and 1000", v)
			}
			c.DBPoolSize = n
			return nil
		}}},
		{optServe, option{"max-token-lifetime", []string{"WALCAST_MAX_TOKEN_LIFETIME"}, "168h", "refuse tokens valid for longer: exp − iat, or exp − now without iat; 0 = no limit", func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%q is not a non-negative duration (use Go syntax such as 24h)", v)
			}
			c.MaxTokenLifetime = d
			if d == 0 {
				c.MaxTokenLifetime = -1 // no limit
			}
			return nil
		}}},
		{optServe, option{"max-conns-per-user", []string{"WALCAST_MAX_CONNS_PER_USER"}, "20", "sockets one user id may have open per namespace on this node; 0 = unlimited", func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1_000_000 {
				return fmt.Errorf("%q is not a connection count between 0 (unlimited) and 1000000", v)
			}
			c.MaxConnsPerUser = n
			if n == 0 {
				c.MaxConnsPerUser = -1 // unlimited
			}
			return nil
		}}},
		{optServe, option{"max-handshakes-per-ip", []string{"WALCAST_MAX_HANDSHAKES_PER_IP"}, "20", "new Engine.IO sessions one client IP may open per second, bursts of five times that; over it 429; 0 = unlimited", perIP(func(c *config) *int { return &c.MaxHandshakesPerIP })}},
		{optServe, option{"max-conns-per-ip", []string{"WALCAST_MAX_CONNS_PER_IP"}, "256", "open connections (WebSocket or polling) of one client IP; over it 429; 0 = unlimited", perIP(func(c *config) *int { return &c.MaxConnsPerIP })}},
		{optServe, option{"max-unauthenticated-per-ip", []string{"WALCAST_MAX_UNAUTHENTICATED_PER_IP"}, "32", "open connections of one client IP without an accepted Socket.IO CONNECT (token); over it 429; 0 = unlimited", perIP(func(c *config) *int { return &c.MaxUnauthenticatedPerIP })}},
		{optServe, option{"trusted-proxies", []string{"WALCAST_TRUSTED_PROXIES"}, "", "comma-separated proxy addresses or CIDRs (e.g. 10.0.0.0/8): for a request from one of them the per-IP caps count the X-Forwarded-For client instead; empty = none (the TCP peer is the client)", func(c *config, v string) error {
			c.TrustedProxies = nil
			for _, f := range splitList(v) {
				p, err := netip.ParsePrefix(f)
				if err != nil {
					a, aerr := netip.ParseAddr(f)
					if aerr != nil {
						return fmt.Errorf("%q is not an IP address or CIDR", f)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				c.TrustedProxies = append(c.TrustedProxies, p.Masked())
			}
			return nil
		}}},
		{optServe, option{"admin-namespace", []string{"WALCAST_ADMIN_NAMESPACE"}, "false", "also serve the /admin namespace, which only admins may connect to", func(c *config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			c.AdminNamespace = b
			return nil
		}}},
		{optServe, option{"admin-ui-username", []string{"WALCAST_ADMIN_UI_USERNAME"}, "", "username of the Socket.IO Admin UI's basic auth; with -admin-ui-password-hash it turns the admin UI namespace on; empty = off", str(func(c *config) *string { return &c.AdminUIUsername })}},
		{optServe, option{"admin-ui-password-hash", []string{"WALCAST_ADMIN_UI_PASSWORD_HASH"}, "", "bcrypt hash of the Socket.IO Admin UI's password (e.g. htpasswd -nbBC 10 '' PASSWORD | cut -c2-)", func(c *config, v string) error {
			if v != "" {
				if _, err := bcrypt.Cost([]byte(v)); err != nil {
					return fmt.Errorf("not a bcrypt hash (make one with: htpasswd -nbBC 10 '' PASSWORD | cut -c2-; quote the $ signs): %w", err)
				}
			}
			c.AdminUIPasswordHash = secret(v)
			return nil
		}}},
		{optServe, option{"admin-ui-namespace", []string{"WALCAST_ADMIN_UI_NAMESPACE"}, "/walcast-admin", "namespace of the Socket.IO Admin UI (enter it in the UI's connection form); must not be / or /admin", func(c *config, v string) error {
			if !strings.HasPrefix(v, "/") {
				v = "/" + v
			}
			if v == "/" || v == "/admin" {
				return fmt.Errorf("%q is a namespace walcast serves to clients: choose another, such as /walcast-admin", v)
			}
			c.AdminUINamespace = v
			return nil
		}}},
		{optServe, option{"admin-ui-readonly", []string{"WALCAST_ADMIN_UI_READONLY"}, "false", "offer the Socket.IO Admin UI no action (disconnect, leave room)", func(c *config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			c.AdminUIReadOnly = b
			return nil
		}}},
		{optServe, option{"admin-ui-mode", []string{"WALCAST_ADMIN_UI_MODE"}, "development", "development (the UI gets every socket, room and event) or production (server stats and counts only)", func(c *config, v string) error {
			if v != "development" && v != "production" {
				return fmt.Errorf("%q is neither development nor production", v)
			}
			c.AdminUIMode = v
			return nil
		}}},
		{optServe, option{"pprof-listen", []string{"WALCAST_PPROF_LISTEN"}, "", "serve Go's profiler at /debug/pprof/ on this address only (e.g. 127.0.0.1:6060; never the public listener); empty = off", func(c *config, v string) error {
			if v == "" {
				c.PprofListen = ""
				return nil
			}
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q is not a host:port address: %w", v, err)
			}
			c.PprofListen = v
			return nil
		}}},
		{optServe, option{"metrics-listen", []string{"WALCAST_METRICS_LISTEN"}, "", "serve /metrics on this address only (e.g. 127.0.0.1:9464), not on the public listener; empty = the public listener", func(c *config, v string) error {
			if v == "" {
				c.MetricsListen = ""
				return nil
			}
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q is not a host:port address: %w", v, err)
			}
			c.MetricsListen = v
			return nil
		}}},
		{optServe, option{"metrics-token", []string{"WALCAST_METRICS_TOKEN"}, "", "require 'Authorization: Bearer <token>' on /metrics; empty = none", func(c *config, v string) error {
			if v != "" && len(v) < 16 {
				return errors.New("a metrics token must be at least 16 characters")
			}
			c.MetricsToken = secret(v)
			return nil
		}}},
		{optServe, option{"pprof", []string{"WALCAST_PPROF"}, "false", "removed: use -pprof-listen / WALCAST_PPROF_LISTEN (the profiler no longer shares the public listener)", func(c *config, v string) error {
			if b, err := strconv.ParseBool(v); err != nil || b {
				return fmt.Errorf("%q: the profiler no longer serves on the public listener (its cmdline exposed the secrets); set WALCAST_PPROF_LISTEN=127.0.0.1:6060 instead", v)
			}
			return nil
		}}},
		{optLog, option{"log-level", []string{"LOG_LEVEL", "WALCAST_LOG_LEVEL"}, "info", "debug, info, warn or error", func(c *config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("%q is not one of debug, info, warn, error", v)
			}
			return nil
		}}},
		{optLog, option{"log-format", []string{"LOG_FORMAT", "WALCAST_LOG_FORMAT"}, "text", "text or json", func(c *config, v string) error {
			v = strings.ToLower(v)
			if v != "text" && v != "json" {
				return fmt.Errorf("%q is not text or json", v)
			}
			c.LogFormat = v
			return nil
		}}},
	}
}

// configFlags registers the flags of the given option groups on fs. Call
// finish after fs.Parse to resolve flags, environment and defaults.
func configFlags(fs *flag.FlagSet, groups int, getenv func(string) string) (finish func() (config, error)) {
	type bound struct {
		option
		val *string
	}
	var bs []bound
	for _, o := range options() {
		if o.groups&groups == 0 {
			continue
		}
		env := ""
		if len(o.envs) > 0 {
			env = " (env " + strings.Join(o.envs, ", else ") + ")"
		}
		bs = append(bs, bound{o.option, fs.String(o.flag, "", o.usage+env+defaultNote(o.def))})
	}
	return func() (config, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		var c config
		var errs []error
		for _, b := range bs {
			v, from := *b.val, "-"+b.flag
			if !set[b.flag] {
				v, from = "", ""
				for _, e := range b.envs {
					if v = strings.TrimSpace(getenv(e)); v != "" {
						from = e
						break
					}
				}
				if from == "" {
					v, from = b.def, "default of -"+b.flag
				}
			}
			if err := b.set(&c, v); err != nil {
				errs = append(errs, &optionError{flag: b.flag, from: from, err: err})
			}
		}
		// Derived values that fall back to the seeds' own variables.
		if groups&optServe != 0 {
			if c.JWKSURL == "" && !set["jwks-url"] {
				if su := strings.TrimRight(strings.TrimSpace(getenv("SUPABASE_URL")), "/"); su != "" {
					u, err := url.Parse(su)
					if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
						errs = append(errs, fmt.Errorf("SUPABASE_URL: %q is not an http(s) URL", su))
					} else {
						c.JWKSURL = su + "/auth/v1/.well-known/jwks.json"
					}
				}
			}
			if len(c.AllowedOrigins) == 0 && !set["allowed-origins"] {
				for _, e := range []string{"STOREFRONT_URL", "ADMIN_URL"} {
					if v := strings.TrimRight(strings.TrimSpace(getenv(e)), "/"); v != "" {
						c.AllowedOrigins = append(c.AllowedOrigins, v)
					}
				}
			}
			for _, o := range c.AllowedOrigins {
				if o == "*" {
					c.AllowedOrigins = nil
					break
				}
				if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
					errs = append(errs, fmt.Errorf("allowed origins: %q is not an origin like https://shop.example.com", o))
				}
			}
			if len(c.AllowedOrigins) == 0 {
				c.Warnings = append(c.Warnings, "no allowed origins configured (WALCAST_ALLOWED_ORIGINS, STOREFRONT_URL, ADMIN_URL): any web page may connect")
			}
			if (c.AdminUIUsername == "") != (c.AdminUIPasswordHash == "") {
				errs = append(errs, errors.New("admin ui: set both WALCAST_ADMIN_UI_USERNAME and WALCAST_ADMIN_UI_PASSWORD_HASH, or neither"))
			}
			if c.JWTSecret == "" && c.JWKSURL == "" {
				errs = append(errs, errors.New("no way to verify tokens: set WALCAST_JWT_SECRET (or SUPABASE_JWT_SECRET), or WALCAST_JWKS_URL (or SUPABASE_URL)"))
			}
			if c.RedisURL == "" && (c.RedisMode == "sharded" || c.RedisCluster) {
				errs = append(errs, errors.New("WALCAST_REDIS_MODE=sharded and WALCAST_REDIS_CLUSTER need WALCAST_REDIS_URL (one node has no Redis bus)"))
			}
			if c.RedisCluster && c.RedisURL != "" {
				if _, err := redis.ParseClusterURL(c.RedisURL); err != nil {
					errs = append(errs, fmt.Errorf("WALCAST_REDIS_URL: not a Redis Cluster URL (redis://host:port?addr=host2:port2): %s", redact.Error(err, c.RedisURL)))
				}
			}
		}
		if groups&(optDB|optServe) != 0 && c.DatabaseURL == "" && !hasErrFor(errs, "database-url") {
			errs = append(errs, errors.New("no database: set WALCAST_DATABASE_URL or DATABASE_URL (a direct connection, not a pooler), or -database-url"))
		}
		return c, errors.Join(errs...)
	}
}

// perIP stores a per-IP cap: a count from 0 (unlimited, stored as -1) to
// 1,000,000.
func perIP(field func(*config) *int) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return fmt.Errorf("%q is not a count between 0 (unlimited) and 1000000", v)
		}
		if n == 0 {
			n = -1
		}
		*field(c) = n
		return nil
	}
}

// optionError is a bad value of one option, named by where it came from.
type optionError struct {
	flag string // the option's flag name
	from string // "-flag", the environment variable, or "default of -flag"
	err  error
}

func (e *optionError) Error() string { return e.from + ": " + e.err.Error() }
func (e *optionError) Unwrap() error { return e.err }

// hasErrFor reports whether errs holds a bad value of the option flag.
func hasErrFor(errs []error, flag string) bool {
	for _, e := range errs {
		var oe *optionError
		if errors.As(e, &oe) && oe.flag == flag {
			return true
		}
	}
	return false
}

func defaultNote(def string) string {
	if def == "" {
		return ""
	}
	return " [default " + def + "]"
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("walcast "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseConfig parses args for a subcommand and resolves its config.
func parseConfig(fs *flag.FlagSet, groups int, args []string, getenv func(string) string) (config, error) {
	finish := configFlags(fs, groups, getenv)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c, err := finish()
	if err != nil {
		return c, fmt.Errorf("bad configuration:\n%w", err)
	}
	return c, nil
}

// newLogger builds the process logger from LOG_LEVEL and LOG_FORMAT.
func newLogger(c config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
