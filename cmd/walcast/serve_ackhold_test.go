package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/sessions"
)

// TestAckHold_Limit: until the reader has handled up to the WAL position read
// at start the limit is "no advance" (the buffer is still being rebuilt, and
// an empty buffer must not release the window) and recovering CONNECTs wait;
// then it is the commit LSN of the oldest event the buffer holds, or none when
// it is empty. Events committed before the start position are replayed
// (restored, not delivered).
func TestAckHold_Limit(t *testing.T) {
	db, err := pgxpool.New(t.Context(), "postgres://nobody@127.0.0.1:1/none") // never connected
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	newStore := func() *sessions.Store {
		s, err := sessions.New(sessions.Config{DB: db, Node: "n", Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(t.Context()) // the database is unreachable: logged, sessions stay
		return s
	}
	store := newStore()
	var st cdc.ReaderStats
	h := &ackHold{store: store, oldest: bufferOldest(store), stats: func() cdc.ReaderStats { return st }}
	want := func(lsn cdc.LSN, ok bool) {
		t.Helper()
		if got, gotOK := h.limit(); got != lsn || gotOK != ok {
			t.Fatalf("limit = %s %v, want %s %v (stats %+v)", got, gotOK, lsn, ok, st)
		}
	}
	ready := func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		_, _, err := store.TakeSession(ctx, "none")
		return err == nil || ctx.Err() == nil
	}
	want(0, true) // start position not read yet
	h.target.Store(1000)
	if !h.replayed(999) || h.replayed(1000) {
		t.Fatal("replayed: events before the start position are the window, later ones live")
	}
	st.AckedLSN = 500
	want(0, true) // the slot is behind the start position: replaying
	st.HandledLSN = 999
	want(0, true)
	if ready() {
		t.Fatal("sessions released before the window was replayed")
	}
	add := func(off string) {
		store.Append(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{json.RawMessage(`1`)}, Offset: off})
	}
	add("600-0") // replayed into the buffer meanwhile
	want(0, true)
	st.HandledLSN = 1000
	want(600, true) // caught up: the oldest held event
	if !ready() {
		t.Fatal("sessions still held after the window was replayed")
	}
	add("700-2")
	want(600, true)
	st.HandledLSN, st.AckedLSN = 0, 0 // once caught up, it stays so (a reconnect)
	want(600, true)

	es := newStore()
	empty := &ackHold{store: es, oldest: bufferOldest(es), stats: func() cdc.ReaderStats { return cdc.ReaderStats{AckedLSN: 1000} }}
	empty.target.Store(1000)
	if lsn, ok := empty.limit(); ok {
		t.Fatalf("caught up with an empty buffer: limit = %s, want none", lsn)
	}
}
