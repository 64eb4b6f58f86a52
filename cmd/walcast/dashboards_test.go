package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardFiles are the Grafana dashboard and Prometheus alert rules shipped
// in deploy/; every walcast series they query must exist in a node's /metrics.
var dashboardFiles = []string{"deploy/grafana-dashboard.json", "deploy/prometheus-alerts.yaml"}

var seriesName = regexp.MustCompile(`walcast_[a-z0-9_]+`)

// dashboardSeries returns the walcast series names the dashboard files use.
func dashboardSeries(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, f := range dashboardFiles {
		raw, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, seriesName.FindAllString(string(raw), -1)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// checkDashboardSeries reports each dashboard series missing from the
// exposition text of one node's /metrics.
func checkDashboardSeries(t *testing.T, node int, metrics string) {
	t.Helper()
	have := map[string]bool{}
	for _, line := range strings.Split(metrics, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			have[line[:i]] = true
		}
	}
	names := dashboardSeries(t)
	if len(names) == 0 {
		t.Fatal("no walcast series found in the dashboard files")
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("node %d /metrics lacks %s, which %v use", node, n, dashboardFiles)
		}
	}
}

// rawMetrics returns the node's whole /metrics exposition text.
func (n *wnode) rawMetrics(t *testing.T) string {
	t.Helper()
	resp, err := readyClient.Get(n.url() + "/metrics")
	if err != nil {
		t.Fatalf("node %d /metrics: %v", n.idx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("node %d /metrics: %v", n.idx, err)
	}
	return string(b)
}
