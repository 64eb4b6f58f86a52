package hub

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	m := NewMemoryStore(time.Minute, 3)
	m.now = func() time.Time { return now }
	add := func(nsp, off string) { m.Append(ctx, &Broadcast{Namespace: nsp, Offset: off}) }
	offsets := func(bs []*Broadcast) (out []string) {
		for _, b := range bs {
			out = append(out, b.Offset)
		}
		return out
	}
	if off, ok := m.Oldest(); ok {
		t.Fatalf("empty store: Oldest = %q, want none", off)
	}
	add("", "1")
	add("/a", "2")
	add("/", "3")
	if off, ok := m.Oldest(); !ok || off != "1" {
		t.Fatalf("Oldest = %q %v, want 1", off, ok)
	}
	t.Run("Since", func(t *testing.T) {
		got, ok, _ := m.Since(ctx, "/", "1")
		if !ok || fmt.Sprint(offsets(got)) != "[3]" {
			t.Fatalf("got %v %v, want [3]", offsets(got), ok)
		}
		if got, ok, _ := m.Since(ctx, "/", "3"); !ok || len(got) != 0 {
			t.Fatalf("after the last: got %v %v", offsets(got), ok)
		}
		if _, ok, _ := m.Since(ctx, "/", "2"); ok {
			t.Fatal("offset of another namespace accepted")
		}
		if _, ok, _ := m.Since(ctx, "/", "nope"); ok {
			t.Fatal("unknown offset accepted")
		}
	})
	t.Run("CountBound", func(t *testing.T) {
		add("/", "4")
		if _, ok, _ := m.Since(ctx, "/", "1"); ok {
			t.Fatal("offset 1 should be dropped by the count bound")
		}
		if got, ok, _ := m.Since(ctx, "/", "3"); !ok || fmt.Sprint(offsets(got)) != "[4]" {
			t.Fatalf("got %v %v", offsets(got), ok)
		}
		if off, ok := m.Oldest(); !ok || off != "2" {
			t.Fatalf("after the count bound Oldest = %q %v, want 2", off, ok)
		}
	})
	t.Run("AgeBound", func(t *testing.T) {
		now = now.Add(2 * time.Minute)
		if _, ok, _ := m.Since(ctx, "/", "3"); ok {
			t.Fatal("expired offset accepted")
		}
		if off, ok := m.Oldest(); ok {
			t.Fatalf("everything expired: Oldest = %q, want none", off)
		}
	})
	t.Run("Sessions", func(t *testing.T) {
		m.SaveSession(ctx, Session{SID: "s", PID: "p", Namespace: "/", Rooms: []string{"r"}})
		s, ok, _ := m.TakeSession(ctx, "p")
		if !ok || s.SID != "s" || s.Rooms[0] != "r" {
			t.Fatalf("TakeSession: %+v %v", s, ok)
		}
		if _, ok, _ := m.TakeSession(ctx, "p"); ok {
			t.Fatal("session taken twice")
		}
		m.SaveSession(ctx, Session{SID: "s", PID: "q", Namespace: "/"})
		now = now.Add(2 * time.Minute)
		if _, ok, _ := m.TakeSession(ctx, "q"); ok {
			t.Fatal("expired session taken")
		}
	})
}
