package hub_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// countingStore counts the store calls of the CONNECT path and signals
// saved sessions.
type countingStore struct {
	hub.RecoveryStore
	takes, saves atomic.Int64
	saved        chan hub.Session
	live         map[string]bool // pids TakeSession reports as live
}

func (s *countingStore) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	s.takes.Add(1)
	if s.live[pid] {
		return hub.Session{}, false, hub.ErrSessionLive
	}
	return s.RecoveryStore.TakeSession(ctx, pid)
}

func (s *countingStore) SaveSession(ctx context.Context, sess hub.Session) error {
	s.saves.Add(1)
	err := s.RecoveryStore.SaveSession(ctx, sess)
	select {
	case s.saved <- sess:
	default:
	}
	return err
}

func newCountingStore() *countingStore {
	return &countingStore{RecoveryStore: hub.NewMemoryStore(time.Minute, 10_000), saved: make(chan hub.Session, 16), live: map[string]bool{}}
}

// userAuth is a middleware that takes the user from {"token":"<user>"} and
// refuses a CONNECT without one.
func userAuth(_ context.Context, h *hub.Handshake) error {
	var a struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(h.Auth, &a) != nil || a.Token == "" {
		return &hub.ConnectError{Message: "token required"}
	}
	h.User = a.Token
	return nil
}

func dialWith(t *testing.T, url, auth string, o hubtest.Options) (*hubtest.Client, error) {
	t.Helper()
	var a json.RawMessage
	if auth != "" {
		a = raw(auth)
	}
	c, err := hubtest.DialOptions(t.Context(), url, "/", a, o)
	if err == nil {
		t.Cleanup(c.Drop)
	}
	return c, err
}

func waitSaved(t *testing.T, s *countingStore) hub.Session {
	t.Helper()
	select {
	case sess := <-s.saved:
		return sess
	case <-time.After(10 * time.Second):
		t.Fatal("no session saved within 10 s")
	}
	return hub.Session{}
}

// nextArgs returns the first argument of the next n events.
func nextArgs(t *testing.T, c *hubtest.Client, n int) []string {
	t.Helper()
	var got []string
	for range n {
		got = append(got, string(next(t, c).Args[0]))
	}
	return got
}

// noEvent fails if c receives an event within d.
func noEvent(t *testing.T, c *hubtest.Client, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if e, err := c.Next(ctx); err == nil {
		t.Fatalf("got event %s %s, want none", e.Name, e.Args)
	}
}

