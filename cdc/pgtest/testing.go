// Package pgtest gives tests and benchmarks a throwaway PostgreSQL cluster
// with wal_level=logical (see internal/pgserver, which starts it), stopped in
// t.Cleanup. Without server binaries a test skips, unless CI is set, where it
// fails: CI must never skip a database test.
package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/walcast/walcast/internal/pgserver"
)

// The cluster types are internal/pgserver's; the names stay here so that tests
// need one import.
type (
	Cluster        = pgserver.Cluster
	Options        = pgserver.Options
	StandbyOptions = pgserver.StandbyOptions
)

// ErrNoServer reports that no PostgreSQL server binaries were found.
var ErrNoServer = pgserver.ErrNoServer

// Start starts a cluster the caller stops; see pgserver.Start.
func Start(ctx context.Context, opts Options) (*Cluster, error) { return pgserver.Start(ctx, opts) }

// FindBin returns the directory holding initdb and pg_ctl; see pgserver.FindBin.
func FindBin() (string, error) { return pgserver.FindBin() }

// New starts a cluster for a test or benchmark and stops it in t.Cleanup. When no
// server binaries exist it skips, unless CI is set, where it fails.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := pgserver.Start(t.Context(), opts)
	if errors.Is(err, ErrNoServer) && os.Getenv("CI") == "" {
		t.Skipf("no PostgreSQL server: %v", err)
	}
	if err != nil {
		t.Fatalf("pgserver.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgserver stop: %v", err)
		}
	})
	return c
}
