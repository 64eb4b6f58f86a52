package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
)

// TestAckHold_Limit: until the reader has handled up to the WAL position read
// at start the limit is "no advance" (the store is still being rebuilt, and an
// empty store must not release the window); then it is the commit LSN of the
// oldest event the store holds, or none when the store is empty.
func TestAckHold_Limit(t *testing.T) {
	store := hub.NewMemoryStore(time.Minute, 0)
	var st cdc.ReaderStats
	h := &ackHold{store: store, stats: func() cdc.ReaderStats { return st }}
	want := func(lsn cdc.LSN, ok bool) {
		t.Helper()
		if got, gotOK := h.limit(); got != lsn || gotOK != ok {
			t.Fatalf("limit = %s %v, want %s %v (stats %+v)", got, gotOK, lsn, ok, st)
		}
	}
	want(0, true) // start position not read yet
	h.target.Store(1000)
	st.AckedLSN = 500
	want(0, true) // the slot is behind the start position: replaying
	st.HandledLSN = 999
	want(0, true)
	add := func(off string) {
		store.Append(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{json.RawMessage(`1`)}, Offset: off})
	}
	add("600-0") // replayed into the store meanwhile
	want(0, true)
	st.HandledLSN = 1000
	want(600, true) // caught up: the oldest held event
	add("700-2")
	want(600, true)
	st.HandledLSN, st.AckedLSN = 0, 0 // once caught up, it stays so (a reconnect)
	want(600, true)

	empty := &ackHold{store: hub.NewMemoryStore(time.Minute, 0), stats: func() cdc.ReaderStats { return cdc.ReaderStats{AckedLSN: 1000} }}
	empty.target.Store(1000)
	if lsn, ok := empty.limit(); ok {
		t.Fatalf("caught up with an empty store: limit = %s, want none", lsn)
	}
}
