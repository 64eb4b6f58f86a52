package cdc_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// TestReader_FailoverSlot: on Postgres 17+ the Reader creates its slot with
// failover on, and switches an existing slot without it over, so standbys
// with sync_replication_slots carry the slot through a promotion. Before 17
// the slot is created as before (there is no failover flag).
func TestReader_FailoverSlot(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	db := testDB(t, c, `CREATE TABLE f (id int PRIMARY KEY)`)
	num, err := strconv.Atoi(queryValue(t, c.DSN(db), `SELECT current_setting('server_version_num')`))
	if err != nil {
		t.Fatalf("server_version_num: %v", err)
	}
	slotFailover := func(slot string) string {
		if num < 170000 {
			return queryValue(t, c.DSN(db), fmt.Sprintf(`SELECT 'exists' FROM pg_replication_slots WHERE slot_name = '%s'`, slot))
		}
		return queryValue(t, c.DSN(db), fmt.Sprintf(`SELECT failover FROM pg_replication_slots WHERE slot_name = '%s'`, slot))
	}
	want := "t"
	if num < 170000 {
		want = "exists"
	}

	t.Run("Created", func(t *testing.T) {
		slot := db + "_new"
		p, stop := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: slot, HeartbeatInterval: -1}, Sink: newMemSink()})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		stop()
		if got := slotFailover(slot); got != want {
			t.Errorf("new slot on server %d: failover = %q, want %q", num, got, want)
		}
	})

	t.Run("Altered", func(t *testing.T) {
		slot := db + "_old"
		execEach(t, c.DSN(db), fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, slot))
		if num >= 170000 {
			if got := slotFailover(slot); got != "f" {
				t.Fatalf("setup: failover = %q, want f", got)
			}
		}
		p, stop := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: slot, HeartbeatInterval: -1}, Sink: newMemSink()})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		stop()
		if got := slotFailover(slot); got != want {
			t.Errorf("existing slot on server %d: failover = %q, want %q", num, got, want)
		}
	})
}