// TestServer_RecoveryRefused: the session store is touched only after the
// middlewares accepted the CONNECT, a session is resumed only by its own
// User, and a refused attempt leaves it to its owner. Before, the hub took
// the session before the middlewares ran: the tokenless CONNECT cost a
// TakeSession, the wrong user's CONNECT resumed (or destroyed) the session,
// and the owner got 0 of the 2 missed events.
func TestServer_RecoveryRefused(t *testing.T) {
	store := newCountingStore()
	reg := prometheus.NewRegistry()
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Metrics: hub.NewMetrics(reg), Recovery: &hub.RecoveryConfig{Store: store}})
	srv.Of("/").Use(userAuth)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		if !s.Recovered() {
			s.Join("room:" + s.Handshake().User)
		}
	})
	a, err := dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"room:alice"}, Event: "e", Args: []json.RawMessage{raw(`"0"`)}, Offset: "1-0"})
	next(t, a)
	pid, off := a.PID(), a.LastOffset()
	a.Drop()
	if sess := waitSaved(t, store); sess.User != "alice" {
		t.Fatalf("saved session User = %q, want alice", sess.User)
	}
	for i, v := range []string{`"1"`, `"2"`} {
		srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"room:alice"}, Event: "e", Args: []json.RawMessage{raw(v)}, Offset: strconv.Itoa(2+i) + "-0"})
	}
	ask := hubtest.Options{PID: pid, Offset: off}

	// No token: refused by the middleware; the store is not touched.
	if _, err := dialWith(t, ts.URL, "", ask); err == nil || !strings.Contains(err.Error(), "token required") {
		t.Fatalf("tokenless CONNECT with a pid: got %v, want the middleware's refusal", err)
	}
	if n := store.takes.Load(); n != 0 {
		t.Fatalf("tokenless CONNECT: %d TakeSession calls, want 0", n)
	}

	// Another user: a new session, nothing of alice's.
	saves := store.saves.Load()
	b, err := dialWith(t, ts.URL, `{"token":"bob"}`, ask)
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	if b.Recovered() || b.PID() == pid || b.ID() == a.ID() {
		t.Fatalf("bob with alice's pid: recovered %v pid %q id %q, want a new session", b.Recovered(), b.PID(), b.ID())
	}
	noEvent(t, b, 200*time.Millisecond)
	if got := store.saves.Load() - saves; got != 1 {
		t.Fatalf("refused session saved back %d times, want 1", got)
	}
	<-store.saved

	// A hook can refuse more: here every session of "carol".
	srv.Of("/").OnRecoveryCheck(func(h *hub.Handshake, sess hub.Session) bool { return sess.User == h.User && h.User != "carol" })

	// The owner resumes with both missed events.
	a2, err := dialWith(t, ts.URL, `{"token":"alice"}`, ask)
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	if !a2.Recovered() || a2.ID() != a.ID() {
		t.Fatalf("alice after the refused attempts: recovered %v id %q, want her session %q", a2.Recovered(), a2.ID(), a.ID())
	}
	if got := strings.Join(nextArgs(t, a2, 2), ","); got != `"1","2"` {
		t.Fatalf("alice's replay: got %s, want \"1\",\"2\"", got)
	}
	m := gather(t, reg)
	if m["walcast_hub_recoveries_total{result=refused}"] != 1 || m["walcast_hub_recoveries_total{result=recovered}"] != 1 {
		t.Fatalf("walcast_hub_recoveries_total: refused %v recovered %v, want 1 and 1",
			m["walcast_hub_recoveries_total{result=refused}"], m["walcast_hub_recoveries_total{result=recovered}"])
	}

	c, err := dialWith(t, ts.URL, `{"token":"carol"}`, hubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"room:carol"}, Event: "e", Args: []json.RawMessage{raw(`"c"`)}, Offset: "5-0"})
	next(t, c)
	cpid, coff := c.PID(), c.LastOffset()
	c.Drop()
	waitSaved(t, store)
	c2, err := dialWith(t, ts.URL, `{"token":"carol"}`, hubtest.Options{PID: cpid, Offset: coff})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Recovered() {
		t.Fatal("the recovery check refused carol's session, but she recovered it")
	}
}

// TestServer_RecoveryLive: a session whose socket is still connected is
// not resumed a second time: the CONNECT goes on as a new session, and the
// live socket keeps its id alone.
func TestServer_RecoveryLive(t *testing.T) {
	store := newCountingStore()
	reg := prometheus.NewRegistry()
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Metrics: hub.NewMetrics(reg), Recovery: &hub.RecoveryConfig{Store: store}})
	srv.Of("/").Use(userAuth)
	socks := make(chan *hub.Socket, 4)
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("r"); socks <- s })
	a, err := dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1 := <-socks
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`"0"`)}, Offset: "1-0"})
	next(t, a)

	// A stale copy of the live socket's session in the store (as a store
	// that also keeps live sessions, or a lost race, would hold).
	if err := store.RecoveryStore.SaveSession(t.Context(), hub.Session{SID: s1.ID(), PID: s1.PID(), Namespace: "/", User: "alice", Rooms: []string{"r"}, DisconnectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	b, err := dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{PID: a.PID(), Offset: a.LastOffset()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Recovered() || b.ID() == a.ID() {
		t.Fatalf("second CONNECT with a live socket's pid: recovered %v id %q (live %q), want a new session", b.Recovered(), b.ID(), a.ID())
	}
	// A store that knows the session is live says so.
	store.live["live-pid"] = true
	c, err := dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{PID: "live-pid", Offset: "1-0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovered() {
		t.Fatal("recovered a session the store reports live")
	}
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`"1"`)}, Offset: "2-0"})
	for _, cl := range []*hubtest.Client{a, b, c} {
		if got := string(next(t, cl).Args[0]); got != `"1"` {
			t.Fatalf("after the refused recoveries: got %s, want \"1\"", got)
		}
	}
	if n := gather(t, reg)["walcast_hub_recoveries_total{result=live}"]; n != 2 {
		t.Fatalf("walcast_hub_recoveries_total{result=live} = %v, want 2", n)
	}
}

