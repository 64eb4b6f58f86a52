package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/testutil"
	"github.com/walcast/walcast/rooms"
)

// Users of the test shop (Supabase user ids are UUIDs).
const (
	uCustomer1 = "11111111-1111-4111-8111-111111111111"
	uCustomer2 = "22222222-2222-4222-8222-222222222222"
	uFlooder   = "33333333-3333-4333-8333-333333333333"
	uGood      = "44444444-4444-4444-8444-444444444444"
	uSeller    = "55555555-5555-4555-8555-555555555555"
	uBusy      = "66666666-6666-4666-8666-666666666666"
	uExpiring  = "77777777-7777-4777-8777-777777777777"
	uAdmin     = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"

	order1 = "0d000001-0000-4000-8000-000000000001" // customer1's
	order2 = "0d000002-0000-4000-8000-000000000002" // customer2's

	testMaxConns = 3
	testMaxRooms = 10
)

const schema = `
create table profiles (user_id uuid primary key, role text not null, email text, full_name text);
create table orders (id uuid primary key, user_id uuid not null, status text not null default 'pending');
insert into profiles values
  ('` + uAdmin + `', 'admin', 'boss@example.test', 'The Boss'),
  ('` + uCustomer2 + `', 'customer', null, null);
insert into orders (id, user_id) values ('` + order1 + `', '` + uCustomer1 + `'), ('` + order2 + `', '` + uCustomer2 + `');
`

type staticMetrics struct{}

func (staticMetrics) AdminMetrics(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`{"metrics":{"totalRevenue":120.5,"totalOrders":3,"averageOrderValue":40.17},"timestamp":1700000000000}`), nil
}

// stack is a running hub with the policy installed, its Postgres, keys and
// JWKS server.
type stack struct {
	hub  *hub.Server
	pol  *rooms.Policy
	url  string
	keys *testKeys
	jwks *jwksServer
	db   *pgxpool.Pool

	mu      sync.Mutex
	sockets map[string]*hub.Socket
}

type stackOpts struct {
	recovery       bool         // hub connection state recovery on
	defaultPayload bool         // hub MaxPayload left at its default (1e6)
	adapter        hub.Adapter  // nil = one node
	kinds          []rooms.Kind // nil = the built-in ones
	sql            string       // run after the schema
}

func startStack(t *testing.T, o ...stackOpts) *stack {
	t.Helper()
	var opt stackOpts
	if len(o) > 0 {
		opt = o[0]
	}
	ctx := t.Context()
	pg := pgtest.New(t, pgtest.Options{})
	if err := pg.CreateDatabase(ctx, "shop"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	if out, err := pg.Psql(ctx, "shop", schema+opt.sql); err != nil {
		t.Fatalf("schema: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(ctx, pg.URL("shop"))
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)

	k := genKeys(t)
	js := newJWKSServer(t, k)
	log := testutil.Logger(t, slog.LevelDebug)
	pol, err := rooms.New(rooms.Config{
		JWTSecret:              rooms.Secret(k.secret),
		JWKSURL:                js.URL(),
		Issuer:                 testIssuer,
		Audience:               testAudience,
		Leeway:                 time.Second,
		KeyLookupTimeout:       time.Second,
		JWKSMinRefreshInterval: 100 * time.Millisecond,
		RoleClaim:              "app_metadata.role",
		DB:                     pool,
		EventRate:              20,
		EventBurst:             40,
		AbuseLimit:             200,
		MaxRoomsPerSocket:      testMaxRooms,
		MaxConnsPerUser:        testMaxConns,
		AdminNamespace:         true,
		Metrics:                staticMetrics{},
		Kinds:                  opt.kinds,
		Logger:                 log,
	})
	if err != nil {
		t.Fatalf("rooms.New: %v", err)
	}
	hcfg := hub.Config{Logger: log, MaxPayload: 4 << 20, PingInterval: 2 * time.Second, PingTimeout: 2 * time.Second, Adapter: opt.adapter}
	if opt.defaultPayload {
		hcfg.MaxPayload = 0
	}
	if opt.recovery {
		hcfg.Recovery = &hub.RecoveryConfig{}
	}
	srv, err := hub.New(hcfg)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	if err := pol.Install(srv); err != nil {
		t.Fatalf("Install: %v", err)
	}
	st := &stack{hub: srv, pol: pol, keys: k, jwks: js, db: pool, sockets: make(map[string]*hub.Socket)}
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		st.mu.Lock()
		st.sockets[s.ID()] = s
		st.mu.Unlock()
	})
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = pol.Run(runCtx) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = hs.Close()
		stop()
		wg.Wait()
	})
	st.url = "http://" + ln.Addr().String()
	return st
}

// socket returns the server side of the socket with id sid.
func (s *stack) socket(t *testing.T, sid string) *hub.Socket {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	so, ok := s.sockets[sid]
	if !ok {
		t.Fatalf("no server socket %s", sid)
	}
	return so
}

// token signs an RS256 (JWKS) token for user, valid for d, with an optional
// app_metadata.role claim.
func (s *stack) token(t testing.TB, user, role string, d time.Duration) string {
	c := claims(user, d)
	if role != "" {
		c["app_metadata"] = map[string]any{"role": role}
	}
	return s.keys.rs(t, c)
}

func codeOf(l *dline) string {
	var d struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(l.Data, &d)
	return d.Code
}

// ackResult decodes {ok, error}.
func ackResult(t *testing.T, raw json.RawMessage, derr string) (bool, string) {
	t.Helper()
	if derr != "" {
		t.Fatalf("ack: %s", derr)
	}
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("ack %s: %v", raw, err)
	}
	return r.OK, r.Error
}

