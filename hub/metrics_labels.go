package hub

import "sync"

// DefaultMaxEventLabels is how many distinct event names get their own
// walcast_hub_events_out_total series when NewMetrics is given no known
// names; later names share the label EventLabelOther.
const DefaultMaxEventLabels = 100

// EventLabelOther labels every event name that is not known (or past the
// first DefaultMaxEventLabels), so that event names chosen by whoever writes
// events (SQL, clients) never grow the number of series without bound: 5,000
// distinct names took /metrics from 1.2 to 2.5 MB.
const EventLabelOther = "other"

// eventLabels maps event names to a bounded set of metric labels.
type eventLabels struct {
	known map[string]bool // fixed at construction; nil: first come, up to max

	mu   sync.Mutex
	seen map[string]bool
	max  int
}

func newEventLabels(known []string) *eventLabels {
	l := &eventLabels{max: DefaultMaxEventLabels}
	if len(known) > 0 {
		l.known = make(map[string]bool, len(known))
		for _, k := range known {
			l.known[k] = true
		}
	} else {
		l.seen = map[string]bool{}
	}
	return l
}

func (l *eventLabels) label(event string) string {
	if l.known != nil {
		if l.known[event] {
			return event
		}
		return EventLabelOther
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[event] {
		return event
	}
	if len(l.seen) < l.max {
		l.seen[event] = true
		return event
	}
	return EventLabelOther
}

// EventLabel returns the label event is counted under in the event metrics:
// the name itself if it is one of the known names given to NewMetrics (or,
// without known names, one of the first DefaultMaxEventLabels seen), else
// EventLabelOther. Other components use it to label their own per-event
// series the same way. A nil *Metrics returns EventLabelOther.
func (m *Metrics) EventLabel(event string) string {
	if m == nil {
		return EventLabelOther
	}
	return m.labels.label(event)
}
