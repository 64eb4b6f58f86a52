package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfig_Serve(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://u:pw@db:5432/shop", "SUPABASE_JWT_SECRET": "s3cret"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(t *testing.T, c config)
		wantErr []string // each must appear, one per line
	}{
		{name: "Defaults", env: base, check: func(t *testing.T, c config) {
			if c.Listen != ":3001" || c.Slot != "walcast" || c.Publication != "walcast" {
				t.Errorf("listen/slot/publication = %q/%q/%q, want :3001/walcast/walcast", c.Listen, c.Slot, c.Publication)
			}
			if c.JWTSecret != "s3cret" || c.DatabaseURL.Reveal() != base["DATABASE_URL"] {
				t.Errorf("secret/db not taken from the seed variables: %+v", c)
			}
			if c.ShutdownTimeout != 10*time.Second || c.RecoveryWindow != 2*time.Minute || c.LogLevel != slog.LevelInfo || c.LogFormat != "text" {
				t.Errorf("defaults = %v %v %v %q", c.ShutdownTimeout, c.RecoveryWindow, c.LogLevel, c.LogFormat)
			}
			if c.AllowedOrigins != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "any web page") {
				t.Errorf("origins = %v warnings = %v, want allow-all with a warning", c.AllowedOrigins, c.Warnings)
			}
			if c.DBPoolSize != 8 {
				t.Errorf("DBPoolSize = %d, want 8", c.DBPoolSize)
			}
			if c.MaxConnsPerUser != 20 {
				t.Errorf("MaxConnsPerUser = %d, want 20", c.MaxConnsPerUser)
			}
			if c.MaxTokenLifetime != 7*24*time.Hour {
				t.Errorf("MaxTokenLifetime = %v, want 168h", c.MaxTokenLifetime)
			}
			if !reflect.DeepEqual(c.AdminRoles, []string{"admin", "super_admin"}) {
				t.Errorf("AdminRoles = %v", c.AdminRoles)
			}
		}},
		{name: "WalcastVarsWin", env: with("WALCAST_DATABASE_URL", "postgres://a@b/c", "WALCAST_JWT_SECRET", "mine", "WALCAST_REDIS_URL", "redis://r:6379/0", "REDIS_URL", "redis://other:1"),
			check: func(t *testing.T, c config) {
				if c.DatabaseURL.Reveal() != "postgres://a@b/c" || c.JWTSecret != "mine" || c.RedisURL != "redis://r:6379/0" {
					t.Errorf("got %q %q %q", c.DatabaseURL.Reveal(), c.JWTSecret, c.RedisURL)
				}
			}},
		{name: "FlagsWin", env: with("WALCAST_LISTEN", ":9", "LOG_LEVEL", "debug"), args: []string{"-listen", "127.0.0.1:4000", "-log-level", "warn", "-slot", "s2"},
			check: func(t *testing.T, c config) {
				if c.Listen != "127.0.0.1:4000" || c.LogLevel != slog.LevelWarn || c.Slot != "s2" {
					t.Errorf("got %q %v %q", c.Listen, c.LogLevel, c.Slot)
				}
			}},
		{name: "SeedOrigins", env: with("STOREFRONT_URL", "http://localhost:3000", "ADMIN_URL", "http://localhost:3002/"),
			check: func(t *testing.T, c config) {
				want := []string{"http://localhost:3000", "http://localhost:3002"}
				if !reflect.DeepEqual(c.AllowedOrigins, want) || len(c.Warnings) != 0 {
					t.Errorf("origins = %v warnings = %v, want %v", c.AllowedOrigins, c.Warnings, want)
				}
			}},
		{name: "ExplicitOrigins", env: with("WALCAST_ALLOWED_ORIGINS", "https://a.example, https://b.example", "STOREFRONT_URL", "http://x"),
			check: func(t *testing.T, c config) {
				if !reflect.DeepEqual(c.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
					t.Errorf("origins = %v", c.AllowedOrigins)
				}
			}},
		{name: "JWKSFromSupabaseURL", env: map[string]string{"DATABASE_URL": "postgres://x@y/z", "SUPABASE_URL": "https://abc.supabase.co/"},
			check: func(t *testing.T, c config) {
				if c.JWKSURL != "https://abc.supabase.co/auth/v1/.well-known/jwks.json" {
					t.Errorf("JWKSURL = %q", c.JWKSURL)
				}
			}},
		{name: "Durations", env: with("WALCAST_SHUTDOWN_TIMEOUT", "30s", "WALCAST_PING_INTERVAL", "5s", "WALCAST_RECOVERY_WINDOW", "0", "WALCAST_MAX_QUEUE_BYTES", "65536"),
			check: func(t *testing.T, c config) {
				if c.ShutdownTimeout != 30*time.Second || c.PingInterval != 5*time.Second || c.RecoveryWindow != 0 || c.MaxQueueBytes != 65536 {
					t.Errorf("got %v %v %v %d", c.ShutdownTimeout, c.PingInterval, c.RecoveryWindow, c.MaxQueueBytes)
				}
			}},
		{name: "Nothing", env: map[string]string{}, wantErr: []string{"no database", "no way to verify tokens"}},
		{name: "BadValues", env: with("WALCAST_SHUTDOWN_TIMEOUT", "10", "LOG_FORMAT", "xml", "WALCAST_REDIS_URL", "http://r", "WALCAST_ALLOWED_ORIGINS", "shop.example"),
			wantErr: []string{"WALCAST_SHUTDOWN_TIMEOUT: \"10\" is not a duration", "LOG_FORMAT: \"xml\" is not text or json", "WALCAST_REDIS_URL", "allowed origins: \"shop.example\""}},
		{name: "BadDatabaseURLHidesPassword", env: with("DATABASE_URL", "postgres://u:hunter2@db:notaport/x"), wantErr: []string{"DATABASE_URL: not a valid connection string"}},
		{name: "BadNames", env: with("WALCAST_SLOT", "My-Slot", "WALCAST_PUBLICATION", "pub;drop"),
			wantErr: []string{`WALCAST_SLOT: "My-Slot" is not a slot name`, `WALCAST_PUBLICATION: "pub;drop" is not a publication name`}},
		{name: "BadMapping", env: with("WALCAST_MAPPING", "../../testdata/e2e/custom_schema.sql"), wantErr: []string{"WALCAST_MAPPING: mapping ../../testdata/e2e/custom_schema.sql: mapping: parse"}},
		{name: "MissingMapping", env: with("WALCAST_MAPPING", "/nonexistent/m.json"), wantErr: []string{"WALCAST_MAPPING: mapping: read /nonexistent/m.json"}},
		{name: "BadMaxConnsPerUser", env: with("WALCAST_MAX_CONNS_PER_USER", "-3"), wantErr: []string{`WALCAST_MAX_CONNS_PER_USER: "-3" is not a connection count`}},
		{name: "UnlimitedConnsPerUser", env: with("WALCAST_MAX_CONNS_PER_USER", "0"), check: func(t *testing.T, c config) {
			if c.MaxConnsPerUser >= 0 {
				t.Errorf("MaxConnsPerUser = %d, want negative (unlimited) for 0", c.MaxConnsPerUser)
			}
		}},
		{name: "BadMaxTokenLifetime", env: with("WALCAST_MAX_TOKEN_LIFETIME", "-1h"), wantErr: []string{`WALCAST_MAX_TOKEN_LIFETIME: "-1h" is not a non-negative duration`}},
		{name: "NoMaxTokenLifetime", env: with("WALCAST_MAX_TOKEN_LIFETIME", "0"), check: func(t *testing.T, c config) {
			if c.MaxTokenLifetime >= 0 {
				t.Errorf("MaxTokenLifetime = %v, want negative (no limit) for 0", c.MaxTokenLifetime)
			}
		}},
		{name: "BadPoolSize", env: with("WALCAST_DB_POOL_SIZE", "0"), wantErr: []string{`WALCAST_DB_POOL_SIZE: "0" is not a pool size`}},
		{name: "NegativeDuration", env: with(), args: []string{"-ping-timeout", "-5s"}, wantErr: []string{"-ping-timeout: \"-5s\" is negative"}},
		{name: "BadFlag", env: base, args: []string{"-nope"}, wantErr: []string{"flag provided but not defined"}},
		{name: "RedisSharded", env: with("WALCAST_REDIS_URL", "redis://a:1?addr=b:2&addr=c:3", "WALCAST_REDIS_MODE", "sharded", "WALCAST_REDIS_CLUSTER", "true"),
			check: func(t *testing.T, c config) {
				if c.RedisMode != "sharded" || !c.RedisCluster {
					t.Errorf("RedisMode, RedisCluster = %q, %v, want sharded, true", c.RedisMode, c.RedisCluster)
				}
			}},
		{name: "RedisModeDefault", env: with("WALCAST_REDIS_URL", "redis://a:1/0"), check: func(t *testing.T, c config) {
			if c.RedisMode != "classic" || c.RedisCluster {
				t.Errorf("RedisMode, RedisCluster = %q, %v, want classic, false", c.RedisMode, c.RedisCluster)
			}
		}},
		{name: "BadRedisMode", env: with("WALCAST_REDIS_URL", "redis://a:1/0", "WALCAST_REDIS_MODE", "dynamic", "WALCAST_REDIS_CLUSTER", "maybe"),
			wantErr: []string{`WALCAST_REDIS_MODE: "dynamic" is not classic or sharded`, `WALCAST_REDIS_CLUSTER: "maybe" is not true or false`}},
		{name: "ShardedNeedsRedis", env: with("WALCAST_REDIS_MODE", "sharded"), wantErr: []string{"WALCAST_REDIS_MODE=sharded and WALCAST_REDIS_CLUSTER need WALCAST_REDIS_URL"}},
		{name: "BadClusterURL", env: with("WALCAST_REDIS_URL", "redis://u:hunter2@a:1?nope=1", "WALCAST_REDIS_CLUSTER", "true"), wantErr: []string{"WALCAST_REDIS_URL: not a Redis Cluster URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, tt.args, envMap(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("parseConfig = nil error, want %q", tt.wantErr)
				}
				msg := err.Error()
				for _, w := range tt.wantErr {
					if !strings.Contains(msg, w) {
						t.Errorf("parseConfig error = %q, want it to contain %q", msg, w)
					}
				}
				if strings.Contains(msg, "hunter2") {
					t.Errorf("error leaks the password: %q", msg)
				}
				if got := strings.Count(msg, "\n"); got < len(tt.wantErr) && !strings.Contains(msg, "flag provided") {
					t.Errorf("error has %d lines, want one per problem (%d):\n%s", got, len(tt.wantErr), msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestConfig_CheckNeedsOnlyDatabase(t *testing.T) {
	c, err := parseConfig(newFlagSet("check", io.Discard), optDB, []string{"-database-url", "host=/tmp dbname=x"}, envMap(nil))
	if err != nil {
		t.Fatalf("parseConfig(check): %v", err)
	}
	if c.DatabaseURL.Reveal() != "host=/tmp dbname=x" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL.Reveal())
	}
}

func TestSecretRedacted(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "secret", secret("abc"))
	if strings.Contains(b.String(), "abc") || !strings.Contains(b.String(), "[redacted]") {
		t.Errorf("log line = %q, want the secret redacted", b.String())
	}
}