// TestPolicy_Table checks each refusal of the policy, one table row each,
// against a running hub and real socket.io-client sockets, while a
// well-behaved client keeps receiving its events.
func TestPolicy_Table(t *testing.T) {
	st := startStack(t)
	d := startDriver(t, st.url)
	k := st.keys

	// The well-behaved client, connected throughout.
	if l := d.connect("good", st.token(t, uGood, "", time.Hour), connectOpts{}); l.Ev != "connect" {
		t.Fatalf("good client: got %s %q, want connect", l.Ev, l.Message)
	}
	if ok, e := ackOf(t, d, "good", rooms.EventSubscribeProduct, "p1"); !ok {
		t.Fatalf("good subscribe:product: %s", e)
	}
	var sent atomic.Int64
	stopPump := make(chan struct{})
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopPump:
				return
			case <-tk.C:
			}
			n := sent.Add(1)
			st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{rooms.RoomUser(uGood)}, Event: "notification",
				Args: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"title":"t","message":"m","type":"info","seq":%d}`, n))}})
			st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{rooms.RoomProduct("p1")}, Event: "product:stock-updated",
				Args: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"variantId":"v1","available":%d,"timestamp":1}`, n))}})
		}
	}()

	type refusedConnect struct {
		name    string
		nsp     string
		token   string
		msg     string
		code    string
		comment string
	}
	forged := func(c jwt.MapClaims) jwt.MapClaims { return c }
	connectRows := []refusedConnect{
		{name: "NoToken", token: "", msg: rooms.MsgTokenRequired, code: rooms.CodeTokenMissing},
		{name: "Garbage", token: "garbage.not.ajwt", msg: rooms.MsgInvalidToken, code: rooms.CodeMalformed},
		{name: "AlgNone", token: k.none(t, claims(uCustomer1, time.Hour)), msg: rooms.MsgInvalidToken, code: rooms.CodeAlgNotAllowed},
		{name: "HS256WithRSAPublicKey", token: k.confused(t, claims(uCustomer1, time.Hour)), msg: rooms.MsgInvalidToken, code: rooms.CodeBadSignature},
		{name: "Expired", token: k.rs(t, claims(uCustomer1, -time.Minute)), msg: rooms.MsgTokenExpired, code: rooms.CodeTokenExpired},
		{name: "NotYetValid", token: func() string {
			c := claims(uCustomer1, time.Hour)
			c["nbf"] = time.Now().Add(10 * time.Minute).Unix()
			return k.rs(t, c)
		}(), msg: rooms.MsgInvalidToken, code: rooms.CodeNotYetValid},
		{name: "WrongAudience", token: func() string {
			c := claims(uCustomer1, time.Hour)
			c["aud"] = "anon"
			return k.rs(t, c)
		}(), msg: rooms.MsgInvalidToken, code: rooms.CodeBadAudience},
		{name: "WrongIssuer", token: func() string {
			c := claims(uCustomer1, time.Hour)
			c["iss"] = "https://evil.example/auth/v1"
			return k.hs(t, c)
		}(), msg: rooms.MsgInvalidToken, code: rooms.CodeBadIssuer},
		{name: "UnknownKid", token: sign(t, jwt.SigningMethodRS256, "kid-nobody-published", k.rsa, forged(claims(uCustomer1, time.Hour))),
			msg: rooms.MsgInvalidToken, code: rooms.CodeUnknownKID},
		{name: "CustomerToAdminNamespace", nsp: "/admin", token: st.token(t, uCustomer1, "", time.Hour), msg: rooms.MsgAdminOnly, code: rooms.CodeNotAdmin},
		{name: "SellerToAdminNamespace", nsp: "/admin", token: st.token(t, uSeller, "seller", time.Hour), msg: rooms.MsgAdminOnly, code: rooms.CodeNotAdmin},
	}
	for _, row := range connectRows {
		t.Run("Connect/"+row.name, func(t *testing.T) {
			l := d.connect(row.name, row.token, connectOpts{nsp: row.nsp, noRetry: true})
			if l.Ev != "connect_error" || l.Message != row.msg || codeOf(l) != row.code {
				t.Fatalf("got %s message=%q data=%s, want connect_error %q {code:%q}", l.Ev, l.Message, l.Data, row.msg, row.code)
			}
			t.Logf("refused: message=%q data=%s", l.Message, l.Data)
		})
	}

	t.Run("Connect/TooManyConnections", func(t *testing.T) {
		tok := st.token(t, uBusy, "", time.Hour)
		for i := range testMaxConns {
			if l := d.connect(fmt.Sprintf("busy%d", i), tok, connectOpts{noRetry: true}); l.Ev != "connect" {
				t.Fatalf("connection %d: got %s %q, want connect", i, l.Ev, l.Message)
			}
		}
		l := d.connect("busyX", tok, connectOpts{noRetry: true})
		if l.Ev != "connect_error" || l.Message != rooms.MsgTooManyConns || codeOf(l) != rooms.CodeTooManyConns {
			t.Fatalf("got %s %q %s, want connect_error %q", l.Ev, l.Message, l.Data, rooms.MsgTooManyConns)
		}
		t.Logf("refused: message=%q data=%s", l.Message, l.Data)
		// Closing one frees a slot.
		d.send(map[string]any{"op": "close", "name": "busy0"})
		d.wait("busy0 closed", driverWait, func(l *dline) bool { return l.Name == "busy0" && l.Ev == "closed" })
		waitFor(t, "slot released", func() bool { return st.pol.ConnsOf("/", uBusy) < testMaxConns })
		if l := d.connect("busyY", tok, connectOpts{noRetry: true}); l.Ev != "connect" {
			t.Fatalf("after closing one: got %s %q, want connect", l.Ev, l.Message)
		}
	})

	// A customer with two devices, for the event rows.
	tokC1 := st.token(t, uCustomer1, "", time.Hour)
	if l := d.connect("c1", tokC1, connectOpts{transports: []string{"websocket"}}); l.Ev != "connect" {
		t.Fatalf("c1: got %s %q", l.Ev, l.Message)
	}
	if l := d.connect("c1b", tokC1, connectOpts{}); l.Ev != "connect" {
		t.Fatalf("c1b: got %s %q", l.Ev, l.Message)
	}

	type eventRow struct {
		name    string
		event   string
		args    []any
		wantErr string // "" = {ok:true}
	}
	eventRows := []eventRow{
		{"SubscribeOwnOrder", rooms.EventSubscribeOrder, []any{order1}, ""},
		{"SubscribeOtherUsersOrder", rooms.EventSubscribeOrder, []any{order2}, rooms.ErrTextOrderDenied},
		{"SubscribeMissingOrder", rooms.EventSubscribeOrder, []any{"0d000009-0000-4000-8000-000000000009"}, rooms.ErrTextOrderDenied},
		{"SubscribeOrderSlug", rooms.EventSubscribeOrder, []any{"not-a-uuid"}, rooms.ErrTextOrderDenied},
		{"SubscribeMetricsAsCustomer", rooms.EventSubscribeMetrics, nil, rooms.ErrTextAdminOnly},
		{"InventoryUpdated", "inventory:updated", []any{map[string]any{"variantId": "v1", "productId": "p1", "available": 0}}, rooms.ErrTextUnknownEvent + `: "inventory:updated"`},
		{"UnknownEvent", "admin:new-order", []any{map[string]any{}}, rooms.ErrTextUnknownEvent + `: "admin:new-order"`},
		{"RoomIDTooLong", rooms.EventSubscribeProduct, []any{strings.Repeat("a", 65)}, rooms.ErrTextBadRoomID},
		{"RoomIDDotDot", rooms.EventSubscribeProduct, []any{"../admin:room"}, rooms.ErrTextBadRoomID},
		{"RoomIDColon", rooms.EventSubscribeProduct, []any{"x:admin:room"}, rooms.ErrTextBadRoomID},
		{"RoomIDNumber", rooms.EventSubscribeProduct, []any{42}, rooms.ErrTextNotString},
		{"RoomIDObject", rooms.EventSubscribeProduct, []any{map[string]any{"id": "p1"}}, rooms.ErrTextNotString},
		{"RoomIDNull", rooms.EventSubscribeProduct, []any{nil}, rooms.ErrTextNotString},
		{"RoomIDMissing", rooms.EventSubscribeProduct, nil, rooms.ErrTextNotString},
		{"Cart2MB", rooms.EventCartUpdate, []any{map[string]any{"items": strings.Repeat("x", 2<<20)}},
			fmt.Sprintf("%s (%d bytes, max %d)", rooms.ErrTextCartTooLarge, 2<<20+12, rooms.DefaultMaxCartBytes)},
		{"SubscribeProductUUID", rooms.EventSubscribeProduct, []any{"3f1c2a8e-7b1d-4c55-9a7e-0d3c1e2f4a5b"}, ""},
		{"UnsubscribeProduct", rooms.EventUnsubscribeProduct, []any{"3f1c2a8e-7b1d-4c55-9a7e-0d3c1e2f4a5b"}, ""},
	}
	for _, row := range eventRows {
		t.Run("Event/"+row.name, func(t *testing.T) {
			ok, e := ackOf(t, d, "c1", row.event, row.args...)
			switch {
			case row.wantErr == "" && !ok:
				t.Fatalf("got {ok:false,error:%q}, want {ok:true}", e)
			case row.wantErr != "" && (ok || e != row.wantErr):
				t.Fatalf("got {ok:%v,error:%q}, want {ok:false,error:%q}", ok, e, row.wantErr)
			}
			if row.wantErr != "" {
				t.Logf("refused: {ok:false,error:%q}", e)
			}
		})
	}

	t.Run("Event/TooManyRooms", func(t *testing.T) {
		// c1 holds order1 already; fill up to the cap with products.
		var last string
		for i := range testMaxRooms {
			ok, e := ackOf(t, d, "c1b", rooms.EventSubscribeProduct, fmt.Sprintf("prod-%d", i))
			if !ok {
				t.Fatalf("subscription %d: %s", i, e)
			}
		}
		ok, e := ackOf(t, d, "c1b", rooms.EventSubscribeProduct, "one-too-many")
		last = e
		want := fmt.Sprintf("%s (max %d)", rooms.ErrTextTooManyRooms, testMaxRooms)
		if ok || last != want {
			t.Fatalf("got {ok:%v,error:%q}, want {ok:false,error:%q}", ok, last, want)
		}
		t.Logf("refused: {ok:false,error:%q}", last)
		// Unsubscribing frees a place.
		if ok, e := ackOf(t, d, "c1b", rooms.EventUnsubscribeProduct, "prod-0"); !ok {
			t.Fatal(e)
		}
		if ok, e := ackOf(t, d, "c1b", rooms.EventSubscribeProduct, "one-too-many"); !ok {
			t.Fatalf("after unsubscribe: %s", e)
		}
	})

	t.Run("CartRelayToOtherDevicesOnly", func(t *testing.T) {
		ok, e := ackOf(t, d, "c1", rooms.EventCartUpdate, map[string]any{"items": []any{map[string]any{"variantId": "v1", "qty": 2}}})
		if !ok {
			t.Fatalf("cart:update: %s", e)
		}
		l := d.wait("cart:synced on c1b", driverWait, func(l *dline) bool {
			return l.Name == "c1b" && l.Ev == "event" && l.Event == rooms.EventCartSynced
		})
		var got struct {
			Cart      map[string]any `json:"cart"`
			UpdatedBy string         `json:"updatedBy"`
			Timestamp int64          `json:"timestamp"`
		}
		if err := json.Unmarshal(l.Args[0], &got); err != nil || got.Cart["items"] == nil || got.UpdatedBy == "" || got.Timestamp == 0 {
			t.Fatalf("cart:synced payload %s (%v), want {cart,updatedBy,timestamp}", l.Args[0], err)
		}
		time.Sleep(200 * time.Millisecond)
		if n := d.count(func(l *dline) bool { return l.Name == "c1" && l.Event == rooms.EventCartSynced }); n != 0 {
			t.Fatalf("sender got %d cart:synced, want 0", n)
		}
		if n := d.count(func(l *dline) bool { return l.Name == "c2" && l.Event == rooms.EventCartSynced }); n != 0 {
			t.Fatalf("another user got cart:synced")
		}
	})

	t.Run("Event/Flood1000InOneSecond", func(t *testing.T) {
		if l := d.connect("flooder", st.token(t, uFlooder, "", time.Hour), connectOpts{transports: []string{"websocket"}, noRetry: true}); l.Ev != "connect" {
			t.Fatalf("flooder: got %s %q", l.Ev, l.Message)
		}
		id := d.id()
		d.send(map[string]any{"op": "flood", "name": "flooder", "id": id, "event": rooms.EventSubscribeProduct, "args": []any{"p2"}, "count": 1000, "ms": 1000})
		idj, _ := json.Marshal(id)
		l := d.wait("flood result", 30*time.Second, func(l *dline) bool { return l.Name == "flooder" && l.Ev == "flood" && string(l.ID) == string(idj) })
		t.Logf("1000 subscribe:product in 1s: acks %v, disconnected=%v", l.Results, l.Disconnected)
		if l.Results["ok"] > 40+20*3 {
			t.Errorf("ok acks: got %d, want <= burst 40 + 20/s", l.Results["ok"])
		}
		if l.Results[rooms.ErrTextRateLimited] < 100 {
			t.Errorf("%q acks: got %d, want >= 100", rooms.ErrTextRateLimited, l.Results[rooms.ErrTextRateLimited])
		}
		if !l.Disconnected {
			t.Errorf("flooder not disconnected after sustained abuse")
		}
		// The policy sends a namespace DISCONNECT ("io server disconnect"); the
		// events the client still had in flight then arrive for a namespace it
		// left, which closes the connection ("transport close") when they beat
		// the DISCONNECT packet, as with the reference server.
		dl := d.wait("flooder disconnect", driverWait, func(l *dline) bool { return l.Name == "flooder" && l.Ev == "disconnect" })
		if dl.Reason != "io server disconnect" && dl.Reason != "transport close" {
			t.Errorf("flooder disconnect reason: got %q, want io server disconnect", dl.Reason)
		}
		t.Logf("flooder disconnect reason: %q", dl.Reason)
	})

	t.Run("Admin", func(t *testing.T) {
		tok := st.token(t, uAdmin, "", time.Hour) // role from the profiles table
		if l := d.connect("admin", tok, connectOpts{}); l.Ev != "connect" {
			t.Fatalf("admin: got %s %q %s", l.Ev, l.Message, l.Data)
		}
		if l := d.connect("adminNsp", tok, connectOpts{nsp: "/admin"}); l.Ev != "connect" {
			t.Fatalf("admin to /admin: got %s %q %s", l.Ev, l.Message, l.Data)
		}
		if ok, e := ackOf(t, d, "admin", rooms.EventSubscribeMetrics); !ok {
			t.Fatalf("admin subscribe:metrics: %s", e)
		}
		l := d.wait("current metrics", driverWait, func(l *dline) bool {
			return l.Name == "admin" && l.Ev == "event" && l.Event == rooms.EventMetricsUpdated
		})
		if !strings.Contains(string(l.Args[0]), `"totalOrders":3`) {
			t.Fatalf("metrics payload %s", l.Args[0])
		}
		if ok, e := ackOf(t, d, "admin", rooms.EventSubscribeOrder, order2); !ok {
			t.Fatalf("admin subscribe:order of another user's order: %s", e)
		}
		st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{rooms.RoomAdmin}, Event: "admin:new-order", Args: []json.RawMessage{json.RawMessage(`{"order":{"id":"o"},"timestamp":1}`)}})
		d.wait("admin:new-order on admin", driverWait, func(l *dline) bool { return l.Name == "admin" && l.Event == "admin:new-order" })
	})

	t.Run("Seller", func(t *testing.T) {
		if l := d.connect("seller", st.token(t, uSeller, "seller", time.Hour), connectOpts{}); l.Ev != "connect" {
			t.Fatalf("seller: got %s %q", l.Ev, l.Message)
		}
		st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{rooms.RoomSeller(uSeller)}, Event: "order:new", Args: []json.RawMessage{json.RawMessage(`{"id":"o"}`)}})
		d.wait("order:new on seller", driverWait, func(l *dline) bool { return l.Name == "seller" && l.Event == "order:new" })
		if n := d.count(func(l *dline) bool { return l.Name == "c1" && l.Event == "order:new" }); n != 0 {
			t.Fatalf("customer got a seller event")
		}
		if ok, e := ackOf(t, d, "seller", rooms.EventSubscribeMetrics); ok || e != rooms.ErrTextAdminOnly {
			t.Fatalf("seller subscribe:metrics: got ok=%v %q, want refusal", ok, e)
		}
	})

	t.Run("KeyRotation", func(t *testing.T) {
		st.jwks.add(t, k.rsa2.Public(), kidRSA2, "RS256")
		time.Sleep(150 * time.Millisecond) // past JWKSMinRefreshInterval since the unknown-kid row
		tok := sign(t, jwt.SigningMethodRS256, kidRSA2, k.rsa2, claims(uCustomer2, time.Hour))
		start := time.Now()
		l := d.connect("rotated", tok, connectOpts{transports: []string{"websocket"}, noRetry: true})
		took := l.at.Sub(start)
		if l.Ev != "connect" {
			t.Fatalf("token with the new kid: got %s %q %s, want connect", l.Ev, l.Message, l.Data)
		}
		t.Logf("handshake with a new kid (JWKS refetch) took %v", took)
		// A correctness bound (KeyLookupTimeout 1s plus connection setup), not a perf test.
		if took > 3*time.Second {
			t.Errorf("handshake with a new kid took %v, want about <= KeyLookupTimeout (1s)", took)
		}
	})

	t.Run("SlowJWKSHandshakeBounded", func(t *testing.T) {
		st.jwks.delay.Store(int64(4 * time.Second))
		defer st.jwks.delay.Store(0)
		time.Sleep(150 * time.Millisecond)
		tok := sign(t, jwt.SigningMethodRS256, "kid-during-slow-jwks", k.rsa, claims(uCustomer2, time.Hour))
		start := time.Now()
		l := d.connect("slowjwks", tok, connectOpts{transports: []string{"websocket"}, noRetry: true})
		took := l.at.Sub(start)
		if l.Ev != "connect_error" || codeOf(l) != rooms.CodeKeyLookupTimeout {
			t.Fatalf("got %s %q %s, want connect_error {code:%q}", l.Ev, l.Message, l.Data, rooms.CodeKeyLookupTimeout)
		}
		t.Logf("refused after %v: message=%q data=%s", took, l.Message, l.Data)
		if took > 3*time.Second {
			t.Errorf("handshake during a 4s JWKS fetch took %v, want about KeyLookupTimeout (1s)", took)
		}
	})

	// The well-behaved client received every event sent during the table.
	close(stopPump)
	<-pumpDone
	n := sent.Load()
	want := fmt.Sprintf(`"seq":%d}`, n)
	d.wait("last notification on good", driverWait, func(l *dline) bool {
		return l.Name == "good" && l.Event == "notification" && len(l.Args) > 0 && strings.HasSuffix(string(l.Args[0]), want)
	})
	// The pump's last stock update is broadcast after its last notification
	// (another room, its own frame): wait for it too before counting.
	wantStock := fmt.Sprintf(`"available":%d,`, n)
	d.wait("last stock update on good", driverWait, func(l *dline) bool {
		return l.Name == "good" && l.Event == "product:stock-updated" && len(l.Args) > 0 && strings.Contains(string(l.Args[0]), wantStock)
	})
	gotN := d.count(func(l *dline) bool { return l.Name == "good" && l.Event == "notification" })
	gotS := d.count(func(l *dline) bool { return l.Name == "good" && l.Event == "product:stock-updated" })
	t.Logf("well-behaved client: %d/%d notifications, %d/%d stock updates", gotN, n, gotS, n)
	if int64(gotN) != n || int64(gotS) != n {
		t.Errorf("well-behaved client got %d notifications and %d stock updates, want %d each", gotN, gotS, n)
	}
	if dc := d.count(func(l *dline) bool { return l.Name == "good" && l.Ev == "disconnect" }); dc != 0 {
		t.Errorf("well-behaved client was disconnected %d times:\n%s", dc, d.lines4("good"))
	}
	// inventory:updated from c1 never produced a stock event: every stock
	// update the good client saw came from the pump.
	if x := d.count(func(l *dline) bool {
		return l.Name == "good" && l.Event == "product:stock-updated" && strings.Contains(string(l.Args[0]), `"available":0`)
	}); x != 0 {
		t.Errorf("a client-sent inventory:updated reached subscribers")
	}
}

