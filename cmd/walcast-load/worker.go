package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// WorkerConfig is the first line a worker process reads on stdin (JSON).
type WorkerConfig struct {
	Server      string   `json:"server"` // host:port of the Socket.IO server (IPv4)
	Path        string   `json:"path"`   // "/socket.io/"
	Secret      string   `json:"secret"` // HS256 secret for the tokens
	First       int      `json:"first"`  // index of the first client (user id)
	Count       int      `json:"count"`  // clients to connect
	Slow        int      `json:"slow"`   // of Count, how many (the last ones) never read
	Rooms       []string `json:"rooms"`  // client i subscribes to Rooms[i % len(Rooms)]; empty = none
	Sources     []string `json:"sources"`
	PerSource   int      `json:"per_source"` // clients per source address
	Concurrency int      `json:"concurrency"`
	Base        int64    `json:"base"`    // sequence numbers are Base+1 .. Base+MaxSeq
	MaxSeq      int      `json:"max_seq"` // capacity of the commit-time table
	Users       int      `json:"users"`   // distinct user ids: 0 = one per client, N = client i is user i mod N
}

// WorkerResult is the last line a worker writes on stdout (JSON).
type WorkerResult struct {
	Connected     int            `json:"connected"`
	ConnectFailed int            `json:"connect_failed"`
	ConnectErrors []string       `json:"connect_errors,omitempty"` // first few
	ConnectTime   time.Duration  `json:"connect_time"`
	Received      uint64         `json:"received"`   // unique in-order stock events for this run
	Duplicates    uint64         `json:"duplicates"` // seq not above the client's last one
	Stale         uint64         `json:"stale"`      // stock events from before this run
	Other         uint64         `json:"other"`      // other Socket.IO packets
	Closed        int            `json:"closed"`     // reading clients the server dropped
	SlowClosed    int            `json:"slow_closed"`
	Unmatched     uint64         `json:"unmatched"` // no commit time ever arrived
	CloseReasons  map[string]int `json:"close_reasons,omitempty"`
	FirstClose    time.Time      `json:"first_close"`
	Hist          *Hist          `json:"hist"`
	CPU           time.Duration  `json:"cpu"`
	RSS           int64          `json:"rss"`
}

// conn is one client socket owned by the poller.
type conn struct {
	fd      int
	lastSeq int64
	partial []byte // an incomplete frame carried to the next read
	closed  bool
	started bool // the poller has read from it (handshake leftovers consumed)
}

type pending struct {
	idx  int
	recv int64
}

// worker holds one worker process's clients and counters.
type worker struct {
	cfg    WorkerConfig
	commit []atomic.Int64 // commit wall time (unix ns) by seq-Base; 0 = not yet known

	mu           sync.Mutex // guards hist, pending, closeReasons (poller vs. the final report)
	hist         *Hist
	pending      []pending
	closeReasons map[string]int
	firstClose   time.Time

	received, dups, stale, other, unmatched atomic.Uint64
	closed                                  atomic.Int64
	leftover                                atomic.Int64 // conns added with handshake bytes to parse

	ep    int                    // the epoll instance
	conns []atomic.Pointer[conn] // by fd; set by connectAll, read by poll
	slow  []int                  // fds of clients that never read
}

// maxFDs bounds the fd numbers a worker can hold (the machine allows 20,000).
const maxFDs = 1 << 16

