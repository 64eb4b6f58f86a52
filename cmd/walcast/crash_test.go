package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub/bus/redistest"
)

// TestCrash_SocketIOClient: one walcast serve process, no Redis. Real
// socket.io-client sockets (transports ['websocket','polling'],
// ['websocket'] and the default), each subscribed once to every demo
// product, while 10,000 inventory changes are committed in 1,000
// transactions; walcast is stopped 3 times (SIGKILL, or SIGTERM) and started
// again at once. Every client must end with every change, once, in commit
// order, and every reconnect must have been recovered. The same runs again
// with Redis (WALCAST_REDIS_URL, one node, an append-only Redis).
func TestCrash_SocketIOClient(t *testing.T) {
	needTool(t, "node")
	bin := buildWalcast(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { crashRun(t, bin, sig, "", nil) })
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run("redis-"+sig.String(), func(t *testing.T) {
			needTool(t, "redis-server")
			r := redistest.Start(t, redistest.Options{AppendOnly: true})
			crashRun(t, bin, sig, r.URL(), nil)
		})
	}
	// Redis without persistence, restarted empty while walcast is down: the
	// recovery streams are rebuilt from the slot, the sessions come from
	// walcast.sessions.
	t.Run("redis-empty-"+syscall.SIGKILL.String(), func(t *testing.T) {
		needTool(t, "redis-server")
		r := redistest.Start(t, redistest.Options{})
		crashRun(t, bin, syscall.SIGKILL, r.URL(), r.Restart)
	})
}