// ackOf emits event on socket name with an ack and decodes the {ok,error} answer.
func ackOf(t *testing.T, d *driver, name, event string, args ...any) (bool, string) {
	t.Helper()
	raw, derr := d.emitAck(name, event, args...)
	return ackResult(t, raw, derr)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(driverWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPolicy_ExpiryWhileConnected: a socket is dropped at its token's exp and
// socket.io-client reconnects on its own with the fresh token the app put in
// socket.auth; without a fresh token the reconnect is refused "Token expired".
func TestPolicy_ExpiryWhileConnected(t *testing.T) {
	st := startStack(t)
	d := startDriver(t, st.url)

	short := st.token(t, uExpiring, "", 3*time.Second)
	exp := time.Unix(time.Now().Add(3*time.Second).Unix(), 0)
	l := d.connect("exp", short, connectOpts{})
	if l.Ev != "connect" {
		t.Fatalf("connect: got %s %q", l.Ev, l.Message)
	}
	firstID := string(l.ID)
	// The app refreshes its session and updates socket.auth, as supabase-js
	// apps do on TOKEN_REFRESHED.
	d.send(map[string]any{"op": "setauth", "name": "exp", "token": st.token(t, uExpiring, "", time.Hour)})

	// The same with auth as a callback (socket.io-client calls it at every
	// connection attempt).
	if l := d.connect("expfn", st.token(t, uSeller, "seller", 3*time.Second), connectOpts{authFn: true}); l.Ev != "connect" {
		t.Fatalf("expfn connect: got %s %q", l.Ev, l.Message)
	}
	d.send(map[string]any{"op": "setauth", "name": "expfn", "token": st.token(t, uSeller, "seller", time.Hour)})

	// A second client keeps its stale token.
	if l := d.connect("stale", st.token(t, uCustomer2, "", 3*time.Second), connectOpts{}); l.Ev != "connect" {
		t.Fatalf("stale connect: got %s %q", l.Ev, l.Message)
	}

	dl := d.wait("disconnect at exp", 10*time.Second, func(l *dline) bool { return l.Name == "exp" && l.Ev == "disconnect" })
	early := exp.Sub(dl.at)
	t.Logf("disconnected %v after exp with reason %q", dl.at.Sub(exp), dl.Reason)
	if dl.Reason != "transport close" {
		t.Errorf("disconnect reason: got %q, want transport close (so the client reconnects)", dl.Reason)
	}
	if early > 200*time.Millisecond {
		t.Errorf("disconnected %v before exp", early)
	}
	if late := dl.at.Sub(exp); late > 2*time.Second {
		t.Errorf("disconnected %v after exp, want about 0", late)
	}
	rl := d.wait("reconnect", driverWait, func(l *dline) bool { return l.Name == "exp" && (l.Ev == "connect" || l.Ev == "connect_error") })
	if rl.Ev != "connect" || string(rl.ID) == firstID {
		t.Fatalf("reconnect with the fresh token: got %s %q %s", rl.Ev, rl.Message, rl.Data)
	}
	// Its rooms are joined again.
	st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{rooms.RoomUser(uExpiring)}, Event: "notification", Args: []json.RawMessage{json.RawMessage(`{"title":"after reconnect"}`)}})
	d.wait("event after reconnect", driverWait, func(l *dline) bool {
		return l.Name == "exp" && l.Event == "notification"
	})

	d.wait("expfn disconnect at exp", 10*time.Second, func(l *dline) bool { return l.Name == "expfn" && l.Ev == "disconnect" })
	if fl := d.wait("expfn reconnect", driverWait, func(l *dline) bool {
		return l.Name == "expfn" && (l.Ev == "connect" || l.Ev == "connect_error")
	}); fl.Ev != "connect" {
		t.Fatalf("reconnect with an auth callback: got %s", fl.raw)
	}

	// The stale client ends with "Token expired" (possibly after one more
	// connection accepted within the leeway).
	sl := d.wait("stale refused", 15*time.Second, func(l *dline) bool { return l.Name == "stale" && l.Ev == "connect_error" })
	if sl.Message != rooms.MsgTokenExpired || codeOf(sl) != rooms.CodeTokenExpired {
		t.Fatalf("stale token reconnect: got %q %s, want %q", sl.Message, sl.Data, rooms.MsgTokenExpired)
	}
	t.Logf("stale reconnect refused: message=%q data=%s", sl.Message, sl.Data)
	t.Logf("stale client transcript:\n%s", d.lines4("stale"))
}

