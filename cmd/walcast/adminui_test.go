package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	adminUIUser = "ops"
	adminUIPass = "correct horse battery staple"
)

// adminUIEnv is the environment that turns the admin UI namespace on.
func adminUIEnv(t *testing.T) []string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(adminUIPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"WALCAST_ADMIN_UI_USERNAME=" + adminUIUser, "WALCAST_ADMIN_UI_PASSWORD_HASH=" + string(h)}
}

// runNodeSteps runs a node script from the repository root, logs its output
// and fails the test for each wanted "ok   <step>" line it did not print.
func runNodeSteps(t *testing.T, limit time.Duration, env []string, want []string, args ...string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("node %v: %v", args, err)
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		t.Log("node: " + sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("node %s: %v", args[0], err)
	}
	for _, s := range want {
		if !strings.Contains(out.String(), "ok   "+s) {
			t.Errorf("output of %s lacks %q", args[0], "ok   "+s)
		}
	}
}

func needNodeModules(t *testing.T, pkgs ...string) {
	t.Helper()
	needTool(t, "node")
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join("../../testdata/node_modules", pkg)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed: %v (run make deps)", pkg, err)
			}
			t.Skipf("%s not installed: %v (run make deps)", pkg, err)
		}
	}
}

// TestAdminUI_Protocol checks the Socket.IO Admin UI protocol on a two-node
// cluster (real Postgres, real redis-server) with socket.io-client
// (testdata/adminui/protocol.mjs): bad credentials get "invalid
// credentials"; an admin socket on node 0 gets the session, the config, the
// sockets of both nodes, the stats of both (leader and standby), and node 1's
// connects, room joins and events; its leave and disconnect reach node 1's
// socket; its session id logs in on node 1.
func TestAdminUI_Protocol(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	needNodeModules(t, "socket.io-client")
	c := startCluster(t, 2, true, adminUIEnv(t)...)
	tok := func(user string) string {
		var a struct{ Token string }
		if err := json.Unmarshal(c.token(user), &a); err != nil {
			t.Fatal(err)
		}
		return a.Token
	}
	env := []string{"ADMIN_USER=" + adminUIUser, "ADMIN_PASS=" + adminUIPass, "ADMIN_NSP=/walcast-admin",
		"TOKEN_A=" + tok(c.users[0]), "TOKEN_B=" + tok(c.users[1]), "TOKEN_C=" + tok(c.users[2]), "USER_C=" + c.users[2]}
	runNodeSteps(t, 2*time.Minute, env, []string{"bad-credentials", "admin-login", "config", "all-sockets both-nodes",
		"server-stats both-nodes leader+standby", "socket-connected-remote", "room-joined-remote", "event-received-remote",
		"leave-remote", "disconnect-remote", "session-other-node"},
		"testdata/adminui/protocol.mjs", c.nodes[0].url(), c.nodes[1].url())
	if t.Failed() {
		for _, n := range c.nodes {
			t.Logf("node %d log tail:\n%s", n.idx, n.logTail(30))
		}
	}
	if log := c.nodes[0].logTail(400); !strings.Contains(log, "admin ui login refused") {
		t.Errorf("node 0 did not log the refused logins; log tail:\n%s", c.nodes[0].logTail(20))
	}
}

// TestAdminUI_Browser opens the official Socket.IO Admin UI (the npm
// package's ui/dist, served by testdata/browser/adminui.mjs) in headless
// Chromium against a two-node cluster (real Postgres, real redis-server) with
// one client socket on each node: a wrong password shows "Invalid
// credentials"; after the login with the right one the Sockets page lists
// both nodes' sockets and the Servers page both nodes, the leader with its
// slot lag. Screenshots go to artifacts/browser-adminui/.
func TestAdminUI_Browser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	chromium := "/usr/bin/chromium"
	if c := os.Getenv("CHROMIUM"); c != "" {
		chromium = c
	}
	needTool(t, chromium)
	needNodeModules(t, "playwright-core", "@socket.io/admin-ui")
	pageAddr := freeAddr(t)
	env := append(adminUIEnv(t), "WALCAST_ALLOWED_ORIGINS=http://localhost,http://"+pageAddr)
	c := startCluster(t, 2, true, env...)
	a := c.connect(c.users[0], c.nodes[0])
	b := c.connect(c.users[1], c.nodes[1])
	host, _ := os.Hostname()
	if len(host) > 64 {
		host = host[:64]
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	artifacts := filepath.Join(root, "artifacts", "browser-adminui")
	os.RemoveAll(artifacts)
	t.Logf("screenshots: %s", artifacts)
	runNodeSteps(t, 3*time.Minute, []string{"CHROMIUM=" + chromium,
		"ADMIN_USER=" + adminUIUser, "ADMIN_PASS=" + adminUIPass, "ADMIN_NSP=/walcast-admin",
		"EXPECT_SOCKETS=" + a.c.ID() + "," + b.c.ID(),
		"EXPECT_SERVERS=" + nodeIDOf(host, c.nodes[0].addr) + "|" + nodeIDOf(host, c.nodes[1].addr)},
		[]string{"bad-credentials", "login", "sockets-of-both-nodes", "servers-both-nodes", "rooms", "dashboard"},
		"testdata/browser/adminui.mjs", pageAddr, c.nodes[0].url(), artifacts)
	if t.Failed() {
		for _, n := range c.nodes {
			t.Logf("node %d log tail:\n%s", n.idx, n.logTail(30))
		}
	}
}

// nodeIDOf is nodeID for another process's host and listen address.
func nodeIDOf(host, listen string) string { return host + " " + listen }
