package pgtest_test

import (
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc/pgtest"
)

func TestCluster_StartRestart(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{TCPPort: -1})
	out, err := c.Psql(t.Context(), "postgres", "SHOW wal_level")
	if err != nil || !strings.Contains(out, "logical") {
		t.Fatalf("SHOW wal_level = %q, %v; want logical", out, err)
	}
	if err := c.CreateDatabase(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(t.Context(), "immediate"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Psql(t.Context(), "shop", "select 1"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