func TestRun_Commands(t *testing.T) {
	if out, err := runCapture(t, nil); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "walcast serve") {
		t.Errorf("run() = %v, %q; want usage and flag.ErrHelp", err, out)
	}
	if out, err := runCapture(t, nil, "version"); err != nil || !strings.HasPrefix(out, "walcast ") {
		t.Errorf("run(version) = %v, %q", err, out)
	}
	if _, err := runCapture(t, nil, "bogus"); err == nil || !strings.Contains(err.Error(), `unknown command "bogus"`) {
		t.Errorf("run(bogus) = %v, want unknown command", err)
	}
	if out, err := runCapture(t, nil, "serve", "-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "WALCAST_DATABASE_URL") {
		t.Errorf("run(serve -h) = %v, want flag help naming the env variables:\n%s", err, out)
	}
	if out, err := runCapture(t, nil, "serve"); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("run(serve) with no env = %v, %q; want the config errors", err, out)
	}
}

// A bad database URL is one problem, whichever way it was given: before, the
// check for a missing URL matched the word "database" in the error text, so
// DATABASE_URL (upper case) also got "no database".
func TestConfig_BadDatabaseURLOneError(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
	}{
		{env: map[string]string{"DATABASE_URL": "postgres://u:pw@db:notaport/x", "WALCAST_JWT_SECRET": "s"}},
		{env: map[string]string{"WALCAST_JWT_SECRET": "s"}, args: []string{"-database-url", "postgres://u:pw@db:notaport/x"}},
	} {
		_, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, tc.args, envMap(tc.env))
		if err == nil || !strings.Contains(err.Error(), "not a valid connection string") {
			t.Fatalf("parseConfig(%v, %v) = %v, want the bad URL reported", tc.env, tc.args, err)
		}
		if strings.Contains(err.Error(), "no database") {
			t.Errorf("parseConfig(%v, %v) = %q: a bad URL is not a missing one", tc.env, tc.args, err)
		}
	}
}
