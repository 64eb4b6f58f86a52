package main

import (
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/rooms"
	"github.com/walcast/walcast/rules"
	wsql "github.com/walcast/walcast/sql"
)

// Access follows the data: the rows authorization rests on are read from the
// replication stream, in commit order, and applied to the rooms policy before
// the events of later changes are published. In cluster mode the leader also
// publishes each change over the bus as an accessEvent to accessRoom (a room
// no socket can join), and the other nodes apply it when it arrives
// (cluster.observeRemote), in order with the broadcasts around it.

const (
	accessRoom  = "walcast:access"
	accessEvent = "walcast:access"
)

// Where the profile role is read: the table of rooms.DefaultProfileQuery
// (put in the publication by walcast migrate when it exists).
const (
	profilesSchema, profilesTable    = "public", "profiles"
	profilesUserCol, profilesRoleCol = "user_id", "role"
)

// profilesCheck is the startup and `walcast check` entry for the profiles
// table: without it in the publication, role changes apply at the next
// connect only.
var profilesCheck = cdc.CheckTable{Name: profilesSchema + "." + profilesTable, Optional: true,
	Why: "role changes reach connected sockets only when they reconnect"}

// accessPolicy is what the watch applies changes to (*rooms.Policy).
type accessPolicy interface {
	RoleChanged(user, role string)
	OrderOwnerChanged(orderID, owner string)
	RoomDataChanged(room string, xid uint32)
	PoliciesChanged()
}

// policyPrefix is the logical message walcast.policy_changed (an event
// trigger) writes when a policy or privilege changes.
const policyPrefix = "walcast.policy"

// accessChange is one change, as carried over the bus.
type accessChange struct {
	User  string `json:"user,omitempty"`
	Role  string `json:"role,omitempty"`
	Order string `json:"order,omitempty"`
	Owner string `json:"owner,omitempty"`
	Room  string `json:"room,omitempty"` // a rule-declared room whose data changed
	XID   uint32 `json:"xid,omitempty"`  // the transaction that changed it
	// Policies: a policy or privilege changed; rls subscriptions are checked again.
	Policies bool `json:"policies,omitempty"`
}

func (c accessChange) apply(p accessPolicy) {
	if c.Policies {
		p.PoliciesChanged()
	} else if c.Room != "" {
		p.RoomDataChanged(c.Room, c.XID)
	} else if c.Order != "" {
		p.OrderOwnerChanged(c.Order, c.Owner)
	} else if c.User != "" {
		p.RoleChanged(c.User, c.Role)
	}
}

// accessWatch wraps the pipeline's transformer: every change still goes to
// it, and the changes of profiles (role) and orders (owner) are applied to the
// policy. It runs on the CDC goroutine.
type accessWatch struct {
	cdc.Transformer
	policy accessPolicy // set before the pipeline runs
	relay  bool         // cluster mode: also publish each change over the bus
	log    *slog.Logger

	// The mapped orders table; "" when unknown (a rules file).
	ordersSchema, ordersTable, ordersID, ordersUser string
	// follow lists, by "schema.table", the room kinds of a rules file whose
	// authorization follows that table's rows (nil with the mapper).
	follow map[string][]rules.Follow
}

func newAccessWatch(t cdc.Transformer, follow map[string][]rules.Follow, log *slog.Logger) *accessWatch {
	w := &accessWatch{Transformer: t, follow: follow, log: log}
	if m, ok := t.(*cdc.Mapper); ok {
		o := m.Mapping().Orders
		if id, err := wsql.ParseTable(o.Table); err == nil && o.UserID != "" {
			w.ordersSchema, w.ordersTable, w.ordersID, w.ordersUser = id[0], id[1], o.ID, o.UserID
		}
	}
	return w
}

// Map implements cdc.Transformer.
func (w *accessWatch) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) {
	dst, err := w.Transformer.Map(dst, c)
	if err == nil && c.Op == cdc.OpMessage && c.Prefix == policyPrefix && w.policy != nil {
		ch := accessChange{Policies: true}
		ch.apply(w.policy)
		if w.relay {
			payload, _ := json.Marshal(ch)
			dst = append(dst, cdc.Event{Room: accessRoom, Name: accessEvent, Payload: payload, CommitTime: c.CommitTime})
		}
		return dst, nil
	}
	if err != nil || c.Relation == nil || w.policy == nil {
		return dst, err
	}
	r := c.Relation
	var changes []accessChange
	switch {
	case r.Name == profilesTable && r.Namespace == profilesSchema:
		changes = profileChanges(c)
	case w.ordersTable != "" && r.Name == w.ordersTable && r.Namespace == w.ordersSchema:
		changes = w.orderChanges(c)
	case w.follow != nil && w.follow[r.Namespace+"."+r.Name] != nil:
		changes = followChanges(c, w.follow[r.Namespace+"."+r.Name])
	default:
		return dst, nil
	}
	for _, ch := range changes {
		ch.apply(w.policy)
		if w.relay {
			payload, _ := json.Marshal(ch)
			dst = append(dst, cdc.Event{Room: accessRoom, Name: accessEvent, Payload: payload, CommitTime: c.CommitTime})
		}
	}
	return dst, nil
}

