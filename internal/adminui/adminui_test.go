package adminui_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/adminui"
	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// start runs a hub with the admin namespace on one node (no Publish).
func start(t *testing.T, mod func(*adminui.Config)) (*hub.Server, string) {
	t.Helper()
	srv, ts := hubtest.NewServer(t, hub.Config{})
	cfg := adminui.Config{Server: srv, Username: "admin", PasswordHash: hash(t, "s3cret"), ServerID: "node-a",
		StatsInterval: 200 * time.Millisecond,
		Extra:         func() (string, map[string]any) { return "leader", map[string]any{"role": "leader"} }}
	if mod != nil {
		mod(&cfg)
	}
	a, err := adminui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, ts.URL
}

// next waits for the event name, skipping others.
func next(t *testing.T, c *hubtest.Client, name string, match func(args []json.RawMessage) bool) []json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var skipped []string
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v; skipped %q", name, err, skipped)
		}
		if ev.Name == name && (match == nil || match(ev.Args)) {
			return ev.Args
		}
		if ev.Name != "server_stats" {
			skipped = append(skipped, fmt.Sprintf("%s%s", ev.Name, ev.Args))
		}
	}
}

func TestAdmin_Login(t *testing.T) {
	_, url := start(t, nil)
	for _, auth := range []string{`{"username":"admin","password":"wrong"}`, `{"username":"root","password":"s3cret"}`, `{}`, `{"sessionId":"forged"}`} {
		_, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(auth))
		var ce *hubtest.ConnectError
		if !errors.As(err, &ce) || ce.Message != adminui.MsgInvalidCredentials {
			t.Errorf("Dial with %s: got %v, want connect error %q", auth, err, adminui.MsgInvalidCredentials)
		}
	}
	c, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"s3cret"}`))
	if err != nil {
		t.Fatalf("Dial with the right password: %v", err)
	}
	var session string
	json.Unmarshal(next(t, c, "session", nil)[0], &session)
	cfg := next(t, c, "config", nil)
	if want := `{"supportedFeatures":["DISCONNECT","LEAVE","MLEAVE","MDISCONNECT","AGGREGATED_EVENTS","ALL_EVENTS"]}`; string(cfg[0]) != want {
		t.Errorf("config = %s, want %s", cfg[0], want)
	}
	c.Close()
	// The session id logs in again without the password.
	c2, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"sessionId":"`+session+`"}`))
	if err != nil {
		t.Fatalf("Dial with session %q: %v", session, err)
	}
	c2.Close()
}

func TestAdmin_Protocol(t *testing.T) {
	srv, url := start(t, nil)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.Join("room:a")
		s.On("ping", func(s *hub.Socket, m *hub.Message) { s.Emit("pong", "x") })
	})
	user, err := hubtest.Dial(t.Context(), url, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"s3cret"}`))
	if err != nil {
		t.Fatal(err)
	}
	all := next(t, admin, "all_sockets", nil)
	var socks []struct {
		ID, Nsp, Transport string
		Rooms              []string
	}
	json.Unmarshal(all[0], &socks)
	found := false
	for _, s := range socks {
		if s.ID == user.ID() && s.Nsp == "/" && s.Transport == "websocket" && strings.Join(s.Rooms, ",") == user.ID()+",room:a" {
			found = true
		}
	}
	if !found {
		t.Errorf("all_sockets = %s, want the user socket %s in room:a", all[0], user.ID())
	}
	st := next(t, admin, "server_stats", nil)
	var stats struct {
		ServerID     string `json:"serverId"`
		Hostname     string `json:"hostname"`
		ClientsCount int    `json:"clientsCount"`
		Namespaces   []struct {
			Name         string `json:"name"`
			SocketsCount int    `json:"socketsCount"`
		} `json:"namespaces"`
		Walcast map[string]any `json:"walcast"`
	}
	json.Unmarshal(st[0], &stats)
	if stats.ServerID != "node-a" || !strings.HasSuffix(stats.Hostname, "(leader)") || stats.ClientsCount != 2 || stats.Walcast["role"] != "leader" {
		t.Errorf("server_stats = %s, want node-a, a host name ending in (leader), 2 clients, walcast.role leader", st[0])
	}

	user.Emit("ping", 1)
	next(t, admin, "event_received", func(a []json.RawMessage) bool { return string(a[2]) == `["ping",1]` })
	next(t, admin, "event_sent", func(a []json.RawMessage) bool { return string(a[2]) == `["pong","x"]` })
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"room:a"}, Event: "news", Args: []json.RawMessage{json.RawMessage(`{"n":1}`)}})
	next(t, admin, "event_sent", func(a []json.RawMessage) bool {
		return string(a[1]) == `"room:a"` && string(a[2]) == `["news",{"n":1}]`
	})

	// A second client: socket_connected with its rooms, then room_joined.
	u2, err := hubtest.Dial(t.Context(), url, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	next(t, admin, "socket_connected", func(a []json.RawMessage) bool { return strings.Contains(string(a[0]), u2.ID()) })
	next(t, admin, "room_joined", func(a []json.RawMessage) bool { return string(a[1]) == `"room:a"` && string(a[2]) == `"`+u2.ID()+`"` })

	// Actions: leave one socket's room, then disconnect it.
	admin.Emit("leave", "/", "room:a", u2.ID())
	next(t, admin, "room_left", func(a []json.RawMessage) bool { return string(a[2]) == `"`+u2.ID()+`"` })
	admin.Emit("_disconnect", "/", false, u2.ID())
	next(t, admin, "socket_disconnected", func(a []json.RawMessage) bool {
		return string(a[1]) == `"`+u2.ID()+`"` && string(a[2]) == `"server namespace disconnect"`
	})
	// A disconnect without a target is refused: the first user stays.
	admin.Emit("_disconnect", "/", false)
	admin.Emit("emit", "/", nil, "fake", 1) // not offered
	time.Sleep(300 * time.Millisecond)
	if n := srv.Lookup("/").Socket(user.ID()); n == nil {
		t.Error("a disconnect without a target disconnected the user")
	}
}

func TestAdmin_ReadOnlyAndProduction(t *testing.T) {
	_, url := start(t, func(c *adminui.Config) { c.ReadOnly, c.Mode = true, adminui.Production })
	admin, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"s3cret"}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := next(t, admin, "config", nil)
	if want := `{"supportedFeatures":["AGGREGATED_EVENTS"]}`; string(cfg[0]) != want {
		t.Errorf("config = %s, want %s", cfg[0], want)
	}
	next(t, admin, "server_stats", nil)
}

func TestNew_Errors(t *testing.T) {
	_, err := adminui.New(adminui.Config{Namespace: "/", PasswordHash: "plain", Mode: "fast"})
	for _, want := range []string{"Server is required", "cannot be /", "username is required", "not a bcrypt hash", `mode "fast"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: got %v, want an error naming %q", err, want)
		}
	}
}