// crashRun stops walcast with sig and starts it again three times while
// changes are committed; between, when set, runs while walcast is down.
func crashRun(t *testing.T, bin string, sig syscall.Signal, redisURL string, between func()) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	dbURL := pg.URL("postgres")
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	db, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `UPDATE inventory SET reserved = 0`); err != nil {
		t.Fatal(err)
	}
	var variants, products []string
	rows, _ := db.Query(ctx, `SELECT v.id::text FROM variants v JOIN inventory i ON i.variant_id = v.id ORDER BY 1`)
	for rows.Next() {
		var v string
		rows.Scan(&v)
		variants = append(variants, v)
	}
	rows, _ = db.Query(ctx, `SELECT DISTINCT product_id::text FROM variants`)
	for rows.Next() {
		var p string
		rows.Scan(&p)
		products = append(products, p)
	}
	if rows.Err() != nil || len(variants) == 0 || len(products) == 0 {
		t.Fatalf("demo variants %v products %v: %v", variants, products, rows.Err())
	}

	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "walcast.log")
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "SUPABASE_JWT_SECRET="+clusterSecret,
		"WALCAST_LISTEN="+addr, "WALCAST_SHUTDOWN_TIMEOUT=3s", "WALCAST_LOG_LEVEL=info")
	if redisURL != "" {
		env = append(env, "WALCAST_REDIS_URL="+redisURL)
	}
	var proc *exec.Cmd
	var exited chan struct{}
	start := func() time.Time {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		proc = exec.Command(bin, "serve")
		proc.Env, proc.Stdout, proc.Stderr = env, f, f
		t0 := time.Now()
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan struct{})
		go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); f.Close(); close(ch) }(proc, exited)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, err := readyClient.Get("http://" + addr + "/readyz"); err == nil {
				var r readiness
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if r.Ready && r.Replication == "streaming" {
					return t0
				}
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("walcast not ready after 20 s:\n%s", lastLines(string(b), 30))
			}
		}
	}
	stop := func() {
		proc.Process.Signal(sig)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Fatal("walcast did not exit")
		}
	}
	start()
	t.Cleanup(func() { proc.Process.Kill(); <-exited })

	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": demoUsers["customer"].ID, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(clusterSecret))
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "crash", "clients.mjs"))
	node := exec.CommandContext(ctx, "node", script)
	node.Env = append(os.Environ(), "URL=http://"+addr, "TOKEN="+tok, "PRODUCTS="+strings.Join(products, ","), "PER=2", "TIMEOUT_MS=110000")
	node.Stderr = t.Output()
	stdin, _ := node.StdinPipe()
	stdout, _ := node.StdoutPipe()
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer node.Wait()
	type line struct {
		C         int    `json:"c"`
		V         string `json:"v"`
		A         int    `json:"a"`
		Ready     int    `json:"ready"`
		Reconnect int    `json:"reconnect"`
		Set       string `json:"set"`
		Recovered *bool  `json:"recovered"`
		Error     string `json:"error"`
		Fatal     string `json:"fatal"`
		Done      bool   `json:"done"`
		at        time.Time
	}
	lines := make(chan line, 1<<16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				l.at = time.Now()
				lines <- l
			}
		}
	}()
	nClients := 0
	for l := range lines {
		if l.Fatal != "" || l.Error != "" {
			t.Fatalf("clients.mjs: %s%s", l.Fatal, l.Error)
		}
		if l.Ready > 0 {
			nClients = l.Ready
			break
		}
	}
	if nClients == 0 {
		t.Fatal("clients.mjs ended before READY")
	}

	// 1,000 transactions of 10 changes; available values are 1..10,000 in
	// commit order. walcast is stopped and started again at 25/50/75 %.
	const txs, perTx = 1000, 10
	seq := 0
	var firstLive []time.Duration
	var restartAt []time.Time // process starts
	var restartSeq []int      // the first change committed after each
	for tx := 0; tx < txs; tx++ {
		if tx > 0 && tx%250 == 0 {
			stop()
			if between != nil {
				between()
			}
			t0 := start()
			firstLive = append(firstLive, time.Since(t0))
			restartAt, restartSeq = append(restartAt, t0), append(restartSeq, seq+1)
		}
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		for k := 0; k < perTx; k++ {
			seq++
			b.Queue(`UPDATE inventory SET quantity = $1 WHERE variant_id = $2`, seq, variants[seq%len(variants)])
		}
		b.Queue("COMMIT")
		if err := db.SendBatch(ctx, b).Close(); err != nil {
			t.Fatalf("tx %d: %v", tx, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%s: restart to ready (serving, replayed) took %v", sig, firstLive)

	got := make([][]int, nClients)
	// firstAt[k]: when a client first received the first change committed
	// after restart k.
	firstAt := make([]time.Time, len(restartSeq))
	noteFirst := func(l line) {
		for k, sq := range restartSeq {
			if l.A == sq && (firstAt[k].IsZero() || l.at.Before(firstAt[k])) {
				firstAt[k] = l.at
			}
		}
	}
	var recon []line
	deadline := time.After(30 * time.Second)
	complete := func() bool {
		for _, g := range got {
			if len(g) < txs*perTx {
				return false
			}
		}
		return true
	}
collect:
	for !complete() {
		select {
		case l, ok := <-lines:
			if !ok {
				break collect
			}
			switch {
			case l.Fatal != "" || l.Error != "":
				t.Errorf("clients.mjs: %s%s", l.Fatal, l.Error)
			case l.Recovered != nil:
				recon = append(recon, l)
			case l.V != "":
				got[l.C] = append(got[l.C], l.A)
				noteFirst(l)
			}
		case <-deadline:
			break collect
		}
	}
	fmt.Fprintln(stdin, "DONE")
	for l := range lines {
		if l.Recovered != nil {
			recon = append(recon, l)
		} else if l.V != "" {
			got[l.C] = append(got[l.C], l.A)
			noteFirst(l)
		}
	}
	var toLive []time.Duration
	for k, at := range firstAt {
		if !at.IsZero() {
			toLive = append(toLive, at.Sub(restartAt[k]).Round(time.Millisecond))
		}
	}
	t.Logf("%s: process start to the first change committed after it, received by a client: %v", sig, toLive)
	for c, g := range got {
		if d := firstDiffSeq(g); d >= 0 || len(g) != txs*perTx {
			t.Errorf("client %d: %d events, first wrong at index %d (want 1..%d once, in order); around it: %v",
				c, len(g), d, txs*perTx, g[max(d-12, 0):min(d+12, len(g))])
		}
	}
	notRecovered := 0
	for _, r := range recon {
		if !*r.Recovered {
			notRecovered++
			t.Errorf("client %d (%s) reconnect %d not recovered", r.C, r.Set, r.Reconnect)
		}
	}
	if len(recon) < 3*nClients {
		t.Errorf("%d reconnects seen, want %d (3 per client)", len(recon), 3*nClients)
	}
	if t.Failed() {
		b, _ := os.ReadFile(logPath)
		t.Logf("walcast log (last lines):\n%s", lastLines(string(b), 40))
	}
}

// firstDiffSeq returns the first index where g is not 1, 2, 3, …, or -1.
func firstDiffSeq(g []int) int {
	for i, v := range g {
		if v != i+1 {
			return i
		}
	}
	return -1
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