// MapCommit implements cdc.Committer for a transformer that holds events
// until their commit (the rule engine's collect rules).
func (w *accessWatch) MapCommit(dst []cdc.Event, lsn cdc.LSN, at time.Time, changes uint32) []cdc.Event {
	if c, ok := w.Transformer.(cdc.Committer); ok {
		return c.MapCommit(dst, lsn, at, changes)
	}
	return dst
}

// text returns column col of t as text, and whether it is known.
func text(c *cdc.Change, t cdc.Tuple, col string) (string, bool) {
	i := c.Column(col)
	if i < 0 || i >= len(t) {
		return "", false
	}
	switch t[i].Kind {
	case cdc.ValueText:
		return string(t[i].Data), true
	case cdc.ValueNull:
		return "", true
	}
	return "", false
}

func profileChanges(c *cdc.Change) []accessChange {
	var out []accessChange
	oldUser, oldOK := text(c, c.Old, profilesUserCol)
	switch c.Op {
	case cdc.OpDelete:
		if oldOK && oldUser != "" {
			out = append(out, accessChange{User: oldUser})
		}
	case cdc.OpInsert, cdc.OpUpdate:
		user, ok := text(c, c.New, profilesUserCol)
		if !ok || user == "" {
			return nil
		}
		if oldOK && oldUser != "" && oldUser != user {
			out = append(out, accessChange{User: oldUser}) // the row moved to another user id
		}
		role, ok := text(c, c.New, profilesRoleCol)
		if !ok {
			return out // an unchanged TOASTed role did not change
		}
		if role == "" {
			role = rooms.DefaultCustomerRole
		}
		out = append(out, accessChange{User: user, Role: role})
	}
	return out
}

func (w *accessWatch) orderChanges(c *cdc.Change) []accessChange {
	switch c.Op {
	case cdc.OpDelete:
		if id, ok := text(c, c.Old, w.ordersID); ok && id != "" {
			return []accessChange{{Order: id}}
		}
	case cdc.OpUpdate:
		// An insert has no subscribers yet. Every update is applied, old image
		// or not: it costs a map lookup when nobody is subscribed.
		id, ok := text(c, c.New, w.ordersID)
		owner, ownerOK := text(c, c.New, w.ordersUser)
		if old, oldOK := text(c, c.Old, w.ordersUser); oldOK && ownerOK && old == owner {
			return nil // the owner did not change
		}
		if ok && id != "" && ownerOK {
			if owner == "" {
				return []accessChange{{Order: id}}
			}
			return []accessChange{{Order: id, Owner: owner}}
		}
	}
	return nil
}

// followChanges returns the rooms whose subscribers a change of a followed
// table re-checks: for each kind following it, the room of the old row's id
// and of the new row's (when they differ, both).
func followChanges(c *cdc.Change, fs []rules.Follow) []accessChange {
	var out []accessChange
	for _, f := range fs {
		for _, t := range []cdc.Tuple{c.Old, c.New} {
			if t == nil {
				continue
			}
			id, ok := text(c, t, f.Column)
			if !ok || id == "" {
				continue
			}
			ch := accessChange{Room: f.Kind.Prefix + id, XID: c.XID}
			if !slices.Contains(out, ch) {
				out = append(out, ch)
			}
		}
	}
	return out
}

// applyRemote applies an access change another node published; false if b is
// not one.
func applyRemote(b *hub.Broadcast, p accessPolicy, log *slog.Logger) bool {
	if b.Event != accessEvent || len(b.Rooms) != 1 || b.Rooms[0] != accessRoom || len(b.Args) != 1 {
		return false
	}
	var ch accessChange
	if err := json.Unmarshal(b.Args[0], &ch); err != nil {
		log.Warn("malformed access change from the bus; ignored", logkey.Err, err)
		return true
	}
	if p != nil {
		ch.apply(p)
	}
	return true
}
