package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// closedWithin reads from nc until the server closes it and reports how long
// that took after start; it fails the test if the connection is still open
// after limit.
func closedWithin(t *testing.T, nc net.Conn, r io.Reader, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	nc.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, r)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open %v after it went quiet, want closed by the server", took.Round(time.Millisecond))
	}
	return took
}

// TestHTTPServer_IdleAndStalledConnectionsClosed: an idle keep-alive
// connection and a POST whose body stalls part-way are both closed by the
// server within their timeout (before, only the header timeout was set and
// both stayed open for good, holding a file descriptor and the body's memory).
func TestHTTPServer_IdleAndStalledConnectionsClosed(t *testing.T) {
	const idle, body = 300 * time.Millisecond, 300 * time.Millisecond
	read := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	})
	srv := newHTTPServer(mux, slog.New(slog.DiscardHandler), httpTimeouts{header: time.Second, idle: idle, body: body})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	const slack = 5 * time.Second // the machine is shared; the point is "closed", not "closed fast"

	t.Run("idle keep-alive", func(t *testing.T) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatal("server closed the keep-alive connection right away; the test needs it kept alive")
		}
		took := closedWithin(t, nc, br, time.Now(), idle+slack)
		t.Logf("idle connection closed after %v (IdleTimeout %v)", took.Round(time.Millisecond), idle)
		if took < idle/2 {
			t.Fatalf("idle connection closed after %v, before IdleTimeout %v", took, idle)
		}
	})

	t.Run("stalled POST body", func(t *testing.T) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n%s", strings.Repeat("a", 990))
		start := time.Now()
		select {
		case err := <-read:
			if err == nil {
				t.Fatal("handler read the whole body of a stalled request")
			}
			t.Logf("handler's body read failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		case <-time.After(body + slack):
			t.Fatalf("handler still reading a stalled body after %v", body+slack)
		}
		took := closedWithin(t, nc, nc, start, body+slack)
		t.Logf("stalled POST closed after %v (body timeout %v)", took.Round(time.Millisecond), body)
	})
}
