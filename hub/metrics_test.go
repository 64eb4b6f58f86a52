package hub_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// gather sums each metric family's samples (counters, gauges, histogram counts).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] += m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] += m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
			for _, l := range m.GetLabel() {
				out[mf.GetName()+"{"+l.GetName()+"="+l.GetValue()+"}"] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, ts := hubtest.NewServer(t, hub.Config{Metrics: hub.NewMetrics(reg), Logger: hubLogger(t)})
	joined := make(chan struct{}, 2)
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("room"); joined <- struct{}{} })
	a, b := dial(t, ts.URL, "/", ""), dial(t, ts.URL, "/", "")
	<-joined
	<-joined
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"room"}, Event: "ev", Args: []json.RawMessage{raw(`1`)}, CommitTime: time.Now()})
	next(t, a)
	next(t, b)
	b.WriteRaw("4abc") // bad packet: closes b only
	<-b.Done()
	deadline := time.Now().Add(3 * time.Second)
	for srv.Stats().Sockets != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"walcast_hub_bad_packets_total{kind=socket}":        1,
		"walcast_hub_broadcasts_total":                      1,
		"walcast_hub_connections":                           1,
		"walcast_hub_sockets":                               1,
		"walcast_hub_rooms":                                 1,
		"walcast_hub_events_out_total{event=ev}":            2,
		"walcast_hub_disconnects_total{reason=parse error}": 1,
		"walcast_hub_commit_to_send_seconds":                1,
	} {
		if got[name] != want {
			t.Errorf("%s: got %v, want %v", name, got[name], want)
		}
	}
	var m *hub.Metrics // nil-safe: a server without metrics works (every other test)
	_ = m
}
