package main

import (
	"net/http"
	"net/netip"
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