// TestPolicy_RecoveredSessionRevalidated: a client that recovers a session
// (socket.io 4.6+ pid) keeps the rooms its identity may have; with another
// user's token (an app that switched accounts in place) it gets a new
// session, without the previous user's rooms and orders.
func TestPolicy_RecoveredSessionRevalidated(t *testing.T) {
	st := startStack(t, stackOpts{recovery: true})
	d := startDriver(t, st.url)

	sid := func(l *dline) string {
		var s string
		_ = json.Unmarshal(l.ID, &s)
		return s
	}
	recovered := func(l *dline) bool { return strings.Contains(l.raw, `"recovered":true`) }
	drop := func(name string, l *dline) *dline {
		st.socket(t, sid(l)).CloseTransport("test drop")
		d.wait(name+" disconnect", driverWait, func(x *dline) bool { return x.Name == name && x.Ev == "disconnect" })
		return d.wait(name+" reconnect", driverWait, func(x *dline) bool { return x.Name == name && (x.Ev == "connect" || x.Ev == "connect_error") })
	}
	received := func(name, room, marker string) bool {
		st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{room}, Event: "probe", Args: []json.RawMessage{json.RawMessage(`"` + marker + `"`)}, Offset: marker})
		time.Sleep(150 * time.Millisecond)
		return d.count(func(x *dline) bool { return x.Name == name && x.Event == "probe" && strings.Contains(x.raw, marker) }) > 0
	}

	t.Run("SameUserKeepsRooms", func(t *testing.T) {
		l := d.connect("a", st.token(t, uCustomer1, "", time.Hour), connectOpts{transports: []string{"websocket"}})
		if l.Ev != "connect" {
			t.Fatalf("connect: %s %q", l.Ev, l.Message)
		}
		if ok, e := ackOf(t, d, "a", rooms.EventSubscribeOrder, order1); !ok {
			t.Fatal(e)
		}
		if !received("a", rooms.RoomOrder(order1), "0-1") {
			t.Fatalf("no event on order:%s before the drop", order1)
		}
		r := drop("a", l)
		if r.Ev != "connect" || !recovered(r) {
			t.Fatalf("reconnect: got %s, want a recovered connect", r.raw)
		}
		if !received("a", rooms.RoomOrder(order1), "0-2") {
			t.Fatalf("recovered session lost its order room")
		}
		if ok, e := ackOf(t, d, "a", rooms.EventUnsubscribeOrder, order1); !ok {
			t.Fatal(e)
		}
		if received("a", rooms.RoomOrder(order1), "0-3") {
			t.Fatalf("unsubscribe:order did not leave a recovered order room")
		}
	})

	t.Run("OtherUserLosesRooms", func(t *testing.T) {
		l := d.connect("b", st.token(t, uCustomer1, "", time.Hour), connectOpts{transports: []string{"websocket"}})
		if l.Ev != "connect" {
			t.Fatalf("connect: %s %q", l.Ev, l.Message)
		}
		for _, c := range []struct{ ev, id string }{{rooms.EventSubscribeOrder, order1}, {rooms.EventSubscribeProduct, "p9"}} {
			if ok, e := ackOf(t, d, "b", c.ev, c.id); !ok {
				t.Fatal(e)
			}
		}
		if !received("b", rooms.RoomUser(uCustomer1), "0-3b") { // gives the client an offset
			t.Fatalf("no event on user:%s", uCustomer1)
		}
		// The app signs in as customer2 in the same tab.
		d.send(map[string]any{"op": "setauth", "name": "b", "token": st.token(t, uCustomer2, "", time.Hour)})
		d.wait("auth set", driverWait, func(x *dline) bool { return x.Name == "b" && x.Ev == "auth_set" })
		r := drop("b", l)
		if r.Ev != "connect" {
			t.Fatalf("reconnect: %s", r.raw)
		}
		t.Logf("reconnect as another user: %s", r.raw)
		if recovered(r) {
			t.Fatalf("customer2 recovered customer1's session: %s", r.raw)
		}
		if received("b", rooms.RoomOrder(order1), "0-4") {
			t.Errorf("customer2 receives customer1's order after recovering customer1's session:\n%s", d.lines4("b"))
		}
		if received("b", rooms.RoomUser(uCustomer1), "0-5") {
			t.Errorf("customer2 receives user:%s after recovering its session", uCustomer1)
		}
		if !received("b", rooms.RoomUser(uCustomer2), "0-6") {
			t.Errorf("customer2 does not receive its own user room")
		}
		if received("b", rooms.RoomProduct("p9"), "0-7") {
			t.Errorf("customer2's new session kept customer1's product room")
		}
	})
}

