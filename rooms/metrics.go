package rooms

import "github.com/prometheus/client_golang/prometheus"

// PromMetrics are the policy's Prometheus collectors. A nil *PromMetrics
// records nothing.
type PromMetrics struct {
	// AuthRefused counts refused handshakes by reason code (Code…).
	AuthRefused *prometheus.CounterVec
	// EventsRefused counts refused client events by reason
	// (unknown_event, rate_limited, bad_room_id, forbidden, too_many_rooms,
	// cart_too_large, bad_payload, not_found, internal, access_changed: the
	// access changed while the subscribe was checked; the client may retry).
	EventsRefused *prometheus.CounterVec
	// Expired counts sockets dropped because their token expired.
	Expired prometheus.Counter
	// AbuseDisconnects counts sockets disconnected for sustained flooding.
	AbuseDisconnects prometheus.Counter
	// AccessChanged counts access:changed events sent to sockets, by reason
	// (role_changed, owner_changed, session_restored).
	AccessChanged *prometheus.CounterVec
}

// NewPromMetrics creates the collectors and registers them with reg (nil =
// not registered).
func NewPromMetrics(reg prometheus.Registerer) *PromMetrics {
	m := &PromMetrics{
		AuthRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "walcast", Subsystem: "rooms", Name: "auth_refused_total",
			Help: "Handshakes refused by the rooms policy, by reason code.",
		}, []string{"reason"}),
		EventsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "walcast", Subsystem: "rooms", Name: "events_refused_total",
			Help: "Client events refused by the rooms policy, by reason.",
		}, []string{"reason"}),
		Expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "walcast", Subsystem: "rooms", Name: "token_expired_disconnects_total",
			Help: "Sockets whose transport was closed because their token expired.",
		}),
		AbuseDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "walcast", Subsystem: "rooms", Name: "abuse_disconnects_total",
			Help: "Sockets disconnected for sustained event flooding.",
		}),
		AccessChanged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "walcast", Subsystem: "rooms", Name: "access_changed_total",
			Help: "Sockets told that their access changed (rooms left or joined after a role or owner change, or a recovered session's rooms dropped), by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.AuthRefused, m.EventsRefused, m.Expired, m.AbuseDisconnects, m.AccessChanged)
	}
	return m
}

func (m *PromMetrics) authRefused(code string) {
	if m != nil {
		m.AuthRefused.WithLabelValues(code).Inc()
	}
}

func (m *PromMetrics) eventRefused(reason string) {
	if m != nil {
		m.EventsRefused.WithLabelValues(reason).Inc()
	}
}

func (m *PromMetrics) expired() {
	if m != nil {
		m.Expired.Inc()
	}
}

func (m *PromMetrics) abuse() {
	if m != nil {
		m.AbuseDisconnects.Inc()
	}
}

func (m *PromMetrics) accessChanged(reason string) {
	if m != nil {
		m.AccessChanged.WithLabelValues(reason).Inc()
	}
}
