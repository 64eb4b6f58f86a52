package bus

import (
	"context"
	"fmt"
	"sync"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
)

// Bus is a hub.Adapter that also receives: Run delivers what arrives from
// the other nodes to the local hub until ctx ends.
type Bus interface {
	hub.Adapter
	Run(ctx context.Context) error
}

// Local is the adapter of a single node, with the duplicate rule of the Redis
// bus: a broadcast whose offset ("<hi>-<lo>", compared numerically) is not
// above the last one delivered in its namespace is dropped, so a source that
// sends a window again (the replication reader re-reading retained WAL)
// delivers each offset once. Broadcasts without a parseable offset always
// pass.
type Local struct {
	local hub.Local

	mu   sync.Mutex
	last map[string]streamID // per namespace, the highest offset delivered
}

var _ Bus = (*Local)(nil)

// NewLocal returns a single-node adapter; pass it as hub.Config.Adapter.
func NewLocal() *Local { return &Local{last: make(map[string]streamID)} }

// Attach implements hub.Adapter.
func (l *Local) Attach(local hub.Local) { l.local = local }

// Publish delivers each fresh broadcast of bs, in order. It never blocks on a
// client; it fails only when ctx has already ended.
func (l *Local) Publish(ctx context.Context, bs []*hub.Broadcast) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: local publish: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bs {
		if l.freshLocked(b) {
			l.local.Deliver(b)
		}
	}
	return nil
}

// Restore hands bs to the hub's recovery buffer only (hub.Local.Restore, no
// delivery), in order, with the same duplicate rule as Publish: a node that
// re-reads its recovery window after a restart rebuilds the buffer without
// sending old events to anyone.
func (l *Local) Restore(bs []*hub.Broadcast) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bs {
		if !l.freshLocked(b) {
			continue
		}
		l.local.Restore(b)
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