// TestPolicy_RecoveryRefused: a CONNECT may resume only its own user's
// session, and a refused attempt leaves that session to its owner. A socket
// that switched to customer2's token in place, a second socket of customer2
// sending customer1's pid, and a tokenless socket sending it all get no
// recovery (the first two a new session, the last a connect_error) and none
// of customer1's missed events; customer1 then resumes the session and gets
// every missed event. Before the hub ran the middlewares before taking the
// session, the first attempt consumed the session and customer1 got 0 of 5.
func TestPolicy_RecoveryRefused(t *testing.T) {
	st := startStack(t, stackOpts{recovery: true})
	d := startDriver(t, st.url)
	const missed = 5

	l := d.connect("g", st.token(t, uCustomer1, "", time.Hour), connectOpts{transports: []string{"websocket"}, noRetry: true})
	if l.Ev != "connect" {
		t.Fatalf("connect: %s %q", l.Ev, l.Message)
	}
	var sid string
	_ = json.Unmarshal(l.ID, &sid)
	probe := func(off, arg string) {
		st.hub.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{rooms.RoomUser(uCustomer1)}, Event: "probe", Args: []json.RawMessage{json.RawMessage(strconv.Quote(arg))}, Offset: off})
	}
	probe("1-0", "before")
	d.wait("probe before", driverWait, func(x *dline) bool { return x.Name == "g" && x.Event == "probe" })
	pid, offset := d.session("g")
	if pid == "" || offset != "1-0" {
		t.Fatalf("session of g: pid %q offset %q, want a pid and offset 1-0", pid, offset)
	}
	d.send(map[string]any{"op": "setauth", "name": "g", "token": st.token(t, uCustomer2, "", time.Hour)})
	d.wait("auth set", driverWait, func(x *dline) bool { return x.Name == "g" && x.Ev == "auth_set" })

	st.socket(t, sid).CloseTransport("test drop")
	d.wait("disconnect", driverWait, func(x *dline) bool { return x.Name == "g" && x.Ev == "disconnect" })
	for i := range missed {
		probe(fmt.Sprintf("%d-0", i+2), fmt.Sprintf("secret-missed-%d", i))
	}

	// 1. The same socket, now with customer2's token.
	d.send(map[string]any{"op": "reconnect", "name": "g"})
	r := d.wait("reconnect", driverWait, func(x *dline) bool { return x.Name == "g" && (x.Ev == "connect" || x.Ev == "connect_error") })
	if r.Ev != "connect" || r.Recovered {
		t.Fatalf("customer2 with customer1's pid (same socket): got %s, want a new session", r.raw)
	}
	// 2. Another socket of customer2 with the pid and offset.
	r = d.connect("x", st.token(t, uCustomer2, "", time.Hour), connectOpts{transports: []string{"websocket"}, noRetry: true, pid: pid, offset: offset})
	if r.Ev != "connect" || r.Recovered {
		t.Fatalf("customer2 with customer1's pid: got %s, want a new session", r.raw)
	}
	if xpid, _ := d.session("x"); xpid == pid || xpid == "" {
		t.Fatalf("customer2's socket got pid %q, want a new one (customer1's is %q)", xpid, pid)
	}
	// 3. No token at all.
	r = d.connect("y", "", connectOpts{transports: []string{"websocket"}, noRetry: true, pid: pid, offset: offset})
	if r.Ev != "connect_error" || r.Message != rooms.MsgTokenRequired {
		t.Fatalf("tokenless CONNECT with customer1's pid: got %s, want connect_error %q", r.raw, rooms.MsgTokenRequired)
	}
	// The owner resumes with every missed event.
	r = d.connect("h", st.token(t, uCustomer1, "", time.Hour), connectOpts{transports: []string{"websocket"}, noRetry: true, pid: pid, offset: offset})
	if r.Ev != "connect" || !r.Recovered {
		t.Fatalf("customer1 resuming its session after the refused attempts: got %s, want recovered", r.raw)
	}
	for i := range missed {
		want := fmt.Sprintf("secret-missed-%d", i)
		d.wait(want, driverWait, func(x *dline) bool {
			return x.Name == "h" && x.Event == "probe" && len(x.Args) > 0 && strings.Contains(string(x.Args[0]), want)
		})
	}
	probe("9-0", "after")
	d.wait("probe after", driverWait, func(x *dline) bool {
		return x.Name == "h" && x.Event == "probe" && len(x.Args) > 0 && strings.Contains(string(x.Args[0]), "after")
	})
	leaked := d.count(func(x *dline) bool { return x.Name != "h" && strings.Contains(x.raw, "secret-missed") })
	got := d.count(func(x *dline) bool { return x.Name == "h" && strings.Contains(x.raw, "secret-missed") })
	t.Logf("owner got %d of %d missed events; the other sockets got %d", got, missed, leaked)
	if got != missed || leaked != 0 {
		t.Fatalf("owner got %d missed events, want %d; other sockets got %d, want 0", got, missed, leaked)
	}
}

