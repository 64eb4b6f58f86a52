// Package testutil holds the helpers walcast's tests share: a logger that
// writes to the test's output, a goroutine-safe Buffer, and a runner for the
// Node scripts under testdata/ (real socket.io-client and friends from
// testdata/node_modules). Only tests import it.
package testutil

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Logger returns a text logger at level that writes to t's output while the
// test runs and nowhere after it: server goroutines that outlive the test
// (closing connections) may still log, and t's output panics after the end.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	done bool
	w    io.Writer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

// Buffer is a goroutine-safe bytes.Buffer: a log handler or a child process
// writes to it while the test reads String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Testdata returns the module's testdata directory (absolute) and the node
// binary, after checking that testdata/node_modules/<module> is installed.
// When node or the module is missing the test skips, or fails when CI is set.
func Testdata(t testing.TB, module string) (node, testdata string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found in PATH: %v", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatalf("no go.mod above the test's directory")
		}
		dir = up
	}
	testdata = filepath.Join(dir, "testdata")
	if _, err := os.Stat(filepath.Join(testdata, "node_modules", module, "package.json")); err != nil {
		missing("%s is not installed (run `npm ci` in testdata/ or bash .ci/deps): %v", module, err)
	}
	return node, testdata
}

// NodeOptions configure StartNode.
type NodeOptions struct {
	// Module must be installed under testdata/node_modules; empty means
	// socket.io-client.
	Module string
	// Script is a path under testdata/, such as "interop/client.mjs".
	Script string
	Args   []string
	Env    []string // added to the test process's environment
	// Timeout bounds the process's life; zero means one minute.
	Timeout time.Duration
}

// Node is a running Node script. Its working directory is testdata/.
type Node struct {
	Stdin  io.WriteCloser
	Stderr *Buffer
	// Lines yields stdout line by line (a copy each) and is closed when
	// stdout ends.
	Lines <-chan []byte
	cmd   *exec.Cmd

	waitOnce sync.Once
	waitErr  error
}

// Wait drops the stdout lines nobody read and waits for the process to exit.
func (n *Node) Wait() error {
	for range n.Lines {
	}
	n.waitOnce.Do(func() { n.waitErr = n.cmd.Wait() })
	return n.waitErr
}

// StartNode starts `node testdata/<Script> Args...`. At the end of the test its
// stdin is closed, it has 5 s to exit before it is killed, and its stderr is
// logged if the test failed.
func StartNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	if opts.Module == "" {
		opts.Module = "socket.io-client"
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	node, testdata := Testdata(t, opts.Module)
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(testdata, opts.Script)}, opts.Args...)...)
	cmd.Dir = testdata
	cmd.Env = append(os.Environ(), opts.Env...)
	lines := make(chan []byte, 64)
	n := &Node{Stderr: &Buffer{}, Lines: lines, cmd: cmd}
	cmd.Stderr = n.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("stdout pipe: %v", err)
	}
	if n.Stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatalf("stdin pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", opts.Script, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		for sc.Scan() {
			select {
			case lines <- bytes.Clone(sc.Bytes()):
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = n.Stdin.Close()
		go func() {
			for range lines { // nobody reads any more; let the scanner reach the end
			}
		}()
		select {
		case <-scanned:
		case <-time.After(5 * time.Second):
		}
		cancel()
		n.waitOnce.Do(func() { n.waitErr = cmd.Wait() })
		err := n.waitErr
		if t.Failed() {
			if err != nil {
				t.Logf("%s: %v", opts.Script, err)
			}
			if s := n.Stderr.String(); s != "" {
				t.Logf("%s stderr:\n%s", opts.Script, s)
			}
		}
	})
	return n
}
