package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/walcast/walcast/cdc/pgtest"
)

const seed000Secret = "seed000-test-secret-0123456789abcdef"

// seed000Walcast is one `walcast serve` child process that the test can stop
// with a signal and start again on the same address.
type seed000Walcast struct {
	bin, addr, log string
	env            []string
	cmd            *exec.Cmd
	done           chan struct{}
}

func (w *seed000Walcast) start(t *testing.T) error {
	f, err := os.OpenFile(w.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(w.bin, "serve")
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start walcast serve: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	w.cmd, w.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, err := (&wnode{addr: w.addr}).readyz(); err == nil && r.Ready {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("walcast serve exited before it was ready:\n%s", w.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("walcast serve not ready after 30s:\n%s", w.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and waits for the process to exit.
func (w *seed000Walcast) stop(sig syscall.Signal) error {
	if w.cmd == nil {
		return fmt.Errorf("walcast is not running")
	}
	w.cmd.Process.Signal(sig)
	select {
	case <-w.done:
		w.cmd = nil
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("walcast did not exit within 15s of %v", sig)
	}
}

func (w *seed000Walcast) logTail() string { return (&wnode{log: w.log}).logTail(20) }

func seed000Token(t *testing.T, sub string) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "role": "authenticated"})
	s, err := tok.SignedString([]byte(seed000Secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSeed000_Browser runs the seed 000 React components, unchanged
// (testdata/seed000/), in headless Chromium against a `walcast serve` child
// process (no Redis) on the demo data: an inventory UPDATE changes the stock
// ProductStock shows, an orders UPDATE the status OrderTracking shows, an
// orders INSERT shows OrderNotifications' toast and LiveMetrics' totals.
// Screenshots go to artifacts/browser-seed000/. Then it kills walcast
// (SIGKILL, then SIGTERM) while rows change and checks that the pages show the
// final stock, status and totals after socket.io-client reconnects by itself,
// then live changes. The components drop events delivered before their
// re-subscribe, so this rests on the current state sent on subscribe.
func TestSeed000_Browser(t *testing.T) {
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
	for _, pkg := range []string{"playwright-core", "esbuild", "react-dom"} {
		if _, err := os.Stat(filepath.Join(root, "testdata/node_modules", pkg)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed: %v (run make deps)", pkg, err)
			}
			t.Skipf("%s not installed: %v (run make deps)", pkg, err)
		}
	}
	const restart = true

	ctx := t.Context()
	pgc := pgtest.New(t, pgtest.Options{})
	if err := pgc.CreateDatabase(ctx, "seed000"); err != nil {
		t.Fatal(err)
	}
	dbURL := pgc.URL("seed000")
	pageAddr := freeAddr(t)
	w := &seed000Walcast{bin: buildWalcast(t), addr: freeAddr(t), log: filepath.Join(t.TempDir(), "walcast.log")}
	w.env = append(os.Environ(), "WALCAST_DATABASE_URL="+dbURL, "WALCAST_JWT_SECRET="+seed000Secret,
		"WALCAST_LISTEN="+w.addr, "WALCAST_ALLOWED_ORIGINS=http://"+pageAddr, "LOG_LEVEL=info")
	mig := exec.CommandContext(ctx, w.bin, "migrate", "-demo")
	mig.Env = w.env
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("walcast migrate -demo: %v\n%s", err, out)
	}
	if err := w.start(t); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if w.cmd != nil {
			w.stop(syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("walcast log tail:\n%s", w.logTail())
		}
	})

	artifacts := filepath.Join(root, "artifacts", "browser-seed000")
	os.RemoveAll(artifacts)
	t.Logf("screenshots: %s", artifacts)
	args := []string{filepath.Join("testdata", "browser", "seed000.mjs"), pageAddr, "http://" + w.addr, dbURL, artifacts}
	if restart {
		args = append(args, "-restart")
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium,
		"SEED000_CUSTOMER_TOKEN="+seed000Token(t, "00000000-0000-4000-8000-000000000101"),
		"SEED000_ADMIN_TOKEN="+seed000Token(t, "00000000-0000-4000-8000-000000000001"))
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("node seed000.mjs: %v", err)
	}
	// The whole browser run is bounded; the script bounds each step itself.
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()

	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		t.Log("browser: " + line)
		ctl, ok := strings.CutPrefix(line, "CTL ")
		if !ok {
			continue
		}
		var cerr error
		switch ctl {
		case "stop KILL":
			cerr = w.stop(syscall.SIGKILL)
		case "stop TERM":
			cerr = w.stop(syscall.SIGTERM)
		case "start":
			cerr = w.start(t)
		default:
			cerr = fmt.Errorf("unknown control %q", ctl)
		}
		answer := "ok"
		if cerr != nil {
			t.Errorf("walcast %s: %v", ctl, cerr)
			answer = "error: " + strings.ReplaceAll(cerr.Error(), "\n", " ")
		}
		io.WriteString(stdin, answer+"\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("node testdata/browser/seed000.mjs: %v", err)
	}
	want := []string{"ok   pages-connected", "ok   metrics-shown", "ok   stock-update", "ok   order-status", "ok   new-order-toast"}
	if restart {
		want = append(want, "ok   restart-KILL", "ok   live-after-KILL", "ok   restart-TERM", "ok   live-after-TERM")
	}
	for _, s := range want {
		if !strings.Contains(out.String(), s) {
			t.Errorf("browser output lacks %q", s)
		}
	}
}