// TestPolicy_CartOverHubMaxPayload: with the hub's default MaxPayload (1e6
// bytes) a 2 MB cart never reaches the policy: the hub drops that client's
// connection (it reconnects), and another client of the same user is not
// affected.
func TestPolicy_CartOverHubMaxPayload(t *testing.T) {
	st := startStack(t, stackOpts{defaultPayload: true})
	d := startDriver(t, st.url)
	tok := st.token(t, uCustomer1, "", time.Hour)
	for _, name := range []string{"big", "other"} {
		if l := d.connect(name, tok, connectOpts{transports: []string{"websocket"}}); l.Ev != "connect" {
			t.Fatalf("%s: %s %q", name, l.Ev, l.Message)
		}
	}
	raw, derr := d.emitAck("big", rooms.EventCartUpdate, map[string]any{"items": strings.Repeat("x", 2<<20)})
	t.Logf("2 MB cart with hub defaults: ack=%s driver=%q", raw, derr)
	dl := d.wait("big disconnect", driverWait, func(l *dline) bool { return l.Name == "big" && l.Ev == "disconnect" })
	t.Logf("2 MB cart with hub defaults: disconnect reason %q", dl.Reason)
	d.wait("big reconnect", driverWait, func(l *dline) bool { return l.Name == "big" && l.Ev == "connect" })
	if n := d.count(func(l *dline) bool { return l.Name == "other" && l.Event == rooms.EventCartSynced }); n != 0 {
		t.Fatalf("other device got %d cart:synced from the oversized cart", n)
	}
	if ok, e := ackOf(t, d, "big", rooms.EventCartUpdate, map[string]any{"items": []any{"v1"}}); !ok {
		t.Fatalf("small cart after reconnect: %s", e)
	}
	d.wait("cart:synced on other", driverWait, func(l *dline) bool { return l.Name == "other" && l.Event == rooms.EventCartSynced })
}

