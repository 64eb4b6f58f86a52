package bus

import "github.com/walcast/walcast/hub"

// NewRedisTo returns a Redis bus attached to sink instead of a hub.
func NewRedisTo(cfg RedisConfig, sink hub.Local) (*Redis, error) {
	r, err := newRedis(cfg)
	if err != nil {
		return nil, err
	}
	r.Attach(sink)
	return r, nil
}

// ParseStreamID exposes parseStreamID.
func ParseStreamID(s string) bool { _, ok := parseStreamID(s); return ok }