// TestAdmin_HashFormats: hashes made by the tools the README names log in:
// htpasswd -nbBC 4 ” pw-htpasswd ($2y$) and bcryptjs.hashSync('pw-bcryptjs', 4)
// ($2a$, what @socket.io/admin-ui's own docs use).
func TestAdmin_HashFormats(t *testing.T) {
	for _, tc := range []struct{ hash, pass string }{
		{"$2y$04$F4pnySIFrNKI64OLCT6wae4a/Bn06G8JNHjTwNnaaXgfvOGU90mqu", "pw-htpasswd"},
		{"$2a$04$uoSVqC9uWm.9GEespD33mu0cZ/T7EiyVfVHDAaKCxRcDYW4oHq/vG", "pw-bcryptjs"},
	} {
		_, url := start(t, func(c *adminui.Config) { c.PasswordHash = tc.hash })
		c, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"`+tc.pass+`"}`))
		if err != nil {
			t.Errorf("login with %s: %v", tc.hash[:4], err)
			continue
		}
		c.Close()
	}
}

// TestAdmin_QuietWithoutAdmins: with no admin socket on any node, a node
// publishes only its server stats; once one logs in, socket events follow.
func TestAdmin_QuietWithoutAdmins(t *testing.T) {
	var mu sync.Mutex
	var events []string
	_, url := start(t, func(c *adminui.Config) {
		c.Publish = func(ctx context.Context, bs []*hub.Broadcast) error {
			mu.Lock()
			for _, b := range bs {
				events = append(events, b.Event)
			}
			mu.Unlock()
			for _, b := range bs {
				if err := c.Server.Broadcast(ctx, b); err != nil {
					return err
				}
			}
			return nil
		}
	})
	user, err := hubtest.Dial(t.Context(), url, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	user.Emit("hello", 1)
	time.Sleep(500 * time.Millisecond) // two stats intervals
	mu.Lock()
	for _, e := range events {
		if e != "server_stats" {
			t.Errorf("published %q with no admin connected, want only server_stats", e)
		}
	}
	mu.Unlock()
	admin, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"s3cret"}`))
	if err != nil {
		t.Fatal(err)
	}
	next(t, admin, "all_sockets", nil)
	user.Emit("hello", 2)
	next(t, admin, "event_received", func(a []json.RawMessage) bool { return string(a[2]) == `["hello",2]` })
}

// TestAdmin_LoginFlood: wrong passwords beyond the per-second budget are
// refused without a bcrypt check, so a flood costs a bounded share of a core;
// a session id still logs in meanwhile.
func TestAdmin_LoginFlood(t *testing.T) {
	_, url := start(t, nil)
	good, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"s3cret"}`))
	if err != nil {
		t.Fatal(err)
	}
	var session string
	json.Unmarshal(next(t, good, "session", nil)[0], &session)
	busy := 0
	for range 30 {
		_, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"username":"admin","password":"wrong"}`))
		var ce *hubtest.ConnectError
		if !errors.As(err, &ce) {
			t.Fatalf("Dial with a wrong password: %v, want a connect error", err)
		}
		if ce.Message == adminui.MsgTooManyLogins {
			busy++
		}
	}
	if busy == 0 {
		t.Errorf("30 wrong passwords in a row: none refused with %q", adminui.MsgTooManyLogins)
	}
	c, err := hubtest.Dial(t.Context(), url, adminui.DefaultNamespace, json.RawMessage(`{"sessionId":"`+session+`"}`))
	if err != nil {
		t.Fatalf("session login during the flood: %v", err)
	}
	c.Close()
}
