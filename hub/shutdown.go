package hub

import (
	"context"
	"sync"
	"time"
)

// shutdownConcurrency bounds concurrent connection closes in Shutdown.
const shutdownConcurrency = 128

func (s *Server) snapshotConns() []*conn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	return out
}

func (s *Server) drained() bool {
	for _, c := range s.snapshotConns() {
		c.mu.Lock()
		// polling conns count too: Shutdown waits for their GET (until ctx)
		busy := c.w.busyLocked() || (len(c.w.out) > 0 && !c.closed)
		c.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

func (s *Server) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.log.Info("shutting down", "connections", s.nConns.Load())
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var err error
wait:
	for !s.drained() {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-t.C:
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, shutdownConcurrency)
	for _, c := range s.snapshotConns() {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.close(ReasonShutdown, err != nil)
		})
	}
	wg.Wait()
	// Wait for every connection's sockets to be disconnected (OnDisconnect
	// handlers ran, recovery sessions saved), until ctx ends or, when the
	// drain already used up ctx, for a short grace.
	deadline := time.Now().Add(shutdownFinishGrace)
	if d, ok := ctx.Deadline(); ok && err == nil {
		deadline = d
	}
	for s.nConns.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.writers.close(deadline)
	s.log.Info("shut down", "remaining_connections", s.nConns.Load())
	return err
}

// shutdownFinishGrace bounds the wait for socket cleanup after the drain
// deadline has passed.
const shutdownFinishGrace = 2 * time.Second
