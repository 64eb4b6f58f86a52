package main

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIPFunc(t *testing.T) {
	if clientIPFunc(nil) != nil {
		t.Fatal("clientIPFunc(nil) is not nil: without trusted proxies the TCP peer must count")
	}
	f := clientIPFunc([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"UntrustedPeerIgnoresHeader", "192.0.2.9:5000", []string{"198.51.100.1"}, ""},
		{"TrustedPeer", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"SpoofedLeftEntries", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"ProxyChain", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"SeveralHeaders", "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.2"}, "198.51.100.2"},
		{"NoHeader", "10.1.2.3:5000", nil, ""},
		{"Garbage", "10.1.2.3:5000", []string{"not-an-ip"}, ""},
		{"IPv6", "[::ffff:10.1.2.3]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := f(r); got != tc.want {
				t.Errorf("client IP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfig_OpsAndPerIP(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://u:pw@db:5432/shop", "WALCAST_JWT_SECRET": "s3cret"}
	parse := func(args ...string) (config, error) {
		return parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, args, envMap(env))
	}
	c, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxHandshakesPerIP != 20 || c.MaxConnsPerIP != 256 || c.MaxUnauthenticatedPerIP != 32 || c.MetricsListen != "" || c.MetricsToken != "" || c.TrustedProxies != nil {
		t.Errorf("defaults: %d %d %d %q %q %v", c.MaxHandshakesPerIP, c.MaxConnsPerIP, c.MaxUnauthenticatedPerIP, c.MetricsListen, c.MetricsToken, c.TrustedProxies)
	}
	c, err = parse("-max-handshakes-per-ip", "0", "-max-conns-per-ip", "5", "-trusted-proxies", "10.0.0.0/8, 192.0.2.7, ::1",
		"-metrics-listen", "127.0.0.1:9464", "-metrics-token", "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxHandshakesPerIP != -1 || c.MaxConnsPerIP != 5 || c.MetricsListen != "127.0.0.1:9464" || c.MetricsToken != "0123456789abcdef" {
		t.Errorf("parsed: %d %d %q", c.MaxHandshakesPerIP, c.MaxConnsPerIP, c.MetricsListen)
	}
	if got := fmt.Sprint(c.TrustedProxies); got != "[10.0.0.0/8 192.0.2.7/32 ::1/128]" {
		t.Errorf("trusted proxies = %s", got)
	}
	_, err = parse("-metrics-token", "short", "-trusted-proxies", "proxy.example", "-max-unauthenticated-per-ip", "-1", "-metrics-listen", "9464")
	for _, want := range []string{"at least 16 characters", `"proxy.example" is not an IP address or CIDR`, `"-1" is not a count`, `"9464" is not a host:port`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad values: err = %v, want it to contain %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "short") {
		t.Errorf("the error shows the token: %v", err)
	}
}
