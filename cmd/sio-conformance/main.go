package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
)

// The settings the suites assume (see their READMEs).
const (
	pingInterval   = 300 * time.Millisecond
	pingTimeout    = 200 * time.Millisecond
	maxPayload     = 1_000_000
	connectTimeout = time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sio-conformance:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sio-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":3000", "listen address")
	level := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))

	handler, sio, err := newHandler(log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	log.Warn("listening", logkey.Addr, ln.Addr().String())
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := sio.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newHandler returns the mux with /socket.io/ and /engine.io/, and the Socket.IO server.
func newHandler(log *slog.Logger) (http.Handler, *hub.Server, error) {
	cfg := hub.Config{
		Path:           "/socket.io/",
		PingInterval:   pingInterval,
		PingTimeout:    pingTimeout,
		ConnectTimeout: connectTimeout,
		MaxPayload:     maxPayload,
		Logger:         log,
	}
	sio, err := hub.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("socket.io server: %w", err)
	}
	installSuiteHandlers(sio)

	eioCfg := cfg
	eioCfg.Path = "/engine.io/"
	eio, err := newEchoEngine(eioCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("engine.io server: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio)
	mux.Handle("/engine.io/", eio)
	return mux, sio, nil
}

// installSuiteHandlers declares what socket.io-protocol/test-suite expects (plus
// "emit-with-ack" for the extended suites):
//
//	io.on("connection", s => { s.emit("auth", s.handshake.auth);
//	  s.on("message", (...a) => s.emit("message-back", ...a));
//	  s.on("message-with-ack", (...a) => { const ack = a.pop(); ack(...a) }) })
//	io.of("/custom").on("connection", s => s.emit("auth", s.handshake.auth))
func installSuiteHandlers(srv *hub.Server) {
	emitAuth := func(s *hub.Socket) {
		_ = s.Emit("auth", s.Handshake().Auth)
	}
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		emitAuth(s)
		s.On("message", func(s *hub.Socket, m *hub.Message) {
			_ = s.EmitRaw("message-back", m.Args, m.Attachments)
		})
		s.On("message-with-ack", func(s *hub.Socket, m *hub.Message) {
			_ = m.AckRaw(m.Args, m.Attachments)
		})
		// Not in the official suites: the extended ones (socket.io-protocol PR 33,
		// socketioxide) send "emit-with-ack" and expect the server to emit it back with an
		// ack request, then to emit the client's ack arguments as a plain event.
		s.On("emit-with-ack", func(s *hub.Socket, m *hub.Message) {
			go func() { // the ack is read by this socket's reader: wait elsewhere
				ctx, cancel := context.WithTimeout(s.Context(), 5*time.Second)
				defer cancel()
				ack, err := s.EmitWithAckRaw(ctx, "emit-with-ack", m.Args, m.Attachments)
				if err == nil {
					_ = s.EmitRaw("emit-with-ack", ack.Args, ack.Attachments)
				}
			}()
		})
	})
	srv.Of("/custom").OnConnect(emitAuth)
}