// TestServer_RecoveryReplayTooLarge: a client that missed more than its
// queue budget reconnects at once as a new session instead of being closed
// as slow at every attempt. Before, the replay was queued past the budget,
// the CONNECT reply overflowed it, the connection was closed as slow and its
// session saved again: every attempt failed until the session expired.
func TestServer_RecoveryReplayTooLarge(t *testing.T) {
	const budget = 64 << 10
	store := newCountingStore()
	reg := prometheus.NewRegistry()
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Metrics: hub.NewMetrics(reg), MaxQueueBytes: budget,
		Recovery: &hub.RecoveryConfig{Store: store}})
	srv.Of("/").Use(userAuth)
	var first atomic.Bool
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.Join("r")
		if first.CompareAndSwap(false, true) {
			s.Join("old") // a room only the first session has
		}
	})
	a, err := dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`"0"`)}, Offset: "1-0"})
	next(t, a)
	a.Drop()
	waitSaved(t, store)
	payload := raw(`"` + strings.Repeat("x", 1000) + `"`)
	const missed = 2 * budget / 1000 // twice the budget
	for i := range missed {
		srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{payload}, Offset: "2-" + strconv.Itoa(i)})
	}
	t0 := time.Now()
	attempts := 0
	var c *hubtest.Client
	for attempts < 5 {
		attempts++
		c, err = dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{PID: a.PID(), Offset: "1-0"})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after %d attempts: %v", attempts, err)
	}
	if c.Recovered() {
		t.Fatalf("recovered a replay of %d KB over a %d KB budget", missed, budget>>10)
	}
	// A new session: the session's rooms are not kept ("old"), the
	// application's OnConnect joined "r" again.
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"old"}, Event: "e", Args: []json.RawMessage{raw(`"old"`)}, Offset: "2-99999"})
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`"live"`)}, Offset: "3-0"})
	if got := string(next(t, c).Args[0]); got != `"live"` {
		t.Fatalf("first event of the new session: got %.40s, want \"live\"", got)
	}
	select {
	case <-c.Done():
		t.Fatalf("connection closed after the fallback: %v", c.Err())
	case <-time.After(200 * time.Millisecond):
	}
	n := gather(t, reg)["walcast_hub_recoveries_total{result=replay_too_large}"]
	t.Logf("missed %d events (%d KB) over a %d KB budget: %d attempt(s), new session in %v", missed, missed, budget>>10, attempts, time.Since(t0).Round(time.Millisecond))
	if attempts != 1 || n != 1 {
		t.Fatalf("attempts %d, replay_too_large %v; want 1 and 1", attempts, n)
	}

	// Under the limit the replay is still whole.
	c.Drop()
	waitSaved(t, store)
	for i := range 10 {
		srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{payload}, Offset: "4-" + strconv.Itoa(i)})
	}
	d, err := dialWith(t, ts.URL, `{"token":"alice"}`, hubtest.Options{PID: c.PID(), Offset: "3-0"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Recovered() || len(nextArgs(t, d, 10)) != 10 {
		t.Fatal("a 10 KB replay was not recovered whole")
	}
}
