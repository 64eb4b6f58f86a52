package hub

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus collectors. A nil *Metrics is valid and
// records nothing.
type Metrics struct {
	connections  prometheus.Gauge
	sockets      prometheus.Gauge
	rooms        prometheus.Gauge
	eventsOut    *prometheus.CounterVec
	eventsIn     *prometheus.CounterVec
	broadcasts   prometheus.Counter
	disconnects  *prometheus.CounterVec
	queueDrops   prometheus.Counter
	commitToSend prometheus.Histogram
	badPackets   *prometheus.CounterVec
	ipRefusals   *prometheus.CounterVec
	recoveries   *prometheus.CounterVec
	labels       *eventLabels
}

// NewMetrics creates the hub collectors and registers them with reg (nil reg =
// not registered). knownEvents are the event names that get their own
// walcast_hub_events_out_total series; every other name is counted as
// EventLabelOther (see EventLabel).
func NewMetrics(reg prometheus.Registerer, knownEvents ...string) *Metrics {
	m := &Metrics{
		labels: newEventLabels(knownEvents),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walcast_hub_connections", Help: "Open Engine.IO connections."}),
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walcast_hub_sockets", Help: "Connected Socket.IO sockets (one per namespace per connection)."}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walcast_hub_rooms", Help: "Non-empty rooms, socket-id rooms excluded."}),
		eventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_hub_events_out_total", Help: "Events queued to sockets (deliveries), by event name when it is a known one, else other."}, []string{"event"}),
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_hub_events_in_total",
			Help: "Events received from clients, by event name when a handler is registered for it, else _unhandled."}, []string{"event"}),
		broadcasts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walcast_hub_broadcasts_total", Help: "Server.Broadcast calls."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_hub_disconnects_total", Help: "Closed Engine.IO connections by reason."}, []string{"reason"}),
		queueDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walcast_hub_queue_drops_total", Help: "Connections dropped because their outbound queue overflowed."}),
		commitToSend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "walcast_hub_commit_to_send_seconds",
			Help:    "Time from the source commit to the broadcast being queued to every receiver.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		badPackets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_hub_bad_packets_total", Help: "Malformed or refused client input by kind."}, []string{"kind"}),
		ipRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_hub_ip_refused_total",
			Help: "Handshakes refused (429) by a per-IP cap: handshake_rate, connections or unauthenticated."}, []string{"limit"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_hub_recoveries_total",
			Help: "CONNECTs that asked to resume a session, by result: recovered, unknown, refused (another user's session, kept for its owner), namespace, live (its socket is still connected), ended, offset_gone, replay_too_large or store_error. All but recovered go on as new sessions."},
			[]string{"result"}),
	}
	for _, r := range recoveryResults {
		m.recoveries.WithLabelValues(r)
	}
	for _, l := range []string{ipLimitHandshakes, ipLimitConns, ipLimitUnauthenticated} {
		m.ipRefusals.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.sockets, m.rooms, m.eventsOut, m.eventsIn, m.broadcasts,
			m.disconnects, m.queueDrops, m.commitToSend, m.badPackets, m.ipRefusals, m.recoveries)
	}
	return m
}

func (m *Metrics) addConnections(d float64) {
	if m != nil {
		m.connections.Add(d)
	}
}

func (m *Metrics) addSockets(d float64) {
	if m != nil {
		m.sockets.Add(d)
	}
}

func (m *Metrics) addRooms(d float64) {
	if m != nil {
		m.rooms.Add(d)
	}
}

func (m *Metrics) eventOut(event string, n int) {
	if m != nil && n > 0 {
		m.eventsOut.WithLabelValues(m.labels.label(event)).Add(float64(n))
	}
}

func (m *Metrics) eventIn(event string) {
	if m != nil {
		m.eventsIn.WithLabelValues(event).Inc()
	}
}

func (m *Metrics) broadcast(commit time.Time) {
	if m == nil {
		return
	}
	m.broadcasts.Inc()
	if !commit.IsZero() {
		m.commitToSend.Observe(time.Since(commit).Seconds())
	}
}

func (m *Metrics) disconnect(reason Reason) {
	if m != nil {
		m.disconnects.WithLabelValues(reason.String()).Inc()
	}
}

func (m *Metrics) queueDrop() {
	if m != nil {
		m.queueDrops.Inc()
	}
}

func (m *Metrics) ipRefused(limit string) {
	if m != nil {
		m.ipRefusals.WithLabelValues(limit).Inc()
	}
}

func (m *Metrics) badPacket(kind string) {
	if m != nil {
		m.badPackets.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) recovery(result string) {
	if m != nil {
		m.recoveries.WithLabelValues(result).Inc()
	}
}
