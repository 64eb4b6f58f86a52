package cdc_test

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// blackholeProxy forwards TCP connections to a backend until freeze, after
// which the connections open at that moment stay open but carry nothing in
// either direction: a half-open connection as a dead NAT or peer leaves it.
// Connections made later work normally.
type blackholeProxy struct {
	ln      net.Listener
	backend string

	mu     sync.Mutex
	conns  []net.Conn
	frozen map[net.Conn]chan struct{}
}

func newBlackholeProxy(t *testing.T, backend string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln, backend: backend, frozen: map[net.Conn]chan struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *blackholeProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *blackholeProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		stop := make(chan struct{})
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.frozen[c] = stop
		p.mu.Unlock()
		go pipe(c, b, stop)
		go pipe(b, c, stop)
	}
}

// pipe copies src to dst until stop is closed; then it stops reading (and
// writing) without closing anything.
func pipe(dst, src net.Conn, stop chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-stop:
			<-make(chan struct{}) // hold the bytes forever (until the test closes the conns)
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (p *blackholeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, stop := range p.frozen {
		close(stop)
		delete(p.frozen, c)
	}
}

// TestReader_HalfOpen: the replication connection goes silent without being
// closed. The reader notices within ReadTimeout, reconnects, and delivers the
// rows written meanwhile.
func TestReader_HalfOpen(t *testing.T) {
	// The frozen walsender must let the slot go: it does after wal_sender_timeout.
	c := pgtest.New(t, pgtest.Options{TCPPort: -1, Settings: []string{"wal_sender_timeout = '3s'"}})
	db := testDB(t, c, `CREATE TABLE h (id int PRIMARY KEY)`)
	proxy := newBlackholeProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)))
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", proxy.port(), db)
	sink := newMemSink()
	p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
		DSN: dsn, Slot: db, HeartbeatInterval: -1, StatusInterval: 300 * time.Millisecond, ReadTimeout: time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	}, Sink: sink})
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	execEach(t, c.DSN(db), `INSERT INTO h VALUES (1)`)
	sink.waitEvents(t, 1, nil, 30*time.Second)
	waitCaughtUp(t, p, c.DSN(db))

	proxy.freeze()
	frozeAt := time.Now()
	execEach(t, c.DSN(db), `INSERT INTO h VALUES (2)`)
	sink.waitEvents(t, 1, func(e cdc.Event) bool { return e.Room == "h:2" }, 30*time.Second)
	t.Logf("row written during the outage delivered %v after the freeze; stats %+v", time.Since(frozeAt).Round(time.Millisecond), p.Stats())
	if p.Stats().Reconnects == 0 {
		t.Errorf("no reconnect after the connection went silent")
	}
}

// TestReader_ReplyRequested: with status updates due only every minute, the
// reader stays connected through several wal_sender_timeouts because it
// answers the server's reply requests at once.
func TestReader_ReplyRequested(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Settings: []string{"wal_sender_timeout = '1s'"}})
	db := testDB(t, c, `CREATE TABLE rr (id int PRIMARY KEY)`)
	sink := newMemSink()
	p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
		DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, StatusInterval: time.Minute, ReadTimeout: 2 * time.Minute,
	}, Sink: sink})
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	time.Sleep(4 * time.Second) // four wal_sender_timeouts
	execEach(t, c.DSN(db), `INSERT INTO rr VALUES (1)`)
	sink.waitEvents(t, 1, nil, 30*time.Second)
	waitCaughtUp(t, p, c.DSN(db))
	if st := p.Stats(); st.Reconnects != 0 || st.State != cdc.StateStreaming {
		t.Errorf("stats %+v: want streaming with no reconnects (every reply request answered)", st)
	}
}
