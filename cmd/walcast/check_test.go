package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc/pgtest"
)

func runCapture(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var b strings.Builder
	err := run(t.Context(), args, envMap(env), &b)
	return b.String(), err
}

func TestCheck_WalLevelReplicaAndNoReplicationRole(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{WalLevel: "replica"})
	if _, err := pg.Psql(t.Context(), "postgres", "CREATE ROLE shopapp LOGIN"); err != nil {
		t.Fatal(err)
	}
	dsn := strings.Replace(pg.DSN("postgres"), "user=postgres", "user=shopapp", 1)
	out, err := runCapture(t, map[string]string{"DATABASE_URL": dsn}, "check")
	t.Logf("walcast check:\n%s", out)
	if !errors.Is(err, errSilent) {
		t.Fatalf("run(check) = %v, want errSilent (exit status 1)", err)
	}
	for _, want := range []string{
		`wal_level is "replica"`, "ALTER SYSTEM SET wal_level = logical",
		`role "shopapp" has no REPLICATION privilege`, "ALTER ROLE shopapp WITH REPLICATION;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
}

func TestMigrateThenCheck(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	env := map[string]string{"WALCAST_DATABASE_URL": pg.URL("postgres")}
	out, err := runCapture(t, env, "check")
	if !errors.Is(err, errSilent) || !strings.Contains(out, `publication "walcast" does not exist`) {
		t.Fatalf("check before migrate = %v:\n%s\nwant a missing publication", err, out)
	}
	for i := range 2 { // idempotent
		if out, err := runCapture(t, env, "migrate", "-demo"); err != nil {
			t.Fatalf("migrate #%d: %v\n%s", i+1, err, out)
		}
	}
	out, err = runCapture(t, env, "check")
	if err != nil {
		t.Fatalf("check after migrate = %v:\n%s", err, out)
	}
	if !strings.Contains(out, "replication connection works") {
		t.Errorf("check output lacks the replication connection line:\n%s", out)
	}
	if !strings.Contains(out, "walcast check: ok") {
		t.Errorf("check output lacks the ok line:\n%s", out)
	}
	if !strings.Contains(out, "table public.profiles is published") {
		t.Errorf("check output lacks the published profiles table:\n%s", out)
	}
	// An install migrated before profiles were published: a warning with the fix.
	if out, err := pg.Psql(t.Context(), "postgres", "ALTER PUBLICATION walcast DROP TABLE public.profiles"); err != nil {
		t.Fatalf("drop profiles from the publication: %v\n%s", err, out)
	}
	out, err = runCapture(t, env, "check")
	if err != nil || !strings.Contains(out, `table public.profiles is not in publication "walcast": role changes reach connected sockets only when they reconnect`) ||
		!strings.Contains(out, "ALTER PUBLICATION") {
		t.Errorf("check without profiles published = %v, want ok with a warning and the fix:\n%s", err, out)
	}
}
