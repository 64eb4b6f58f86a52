package bus

import (
	"context"
	"fmt"
	"sync"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
)

// Bus carries broadcasts to the hub of every node.
type Bus interface {
	// Publish hands bs to the bus in order; nil means every broadcast was
	// accepted (delivered locally, or acknowledged by Redis).
	Publish(ctx context.Context, bs []*hub.Broadcast) error
	// Run delivers what arrives on the bus to the local hub until ctx ends.
	Run(ctx context.Context) error
}

// Local is the in-process bus of a single node.
type Local struct {
	srv *hub.Server

	mu   sync.Mutex
	last map[string]streamID // per namespace, the highest offset delivered
}

var _ Bus = (*Local)(nil)

// NewLocal returns a bus that delivers straight to srv.
func NewLocal(srv *hub.Server) *Local { return &Local{srv: srv, last: make(map[string]streamID)} }

// Publish calls srv.Broadcast for each broadcast, in order. A broadcast whose
// offset ("<hi>-<lo>", compared numerically) is not above the last one
// delivered in its namespace is dropped: a source that sends a window again
// (the replication reader re-reading retained WAL) delivers each offset once.
// Broadcasts without a parseable offset always pass. It never blocks on a
// client; it fails only when ctx has already ended.
func (l *Local) Publish(ctx context.Context, bs []*hub.Broadcast) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: local publish: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bs {
		if l.freshLocked(b) {
			l.srv.Broadcast(b)
		}
	}
	return nil
}

// Restore hands bs to srv.Restore (the recovery buffer only, no delivery), in
// order, with the same duplicate rule as Publish: a node that re-reads its
// recovery window after a restart rebuilds the buffer without sending old
// events to anyone.
func (l *Local) Restore(bs []*hub.Broadcast) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bs {
		if !l.freshLocked(b) {
			continue
		}
		l.srv.Restore(b)
	}
}

// freshLocked reports whether b's offset is above the last one seen in its
// namespace (and records it); broadcasts without a parseable offset are fresh.
func (l *Local) freshLocked(b *hub.Broadcast) bool {
	id, ok := parseStreamID(b.Offset)
	if !ok {
		return true
	}
	nsp := packet.Namespace(b.Namespace)
	if last, seen := l.last[nsp]; seen && !last.less(id) {
		return false
	}
	l.last[nsp] = id
	return true
}

// Run blocks until ctx ends and returns nil: the local bus has nothing to
// receive.
func (l *Local) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