// runWorker is the `walcast-load worker` subcommand: connect, report "ready",
// then read commit records until "end" and report the result.
func runWorker(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewReaderSize(stdin, 1<<20)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("worker: read config: %w", err)
	}
	var cfg WorkerConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("worker: parse config: %w", err)
	}
	w := &worker{cfg: cfg, commit: make([]atomic.Int64, cfg.MaxSeq+2), hist: NewHist(), conns: make([]atomic.Pointer[conn], maxFDs)}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("worker: epoll_create: %w", err)
	}
	defer unix.Close(ep)
	w.ep = ep
	// The poller runs while clients connect, so that early clients answer
	// the server's pings during a long connect phase.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.poll(ep, stop)
	}()
	res, err := w.connectAll(ctx)
	if err != nil {
		close(stop)
		<-done
		return err
	}
	out := bufio.NewWriter(stdout)
	fmt.Fprintf(out, "ready %d %d\n", res.Connected, res.ConnectFailed)
	out.Flush()

	finish := func() error {
		close(stop)
		<-done
		w.mu.Lock()
		for _, p := range w.pending {
			if t := w.commit[p.idx].Load(); t != 0 {
				w.hist.Record(p.recv - t)
			} else {
				w.unmatched.Add(1)
			}
		}
		w.pending = nil
		w.mu.Unlock()
		var slowClosed atomic.Int64
		var wg sync.WaitGroup
		for _, fd := range w.slow {
			wg.Go(func() {
				if drainedClosed(fd, 3*time.Second) {
					slowClosed.Add(1)
				}
			})
		}
		wg.Wait()
		res.SlowClosed = int(slowClosed.Load())
		res.Received = w.received.Load()
		res.Duplicates = w.dups.Load()
		res.Stale = w.stale.Load()
		res.Other = w.other.Load()
		res.Unmatched = w.unmatched.Load()
		res.Closed = int(w.closed.Load())
		res.Hist = w.hist
		res.CloseReasons, res.FirstClose = w.closeReasons, w.firstClose
		if s, err := readProc(0); err == nil {
			res.CPU, res.RSS = s.CPU, s.HWM
		}
		b, _ := json.Marshal(res)
		out.Write(b)
		out.WriteByte('\n')
		return out.Flush()
	}
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return finish()
			}
			return fmt.Errorf("worker: read stdin: %w", err)
		}
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "c "):
			// c <idx> <unixnano>
			a, b, ok := strings.Cut(line[2:], " ")
			if !ok {
				continue
			}
			idx, _ := strconv.Atoi(a)
			t, _ := strconv.ParseInt(b, 10, 64)
			if idx > 0 && idx < len(w.commit) {
				w.commit[idx].Store(t)
			}
		case line == "stat":
			fmt.Fprintf(out, "stat %d %d\n", w.received.Load(), w.closed.Load())
			out.Flush()
		case line == "end":
			return finish()
		}
	}
}

// drainedClosed reads what a non-reading client's socket holds and reports
// whether the server has closed or reset the connection. A server that closed
// still has its close queued behind the data the client never read, so the
// check reads until EOF, or until nothing arrives for 300 ms, or budget ends.
func drainedClosed(fd int, budget time.Duration) bool {
	_ = unix.SetNonblock(fd, true)
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(budget)
	for time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			k, _ := unix.Poll(pfd, 300)
			if k == 0 {
				return false // quiet and open
			}
		case err != nil:
			return true // ECONNRESET and friends
		case n == 0:
			return true
		}
	}
	return false
}

func (w *worker) connectAll(ctx context.Context) (WorkerResult, error) {
	var res WorkerResult
	server, err := netip.ParseAddrPort(w.cfg.Server)
	if err != nil {
		return res, fmt.Errorf("worker: server address %q: %w", w.cfg.Server, err)
	}
	var sources []netip.Addr
	for _, s := range w.cfg.Sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return res, fmt.Errorf("worker: source address %q: %w", s, err)
		}
		sources = append(sources, a)
	}
	secret := []byte(w.cfg.Secret)
	conc := max(w.cfg.Concurrency, 1)
	type item struct {
		i   int
		c   *conn
		err error
	}
	jobs := make(chan int)
	results := make(chan item, conc)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range jobs {
				idx := w.cfg.First + i
				o := dialOptions{Server: server, Host: w.cfg.Server, Path: w.cfg.Path,
					Token: signHS256(secret, userIndex(idx, w.cfg.Users), time.Now(), 24*time.Hour), Timeout: 20 * time.Second}
				if len(w.cfg.Rooms) > 0 {
					o.Room = w.cfg.Rooms[idx%len(w.cfg.Rooms)]
				}
				o.SmallRcvBuf = i >= w.cfg.Count-w.cfg.Slow
				if len(sources) > 0 {
					per := max(w.cfg.PerSource, 1)
					o.Source = sources[(idx/per)%len(sources)]
				}
				var r dialResult
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					if r, err = dial(o); err == nil {
						break
					}
					time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
				}
				if err != nil {
					results <- item{i: i, err: err}
					continue
				}
				c := &conn{fd: r.fd}
				if len(r.rest) > 0 {
					c.partial = append([]byte(nil), r.rest...)
				}
				results <- item{i: i, c: c}
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range w.cfg.Count {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	for it := range results {
		if it.err != nil {
			res.ConnectFailed++
			if len(res.ConnectErrors) < 5 {
				res.ConnectErrors = append(res.ConnectErrors, it.err.Error())
			}
			continue
		}
		res.Connected++
		if it.i >= w.cfg.Count-w.cfg.Slow {
			w.slow = append(w.slow, it.c.fd)
			continue
		}
		if err := w.add(it.c); err != nil {
			return res, err
		}
	}
	res.ConnectTime = time.Since(start)
	return res, ctx.Err()
}

