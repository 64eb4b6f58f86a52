package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the bus's Prometheus collectors. A nil *Metrics is valid and
// records nothing.
type Metrics struct {
	up         prometheus.Gauge
	publish    prometheus.Histogram
	lag        prometheus.Histogram
	messages   *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	retries    prometheus.Counter
	replayed   prometheus.Counter
	storeFails prometheus.Counter
	refills    prometheus.Counter
}

// NewMetrics creates the bus collectors and registers them with reg (nil reg =
// not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "walcast_bus_up",
			Help: "1 when the bus is healthy (Redis subscribed and the last publish succeeded), else 0."}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "walcast_bus_publish_seconds",
			Help:    "Time for one Publish call until the bus accepted every broadcast (Redis replied), retries included.",
			Buckets: buckets}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "walcast_bus_lag_seconds",
			Help:    "Time from the source commit to the receipt of the broadcast on this node.",
			Buckets: buckets}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_bus_messages_total",
			Help: "Broadcasts through the bus by direction (out = published, in = received and delivered)."},
			[]string{"direction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_bus_dropped_total",
			Help: "Bus messages not delivered, by reason: decode, namespace, duplicate (received twice), republished (re-read from the slot after a restart, already published), no_members (for a room without members on this node; not decoded), unsupported (a request of a Node server walcast does not apply)."},
			[]string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walcast_bus_publish_retries_total",
			Help: "Publish attempts that failed and were retried (Redis unreachable)."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walcast_bus_replayed_total",
			Help: "Broadcasts delivered from the recovery stream after a resubscribe (missed while unsubscribed)."}),
		storeFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walcast_bus_store_errors_total",
			Help: "Broadcasts Redis accepted for delivery but could not add to the recovery stream."}),
		refills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "walcast_bus_stream_refills_total",
			Help: "Times this node found the recovery streams lost (Redis restarted without its data) and refilled them from the replication slot."}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.publish, m.lag, m.messages, m.dropped, m.retries, m.replayed, m.storeFails, m.refills)
	}
	return m
}

func (m *Metrics) setUp(up bool) {
	if m == nil {
		return
	}
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
}

func (m *Metrics) observePublish(d time.Duration, n int) {
	if m == nil {
		return
	}
	m.publish.Observe(d.Seconds())
	m.messages.WithLabelValues("out").Add(float64(n))
}

func (m *Metrics) observeIn(commit time.Time) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues("in").Inc()
	if !commit.IsZero() {
		m.lag.Observe(time.Since(commit).Seconds())
	}
}

func (m *Metrics) drop(reason string) {
	if m == nil {
		return
	}
	m.dropped.WithLabelValues(reason).Inc()
}

func (m *Metrics) retry() {
	if m != nil {
		m.retries.Inc()
	}
}

func (m *Metrics) replay(n int) {
	if m != nil {
		m.replayed.Add(float64(n))
	}
}

func (m *Metrics) storeFail() {
	if m != nil {
		m.storeFails.Inc()
	}
}

func (m *Metrics) refill() {
	if m != nil {
		m.refills.Inc()
	}
}
