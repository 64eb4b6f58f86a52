package sessions_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/sessions"
	walsql "github.com/walcast/walcast/sql"
)

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	c := pgtest.New(t, pgtest.Options{})
	if err := c.CreateDatabase(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(t.Context(), c.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := walsql.Migrate(t.Context(), db, walsql.Options{Demo: true, NoSeed: true}); err != nil {
		t.Fatal(err)
	}
	return db
}

func newStore(t *testing.T, db *pgxpool.Pool, node string, window time.Duration) *sessions.Store {
	t.Helper()
	s, err := sessions.New(sessions.Config{DB: db, Node: node, Window: window, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context())
	s.Ready()
	return s
}

func flush(t *testing.T, s *sessions.Store) {
	t.Helper()
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func heartbeatAgo(t *testing.T, db *pgxpool.Pool, node string, ago time.Duration) {
	t.Helper()
	_, err := db.Exec(t.Context(), `INSERT INTO walcast.nodes (node, alive_at) VALUES ($1, now() - make_interval(secs => $2))
ON CONFLICT (node) DO UPDATE SET alive_at = EXCLUDED.alive_at`, node, ago.Seconds())
	if err != nil {
		t.Fatal(err)
	}
}

func TestStore(t *testing.T) {
	db := newDB(t)
	ctx := t.Context()
	now := time.Now()
	change := func(s *sessions.Store, pid string, connected, recoverable bool, rooms ...string) {
		s.OnSessionChange(hub.SessionChange{SID: "sid-" + pid, PID: pid, Namespace: "/", User: "owner-" + pid, Rooms: rooms,
			Connected: connected, Recoverable: recoverable, At: now})
	}

	t.Run("CrashedNode", func(t *testing.T) {
		// A socket connected on node a, which then died without a word: its
		// session is taken on node b, once, as disconnected at a's last heartbeat.
		a := newStore(t, db, "a", time.Minute)
		change(a, "p1", true, false)
		change(a, "p1", true, false, "user:u1", "product:1")
		flush(t, a)
		heartbeatAgo(t, db, "a", 10*time.Second)
		b := newStore(t, db, "b", time.Minute)
		sess, ok, err := b.TakeSession(ctx, "p1")
		if err != nil || !ok {
			t.Fatalf("TakeSession = %v, %v; want the session", ok, err)
		}
		slices.Sort(sess.Rooms)
		if sess.SID != "sid-p1" || sess.Namespace != "/" || sess.User != "owner-p1" || !slices.Equal(sess.Rooms, []string{"product:1", "user:u1"}) {
			t.Errorf("session = %+v", sess)
		}
		if d := time.Since(sess.DisconnectedAt); d < 9*time.Second || d > 30*time.Second {
			t.Errorf("DisconnectedAt %v ago, want ~10 s (the dead node's last heartbeat)", d)
		}
		if _, ok, _ := b.TakeSession(ctx, "p1"); ok {
			t.Error("a session was taken twice")
		}
	})

	t.Run("RestartedNode", func(t *testing.T) {
		// kill -9 and an immediate restart of the same node: its heartbeat is
		// fresh, but the new process knows the old one's sockets are gone.
		a := newStore(t, db, "same", time.Minute)
		change(a, "p7", true, false, "user:u7")
		flush(t, a)
		b := newStore(t, db, "same", time.Minute)
		if _, ok, err := b.TakeSession(ctx, "p7"); !ok || err != nil {
			t.Errorf("session of the crashed predecessor not taken: %v, %v", ok, err)
		}
		change(b, "p8", true, false, "user:u8")
		flush(t, b)
		if _, ok, err := b.TakeSession(ctx, "p8"); ok || err != nil {
			t.Errorf("took a session connected on this very process: %v, %v", ok, err)
		}
	})

	t.Run("LiveElsewhere", func(t *testing.T) {
		a := newStore(t, db, "a2", time.Minute)
		change(a, "p2", true, false, "user:u2")
		flush(t, a)
		heartbeatAgo(t, db, "a2", 0)
		b := newStore(t, db, "b2", time.Minute)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		t0 := time.Now()
		if _, ok, err := b.TakeSession(wctx, "p2"); ok || err != nil {
			t.Errorf("took a session connected on a live node: %v, %v", ok, err)
		}
		if d := time.Since(t0); d < 900*time.Millisecond {
			t.Errorf("gave up after %v; it waits (bounded by ctx) for the other node to let go", d)
		}
	})

	t.Run("LetGoElsewhere", func(t *testing.T) {
		// The client is back on another node before its first node wrote the
		// disconnect: the take waits for it instead of starting afresh.
		a := newStore(t, db, "a9", time.Minute)
		change(a, "p9", true, false, "user:u9")
		flush(t, a)
		heartbeatAgo(t, db, "a9", 0)
		b := newStore(t, db, "b9", time.Minute)
		go func() {
			time.Sleep(300 * time.Millisecond)
			change(a, "p9", false, true, "user:u9")
			if err := a.Flush(ctx); err != nil {
				t.Error(err) // not t.Fatal: this is not the test's goroutine
			}
		}()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, ok, err := b.TakeSession(wctx, "p9"); !ok || err != nil {
			t.Errorf("session let go by its node not taken: %v, %v", ok, err)
		}
	})

	t.Run("Disconnected", func(t *testing.T) {
		a := newStore(t, db, "a3", time.Minute)
		heartbeatAgo(t, db, "a3", 0)
		change(a, "p3", true, false, "user:u3")
		change(a, "p3", false, true, "user:u3") // transport close: recoverable
		change(a, "p4", true, false, "user:u4")
		change(a, "p4", false, false, "user:u4") // client disconnect: ended
		flush(t, a)
		b := newStore(t, db, "b3", time.Minute)
		if _, ok, err := b.TakeSession(ctx, "p3"); !ok || err != nil {
			t.Errorf("recoverable disconnect not taken: %v, %v", ok, err)
		}
		if _, ok, err := b.TakeSession(ctx, "p4"); ok || err != nil {
			t.Errorf("ended session taken: %v, %v", ok, err)
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM walcast.sessions WHERE pid = 'p4'").Scan(&n); err != nil || n != 0 {
			t.Errorf("ended session rows = %d, %v; want 0", n, err)
		}
	})

	t.Run("PastWindow", func(t *testing.T) {
		a := newStore(t, db, "a5", 2*time.Second)
		change(a, "p5", true, false, "user:u5")
		flush(t, a)
		heartbeatAgo(t, db, "a5", 10*time.Second)
		b := newStore(t, db, "b5", 2*time.Second)
		if _, ok, err := b.TakeSession(ctx, "p5"); ok || err != nil {
			t.Errorf("took a session past the window: %v, %v", ok, err)
		}
	})

	t.Run("WaitsForReady", func(t *testing.T) {
		s, err := sessions.New(sessions.Config{DB: db, Node: "c", Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(ctx)
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, _, err := s.TakeSession(wctx, "p1"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("TakeSession before Ready = %v, want a deadline error", err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := s.TakeSession(ctx, "nope")
			done <- err
		}()
		s.Ready()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("TakeSession after Ready: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("TakeSession still waiting after Ready")
		}
	})

	t.Run("RunFlushesOnStop", func(t *testing.T) {
		s := newStore(t, db, "d", time.Minute)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		change(s, "p6", true, false, "user:u6")
		change(s, "p6", false, true, "user:u6")
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var connected bool
		if err := db.QueryRow(ctx, "SELECT connected FROM walcast.sessions WHERE pid = 'p6'").Scan(&connected); err != nil || connected {
			t.Errorf("after Run stopped: connected=%v, %v; want the disconnected row", connected, err)
		}
	})
}