// recordingAdapter is a hub.Adapter that records what it carries and can be
// made to refuse it (a cluster transport that is down).
type recordingAdapter struct {
	mu    sync.Mutex
	local hub.Local
	got   []*hub.Broadcast
	fail  bool
}

func (a *recordingAdapter) Attach(l hub.Local) { a.local = l }

func (a *recordingAdapter) Publish(ctx context.Context, bs []*hub.Broadcast) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return errors.New("bus down")
	}
	a.got = append(a.got, bs...)
	for _, b := range bs {
		a.local.Deliver(b) // what a cluster transport does on every node, this one included
	}
	return nil
}

// TestPolicy_CartRelay checks that cart:synced goes through the hub's adapter
// (the bus, in a cluster) rather than only to this node's sockets, and that an
// adapter failure is refused to the sender instead of being lost silently.
func TestPolicy_CartRelay(t *testing.T) {
	ad := &recordingAdapter{}
	st := startStack(t, stackOpts{adapter: ad})
	d := startDriver(t, st.url)
	tok := st.token(t, uCustomer1, "", time.Hour)
	for _, name := range []string{"phone", "laptop"} {
		if l := d.connect(name, tok, connectOpts{transports: []string{"websocket"}}); l.Ev != "connect" {
			t.Fatalf("%s: %s %q", name, l.Ev, l.Message)
		}
	}
	if ok, e := ackOf(t, d, "phone", rooms.EventCartUpdate, map[string]any{"items": []any{"v1"}}); !ok {
		t.Fatalf("cart:update: %s", e)
	}
	d.wait("cart:synced on laptop", driverWait, func(l *dline) bool { return l.Name == "laptop" && l.Event == rooms.EventCartSynced })
	ad.mu.Lock()
	var relayed []*hub.Broadcast
	for _, b := range ad.got {
		if b.Event == rooms.EventCartSynced {
			relayed = append(relayed, b)
		}
	}
	if len(relayed) != 1 || relayed[0].Rooms[0] != rooms.RoomCart(uCustomer1) {
		t.Fatalf("relayed = %+v, want one cart:synced to %s", relayed, rooms.RoomCart(uCustomer1))
	}
	ad.fail = true
	ad.mu.Unlock()
	if ok, e := ackOf(t, d, "phone", rooms.EventCartUpdate, map[string]any{"items": []any{"v2"}}); ok || e != rooms.ErrTextRelayFailed {
		t.Fatalf("cart:update with the relay down: ok=%v error=%q, want refusal %q", ok, e, rooms.ErrTextRelayFailed)
	}
	if n := d.count(func(l *dline) bool { return l.Name == "phone" && l.Event == rooms.EventCartSynced }); n != 0 {
		t.Fatalf("sender got %d cart:synced, want 0", n)
	}
}
