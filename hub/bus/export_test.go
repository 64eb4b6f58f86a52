package bus

// Broadcaster is what the Redis bus delivers to (a *hub.Server in production).
type Broadcaster = broadcaster

// NewRedisTo returns a Redis bus that delivers to sink instead of cfg.Server.
func NewRedisTo(cfg RedisConfig, sink Broadcaster) (*Redis, error) {
	r, err := newRedis(cfg)
	if err != nil {
		return nil, err
	}
	r.srv = sink
	return r, nil
}

// ParseStreamID exposes parseStreamID.
func ParseStreamID(s string) bool { _, ok := parseStreamID(s); return ok }
