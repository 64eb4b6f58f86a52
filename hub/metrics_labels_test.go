package hub_test

import (
	"fmt"
	"testing"

	"github.com/walcast/walcast/hub"
)

func TestMetrics_EventLabel(t *testing.T) {
	t.Run("Known", func(t *testing.T) {
		m := hub.NewMetrics(nil, "order:new", "notification")
		for name, want := range map[string]string{"order:new": "order:new", "notification": "notification", "promo:x": hub.EventLabelOther, "": hub.EventLabelOther} {
			if got := m.EventLabel(name); got != want {
				t.Errorf("EventLabel(%q) = %q, want %q", name, got, want)
			}
		}
	})
	t.Run("FirstComeCapped", func(t *testing.T) {
		m := hub.NewMetrics(nil)
		distinct := map[string]bool{}
		for i := range 5000 {
			distinct[m.EventLabel(fmt.Sprintf("name:%d", i))] = true
		}
		if len(distinct) != hub.DefaultMaxEventLabels+1 {
			t.Errorf("5,000 names gave %d labels, want %d", len(distinct), hub.DefaultMaxEventLabels+1)
		}
		if got := m.EventLabel("name:0"); got != "name:0" {
			t.Errorf("EventLabel(name:0) = %q after the cap, want it kept", got)
		}
	})
}