// add hands a connected client to the poller. Bytes read past the handshake
// stay in c.partial and are parsed with the next read.
func (w *worker) add(c *conn) error {
	if c.fd >= maxFDs {
		return fmt.Errorf("worker: fd %d over %d", c.fd, maxFDs)
	}
	if err := unix.SetNonblock(c.fd, true); err != nil {
		return fmt.Errorf("worker: set nonblock: %w", err)
	}
	w.conns[c.fd].Store(c)
	if err := unix.EpollCtl(w.ep, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
		return fmt.Errorf("worker: epoll_ctl: %w", err)
	}
	if len(c.partial) > 0 {
		// Already buffered data may never make the socket readable again:
		// ask the poller to look at it with a zero-length wake-up.
		w.leftover.Add(1)
	}
	return nil
}

// poll is the single event loop of the worker: level-triggered epoll, one read
// per ready socket per wakeup into a shared buffer, frames parsed in place.
func (w *worker) poll(ep int, stop <-chan struct{}) {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 1<<16)
	for {
		if w.leftover.Load() > 0 {
			// Parse what handshakes left over (rare: an event right after the ack).
			w.leftover.Store(0)
			now := time.Now().UnixNano()
			for i := range w.conns {
				c := w.conns[i].Load()
				if c != nil && !c.closed && len(c.partial) > 0 && !c.started {
					c.started = true
					p := c.partial
					c.partial = nil
					w.consume(c, p, now)
				}
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		n, err := unix.EpollWait(ep, events, 100)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for i := range n {
			c := w.conns[events[i].Fd].Load()
			if c == nil || c.closed {
				continue
			}
			c.started = true
			var data []byte
			off := copy(buf, c.partial)
			if off == len(buf) { // a frame bigger than the buffer: grow for this conn
				data = append(c.partial, make([]byte, 1<<16)...)
			} else {
				data = buf
			}
			m, err := readNonblock(c.fd, data[off:])
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil || m == 0 {
				if err != nil {
					w.noteClose("read error: " + err.Error())
				} else {
					w.noteClose("eof")
				}
				w.closeConn(ep, c)
				continue
			}
			c.partial = c.partial[:0]
			w.consume(c, data[:off+m], time.Now().UnixNano())
		}
	}
}

func (w *worker) closeConn(ep int, c *conn) {
	c.closed = true
	_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	w.closed.Add(1)
}

// noteClose counts why the server side went away (first reason kept with its time).
func (w *worker) noteClose(reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeReasons == nil {
		w.closeReasons = map[string]int{}
	}
	if len(w.closeReasons) < 10 {
		if _, ok := w.closeReasons[reason]; !ok && w.firstClose.IsZero() {
			w.firstClose = time.Now()
		}
		w.closeReasons[reason]++
	} else {
		w.closeReasons["other"]++
	}
}

// consume parses complete frames from b and keeps an incomplete tail in c.partial.
func (w *worker) consume(c *conn, b []byte, now int64) {
	for len(b) > 0 {
		op, p, n, err := parseFrame(b, 1<<24)
		if err != nil {
			w.noteClose("bad frame: " + err.Error())
			unix.Shutdown(c.fd, unix.SHUT_RDWR)
			return
		}
		if n == 0 {
			c.partial = append(c.partial[:0], b...)
			return
		}
		b = b[n:]
		switch op {
		case opText:
			w.handleText(c, p, now)
		case opPing:
			_ = writeAll(c.fd, appendClientFrame(nil, opPong, p))
		case opClose:
			w.noteClose(fmt.Sprintf("close frame %q", p))
			unix.Shutdown(c.fd, unix.SHUT_RDWR)
		default:
			w.other.Add(1)
		}
	}
}

func (w *worker) handleText(c *conn, p []byte, now int64) {
	if isPing(p) {
		_ = writeAll(c.fd, pongFrame)
		return
	}
	v, ok := parseStockEvent(p)
	if !ok {
		w.other.Add(1)
		return
	}
	idx := v - w.cfg.Base
	if idx <= 0 || idx >= int64(len(w.commit)) {
		w.stale.Add(1)
		return
	}
	if v <= c.lastSeq {
		w.dups.Add(1)
		return
	}
	c.lastSeq = v
	w.received.Add(1)
	t := w.commit[idx].Load()
	w.mu.Lock()
	if t != 0 {
		w.hist.Record(now - t)
	} else {
		w.pending = append(w.pending, pending{int(idx), now})
	}
	w.mu.Unlock()
}

// workerMain is called for `walcast-load worker`.
func workerMain(ctx context.Context) error {
	return runWorker(ctx, os.Stdin, os.Stdout)
}
