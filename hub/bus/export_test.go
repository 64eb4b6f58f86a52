package bus

import "github.com/walcast/walcast/hub"

// Broadcaster is what the Redis bus delivers to (a *hub.Server in production).
type Broadcaster = broadcaster

// NewRedisTo returns a Redis bus that delivers to sink instead of cfg.Server.
func NewRedisTo(cfg RedisConfig, sink Broadcaster) (*Redis, error) {
	if cfg.Server == nil {
		cfg.Server = &hub.Server{}
	}
	r, err := NewRedis(cfg)
	if err != nil {
		return nil, err
	}
	r.srv = sink
	return r, nil
}

// ParseStreamID exposes parseStreamID.
func ParseStreamID(s string) bool { _, ok := parseStreamID(s); return ok }
