package hub_test

import (
	"testing"

	"github.com/walcast/walcast/hub"
)

// TestReason_Recoverable pins which closes keep a session for recovery:
// explicit disconnects, protocol errors and resyncs end it; anything that
// only lost the transport (custom CloseTransport reasons included) keeps it.
func TestReason_Recoverable(t *testing.T) {
	for r, want := range map[hub.Reason]bool{
		hub.ReasonTransportClose:    true,
		hub.ReasonTransportError:    true,
		hub.ReasonPingTimeout:       true,
		hub.ReasonSlow:              true,
		hub.ReasonWriteTimeout:      true,
		hub.ReasonShutdown:          true,
		hub.ReasonConnectTimeout:    true,
		hub.ReasonForcedClose:       true,
		hub.ReasonPollingConflict:   true,
		hub.ReasonForcedServerClose: true,
		hub.ReasonFlood:             true,
		"token expired":             true,
		hub.ReasonClientNamespace:   false,
		hub.ReasonServerNamespace:   false,
		hub.ReasonParseError:        false,
		hub.ReasonResync:            false,
	} {
		if got := r.Recoverable(); got != want {
			t.Errorf("Reason(%q).Recoverable() = %v, want %v", r, got, want)
		}
		if r.String() != string(r) {
			t.Errorf("Reason(%q).String() = %q", r, r.String())
		}
	}
}
