package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompose_ImageCopiesEveryPackage checks that the Dockerfile compose.yaml
// builds copies every directory of this module that cmd/walcast compiles from:
// a package added to the build but not to the Dockerfile's COPY lines breaks
// `docker compose up --build`, and no test here runs Docker (CI only parses
// compose.yaml, with docker-compose config).
func TestCompose_ImageCopiesEveryPackage(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "COPY" && f[1] == f[2] {
			copied[f[1]] = true
		}
	}
	if len(copied) == 0 {
		t.Fatal("Dockerfile: no `COPY dir dir` lines found")
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/walcast")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency outside the module (module cache)
		}
		ok := false
		for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
			if copied[filepath.ToSlash(p)] {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("the Dockerfile does not COPY %s, which cmd/walcast builds from", rel)
		}
	}
}
