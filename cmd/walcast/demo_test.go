package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startDemo runs `walcast demo` in process and returns the page and database
// URLs it prints.
func startDemo(t *testing.T, ctx context.Context, args ...string) (pageURL, dbURL string, done <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"demo"}, args...), envMap(map[string]string{"LOG_LEVEL": "warn"}), pw)
		pw.Close()
		errc <- err
	}()
	pageRE := regexp.MustCompile(`^\s*page:\s+(\S+)`)
	dbRE := regexp.MustCompile(`^\s*database:\s+(\S+)`)
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			t.Log("demo: " + line)
			if m := pageRE.FindStringSubmatch(line); m != nil {
				pageURL = m[1]
			}
			if m := dbRE.FindStringSubmatch(line); m != nil {
				dbURL = m[1]
				close(found)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-found:
	case err := <-errc:
		t.Fatalf("walcast demo exited early: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("walcast demo did not print its page and database URLs within 90s")
	}
	return pageURL, dbURL, errc
}

// needTool skips (locally) or fails (CI=true) when a program is missing.
func needTool(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: %v (make deps installs it)", path, err)
		}
		t.Skipf("%s not found: %v (make deps installs it)", path, err)
	}
}

// TestDemo_Browser runs `walcast demo -no-sim` in process and drives its page
// with headless Chromium (testdata/browser/demo.mjs): an inventory UPDATE
// changes the stock number, an order INSERT shows the admin toast, a status
// UPDATE changes the tracking view. Screenshots go to artifacts/browser/.
func TestDemo_Browser(t *testing.T) {
	needTool(t, "node")
	chromium := "/usr/bin/chromium"
	if c := os.Getenv("CHROMIUM"); c != "" {
		chromium = c
	}
	needTool(t, chromium)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "testdata/node_modules/playwright-core")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("playwright-core not installed: %v (run make deps)", err)
		}
		t.Skipf("playwright-core not installed: %v (run make deps)", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pageURL, dbURL, done := startDemo(t, ctx, "-listen", "127.0.0.1:0", "-no-sim")

	artifacts := filepath.Join(root, "artifacts", "browser")
	os.RemoveAll(artifacts)
	t.Logf("screenshots: %s", artifacts)
	nodeCtx, nodeCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer nodeCancel()
	cmd := exec.CommandContext(nodeCtx, "node", filepath.Join("testdata", "browser", "demo.mjs"), pageURL, dbURL, artifacts)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log("browser: " + l)
	}
	if err != nil {
		t.Errorf("node testdata/browser/demo.mjs: %v", err)
	}
	for _, want := range []string{"ok   page-ready", "ok   stock-update", "ok   new-order-toast", "ok   order-status", "ok   low-stock-alert", "ok   sql-notification"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("browser output lacks %q", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("walcast demo returned %v after Ctrl-C, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("walcast demo did not stop within 30s of cancel")
	}
}
