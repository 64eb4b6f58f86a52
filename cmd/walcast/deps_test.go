package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps_NoTesting: the production binaries do not link package testing
// (the throwaway Postgres of `walcast demo` and the load tool is
// internal/pgserver, not cdc/pgtest).
func TestDeps_NoTesting(t *testing.T) {
	for _, pkg := range []string{"github.com/walcast/walcast/cmd/walcast", "github.com/walcast/walcast/cmd/walcast-load"} {
		out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == "testing" || strings.HasSuffix(dep, "/pgtest") {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
