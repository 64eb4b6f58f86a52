package rooms

import "time"

// SetNow replaces the clock of cfg (tests only).
func SetNow(cfg *Config, now func() time.Time) { cfg.now = now }

// ClaimPath exposes claimPath.
func ClaimPath(claims map[string]any, path string) (string, bool) { return claimPath(claims, path) }
