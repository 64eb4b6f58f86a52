package main

// The Socket.IO Admin UI's namespace (internal/adminui), on when
// WALCAST_ADMIN_UI_USERNAME and WALCAST_ADMIN_UI_PASSWORD_HASH are set. In a
// cluster its messages ride the Redis bus, so the UI connected to any node
// sees every node.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/adminui"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/rooms"
)

// adminUIOn reports whether the admin UI namespace is configured.
func (c config) adminUIOn() bool { return c.AdminUIUsername != "" && c.AdminUIPasswordHash != "" }

// adminUINamespace is the configured namespace or the default.
func (c config) adminUINamespace() string {
	if c.AdminUINamespace != "" {
		return c.AdminUINamespace
	}
	return adminui.DefaultNamespace
}

// newAdminUI declares the admin UI namespace on s.hub; nil when it is off.
func newAdminUI(c config, s *service) (*adminui.Admin, error) {
	if !c.adminUIOn() {
		return nil, nil
	}
	cfg := adminui.Config{
		Server:       s.hub,
		Namespace:    c.adminUINamespace(),
		Username:     c.AdminUIUsername,
		PasswordHash: string(c.AdminUIPasswordHash),
		ServerID:     nodeID(c.Listen),
		ReadOnly:     c.AdminUIReadOnly,
		Mode:         adminui.Mode(c.AdminUIMode),
		Data: func(sock *hub.Socket) any {
			id := rooms.IdentityOf(sock)
			if id == nil {
				return nil
			}
			return map[string]any{"userId": id.UserID, "role": id.Role}
		},
		Extra:  s.adminFigures,
		Logger: s.log,
	}
	if s.cluster != nil {
		cfg.Publish = s.bus.Publish
	}
	a, err := adminui.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("admin ui: %w", err)
	}
	if s.cluster != nil {
		s.cluster.adminRemote = a.Remote
	}
	s.log.Info("admin ui namespace on", logkey.Namespace, a.Namespace(), "mode", string(cfg.Mode), "readonly", cfg.ReadOnly, "server_id", cfg.ServerID)
	return a, nil
}

// adminFigures are walcast's own figures in the UI's server stats: the
// replication role and, on the leader, the slot lag.
func (s *service) adminFigures() (string, map[string]any) {
	st := s.cdc.p.Stats()
	role := "standby"
	if st.State == cdc.StateStreaming {
		role = "leader"
	}
	var lag uint64
	if st.ServerWALEnd > st.AckedLSN {
		lag = uint64(st.ServerWALEnd - st.AckedLSN)
	}
	var lagSec float64
	if role == "leader" {
		lagSec = s.lag.seconds(max(st.HandledLSN, st.AckedLSN), time.Now())
	}
	f := map[string]any{"role": role, "replication": st.State.String(), "slotLagBytes": lag, "slotLagSeconds": lagSec, "bus": "up"}
	if !s.busUp() {
		f["bus"] = "down"
	}
	summary := role
	if role == "leader" {
		summary += ", slot lag " + formatBytes(lag) + " / " + strconv.FormatFloat(lagSec, 'f', 1, 64) + " s"
	}
	return summary, f
}

// formatBytes prints n as B, kB or MB (powers of 1000).
func formatBytes(n uint64) string {
	switch {
	case n < 1000:
		return strconv.FormatUint(n, 10) + " B"
	case n < 1_000_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + " kB"
	default:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	}
}
