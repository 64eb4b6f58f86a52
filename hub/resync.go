package hub

import (
	"sync"
	"time"

	"github.com/walcast/walcast/internal/logkey"
)

// EndAllSessions closes every connection now and makes every session
// unrecoverable: the ones it closes are not saved, and any saved before the
// call are refused. Clients reconnect (socket.io-client does on a closed
// transport) as new, unrecovered sessions, so they subscribe again and get the
// current state. Call it when events were lost upstream and replaying what the
// recovery store holds would hide the gap. why is logged.
func (s *Server) EndAllSessions(why string) {
	s.resyncAt.Store(time.Now().UnixNano())
	conns := s.snapshotConns()
	s.log.Warn("ending every session without recovery", logkey.Reason, why, "connections", len(conns))
	var wg sync.WaitGroup
	sem := make(chan struct{}, shutdownConcurrency)
	for _, c := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.close(ReasonResync, false)
		})
	}
	wg.Wait()
}
