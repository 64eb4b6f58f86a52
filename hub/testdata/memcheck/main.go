// Command memcheck measures the hub's memory per idle connected WebSocket
// socket: `memcheck server` runs a hub on -addr with a /stats endpoint;
// `memcheck client -n 15000` opens n WebSocket connections, CONNECTs each to
// "/", answers pings, and prints the server's RSS before and after (after a
// GC and FreeOSMemory on the server). Run the two in separate processes
// (ulimit -n is per process):
//
//	go run ./hub/testdata/memcheck server &
//	go run ./hub/testdata/memcheck client -n 15000
//
// The Node socket.io baseline with the same client: testdata/hub/memcheck-node.mjs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
)

type stats struct {
	RSSKiB     int64 `json:"rss_kib"`
	HeapInuse  uint64
	StackInuse uint64
	HeapAlloc  uint64
	Goroutines int
	Conns      int
	Sockets    int
}

func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			var n int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(sc.Text(), "VmRSS:")), "%d", &n)
			return n
		}
	}
	return -1
}

func server(addr string) {
	srv, err := hub.New(hub.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	// Like rooms: a middleware that watches ctx and sets an identity, a join.
	srv.Of("/").Use(func(ctx context.Context, h *hub.Handshake) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		h.Data = &struct{ User, Role string }{"user-1", "customer"}
		return nil
	})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("all") })
	mux := http.DefaultServeMux
	mux.Handle("/socket.io/", srv)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := srv.Stats()
		json.NewEncoder(w).Encode(stats{RSSKiB: rssKiB(), HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse,
			Goroutines: runtime.NumGoroutine(), Conns: st.Connections, Sockets: st.Sockets})
	})
	log.Fatal(http.ListenAndServe(addr, mux))
}

func getStats(addr string) stats {
	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var s stats
	json.NewDecoder(resp.Body).Decode(&s)
	return s
}

// browserHeader is what Chrome sends with a socket.io WebSocket handshake
// (plus the Sec-WebSocket-* headers the dialer adds), with a 200-byte cookie.
func browserHeader() http.Header {
	return http.Header{
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		"Origin":          {"https://shop.example.com"},
		"Cache-Control":   {"no-cache"},
		"Pragma":          {"no-cache"},
		"Accept-Encoding": {"gzip, deflate, br, zstd"},
		"Accept-Language": {"en-US,en;q=0.9,de;q=0.8"},
		"Cookie":          {"session=" + strings.Repeat("x", 192)},
	}
}

func client(addr string, n, par int, browser bool) {
	var hdr http.Header
	if browser {
		hdr = browserHeader()
	}
	before := getStats(addr)
	var ok atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	conns := make([]*websocket.Conn, n)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/socket.io/?EIO=4&transport=websocket&t=PdXq1zK", hdr)
			if err != nil {
				log.Printf("dial %d: %v", i, err)
				return
			}
			ws.ReadMessage()
			ws.WriteMessage(websocket.TextMessage, []byte{packet.EngineMessage, packet.SocketConnect})
			ws.ReadMessage()
			conns[i] = ws
			ok.Add(1)
		})
	}
	wg.Wait()
	for _, ws := range conns {
		if ws == nil {
			continue
		}
		go func() {
			for {
				_, m, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if len(m) == 1 && m[0] == packet.EnginePing {
					ws.WriteMessage(websocket.TextMessage, []byte{packet.EnginePong})
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	after := getStats(addr)
	c := float64(after.Sockets - before.Sockets)
	fmt.Printf("connected %d (server sockets %d)\n", ok.Load(), after.Sockets)
	fmt.Printf("RSS: %d KiB -> %d KiB: %.2f KiB per idle socket\n", before.RSSKiB, after.RSSKiB, float64(after.RSSKiB-before.RSSKiB)/c)
	fmt.Printf("live heap: %.0f B/socket, heap in use: %.0f B/socket, stacks: %.0f B/socket, goroutines %d -> %d\n",
		float64(after.HeapAlloc-before.HeapAlloc)/c, float64(after.HeapInuse-before.HeapInuse)/c, float64(after.StackInuse-before.StackInuse)/c, before.Goroutines, after.Goroutines)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4001", "server address")
	n := flag.Int("n", 15000, "connections (client)")
	par := flag.Int("par", 200, "concurrent dials (client)")
	browser := flag.Bool("browser-headers", false, "send browser-like handshake headers (client)")
	flag.CommandLine.Parse(os.Args[min(2, len(os.Args)):])
	if len(os.Args) < 2 {
		log.Fatal("usage: memcheck server|client [flags]")
	}
	switch os.Args[1] {
	case "server":
		server(*addr)
	case "client":
		client(*addr, *n, *par, *browser)
	}
}
