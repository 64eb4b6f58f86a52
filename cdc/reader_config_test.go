package cdc_test

import (
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc"
)

func TestNewReader_Config(t *testing.T) {
	tests := []struct {
		name string
		cfg  cdc.ReaderConfig
		want []string // substrings of the error; none means valid
	}{
		{"Defaults", cdc.ReaderConfig{DSN: "host=/tmp"}, nil},
		{"NoDSN", cdc.ReaderConfig{}, []string{"DSN is required"}},
		{"BadNames", cdc.ReaderConfig{DSN: "x", Slot: "Bad-Slot", Publication: "pub'; drop"}, []string{"Slot \"Bad-Slot\"", "Publication \"pub'; drop\""}},
		{"Negative", cdc.ReaderConfig{DSN: "x", StatusInterval: -1, ReadTimeout: -1}, []string{"StatusInterval", "ReadTimeout"}},
		{"Backoff", cdc.ReaderConfig{DSN: "x", BackoffMin: 10, BackoffMax: 5}, []string{"backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := cdc.NewReader(tt.cfg)
			if len(tt.want) == 0 {
				if err != nil || r == nil {
					t.Fatalf("NewReader(%+v) = %v, %v; want a reader", tt.cfg, r, err)
				}
				if st := r.Stats(); st.State != cdc.StateStopped || st.State.String() != "stopped" {
					t.Errorf("new reader state = %v, want stopped", st.State)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewReader(%+v) = nil error, want %q", tt.cfg, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewReader error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := cdc.NewPipeline(cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: "x"}}); err == nil ||
		!strings.Contains(err.Error(), "Transformer") || !strings.Contains(err.Error(), "Sink") {
		t.Errorf("NewPipeline without Transformer and Sink = %v, want both named", err)
	}
}
