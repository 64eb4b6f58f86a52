package rooms_test

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/testutil"
)

// driverWait bounds every wait for a line from the Node driver.
const driverWait = 15 * time.Second

// driver runs testdata/rooms/driver.mjs: real socket.io-client v4 sockets
// commanded over stdin, reporting on stdout.
type driver struct {
	t      testing.TB
	stdin  io.WriteCloser
	stderr *testutil.Buffer

	mu     sync.Mutex
	lines  []*dline
	notify chan struct{} // closed and replaced when a line arrives
	closed bool
	nextID int
}

// dline is one output line of the driver.
type dline struct {
	Name         string            `json:"name"`
	Ev           string            `json:"ev"`
	ID           json.RawMessage   `json:"id"`
	Message      string            `json:"message"`
	Data         json.RawMessage   `json:"data"`
	Event        string            `json:"event"`
	Args         []json.RawMessage `json:"args"`
	Reason       string            `json:"reason"`
	Error        string            `json:"error"`
	Results      map[string]int    `json:"results"`
	Disconnected bool              `json:"disconnected"`
	Recovered    bool              `json:"recovered"`
	PID          *string           `json:"pid"`
	Offset       *string           `json:"offset"`

	at   time.Time
	raw  string
	used bool
}

func startDriver(t testing.TB, url string) *driver {
	t.Helper()
	n := testutil.StartNode(t, testutil.NodeOptions{Script: filepath.Join("rooms", "driver.mjs"), Args: []string{url},
		Env: []string{"DRIVER_DEADLINE_MS=170000"}, Timeout: 3 * time.Minute})
	d := &driver{t: t, stdin: n.Stdin, stderr: n.Stderr, notify: make(chan struct{})}
	go func() {
		for b := range n.Lines {
			l := &dline{at: time.Now(), raw: string(b)}
			if err := json.Unmarshal(b, l); err != nil {
				l.Ev, l.Error = "unparsable", err.Error()
			}
			d.mu.Lock()
			d.lines = append(d.lines, l)
			close(d.notify)
			d.notify = make(chan struct{})
			d.mu.Unlock()
		}
		d.mu.Lock()
		d.closed = true
		close(d.notify)
		d.notify = make(chan struct{})
		d.mu.Unlock()
	}()
	return d
}

func (d *driver) send(cmd map[string]any) {
	d.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		d.t.Fatalf("marshal driver command: %v", err)
	}
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		d.t.Fatalf("write driver command: %v", err)
	}
}

func (d *driver) id() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	return d.nextID
}

// wait returns the first unused line matching pred, marking it used.
func (d *driver) wait(what string, timeout time.Duration, pred func(*dline) bool) *dline {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		for _, l := range d.lines {
			if l.Ev == "fatal" {
				d.mu.Unlock()
				d.t.Fatalf("driver: %s", l.Error)
			}
			if !l.used && pred(l) {
				l.used = true
				d.mu.Unlock()
				return l
			}
		}
		ch, closed := d.notify, d.closed
		d.mu.Unlock()
		if closed {
			d.t.Fatalf("waiting for %s: driver exited", what)
		}
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatalf("waiting for %s: timed out after %v", what, timeout)
		}
	}
}

// has reports whether some line (used or not) matches pred.
func (d *driver) count(pred func(*dline) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.lines {
		if pred(l) {
			n++
		}
	}
	return n
}

func (d *driver) lines4(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, l := range d.lines {
		if l.Name == name {
			b.WriteString(l.raw)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

type connectOpts struct {
	nsp        string
	transports []string
	noRetry    bool
	authFn     bool // auth as a callback reading the current token
	// pid and offset, when pid is set, make the socket resume that session
	// at its first CONNECT (see driver.session).
	pid, offset string
}

// connect opens socket name with token ("" = no token at all) and returns the
// connect or connect_error line.
func (d *driver) connect(name, token string, o connectOpts) *dline {
	d.t.Helper()
	cmd := map[string]any{"op": "connect", "name": name, "reconnection": !o.noRetry}
	if token != "" {
		cmd["token"] = token
	}
	if o.nsp != "" {
		cmd["nsp"] = o.nsp
	}
	if o.transports != nil {
		cmd["transports"] = o.transports
	}
	if o.authFn {
		cmd["authFn"] = true
	}
	if o.pid != "" {
		cmd["pid"], cmd["offset"] = o.pid, o.offset
	}
	d.send(cmd)
	return d.wait("connect of "+name, driverWait, func(l *dline) bool {
		return l.Name == name && (l.Ev == "connect" || l.Ev == "connect_error")
	})
}

// session returns socket name's recovery pid and last offset ("" when none).
func (d *driver) session(name string) (pid, offset string) {
	d.t.Helper()
	d.send(map[string]any{"op": "session", "name": name})
	l := d.wait("session of "+name, driverWait, func(l *dline) bool { return l.Name == name && l.Ev == "session" })
	if l.PID != nil {
		pid = *l.PID
	}
	if l.Offset != nil {
		offset = *l.Offset
	}
	return pid, offset
}

// emitAck emits event with args on socket name asking for an ack and returns
// the ack's first argument (or the driver's ack error).
func (d *driver) emitAck(name, event string, args ...any) (json.RawMessage, string) {
	d.t.Helper()
	id := d.id()
	if args == nil {
		args = []any{}
	}
	d.send(map[string]any{"op": "emit", "name": name, "id": id, "event": event, "args": args, "ack": true})
	idj, _ := json.Marshal(id)
	l := d.wait(event+" ack", driverWait, func(l *dline) bool {
		return l.Name == name && l.Ev == "ack" && bytes.Equal(l.ID, idj)
	})
	if l.Error != "" {
		return nil, l.Error
	}
	if len(l.Args) == 0 {
		return nil, "ack without arguments"
	}
	return l.Args[0], ""
}
