package rooms

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
)

// Access follows the data. A socket's rooms were allowed by the data at the
// time it joined them (the user's role, an order's owner). When that data
// changes, whoever reads the change (cmd/walcast, from the replication
// stream) calls RoleChanged or RoomChanged, and the policy re-checks the
// sockets concerned on this node at once, on the caller's goroutine, without
// I/O: they leave what they may no longer be in, join the auto-joined rooms a
// new role brings, get an EventAccessChanged event saying why, and a socket of
// /admin that is no longer an admin's is disconnected.

// EventAccessChanged tells a socket that its access changed:
// {"reason":…,"role":…,"left":[rooms],"joined":[rooms]}.
const EventAccessChanged = "access:changed"

// ReasonTokenExpired closes the transport of a socket whose token expired
// (recoverable: the client reconnects with a fresh token and resumes). It
// labels walcast_hub_disconnects_total.
const ReasonTokenExpired hub.Reason = "token expired"

// Reasons of EventAccessChanged.
const (
	ReasonRoleChanged     = "role_changed"     // the user's role changed (profiles)
	ReasonOwnerChanged    = "owner_changed"    // the room's row now belongs to someone else (an order reassigned or deleted)
	ReasonSessionRestored = "session_restored" // a recovered session brought back rooms the current identity may not be in
)

// RoomRule is a kind of room whose membership rests on the data, for rooms
// declared outside the built-in catalogue: the rules engine's rule-declared
// rooms plug in here. Such a rule is registered in Config.RoomRules; the
// policy asks MayStay when the member's role changes (RoleChanged) and when a
// recovered session brings the room back. When a row the rule's predicate
// reads changes, the code that reads the stream evaluates the predicate on the
// new row and calls Policy.RoomChanged with it, exactly as cmd/walcast does for
// the built-in order rooms (OrderOwnerChanged).
type RoomRule interface {
	// Prefix is the prefix of the rule's rooms, e.g. "ticket:".
	Prefix() string
	// MayStay reports whether id may be in room (which has Prefix), from what
	// is known without I/O (id's role). It must be safe for concurrent use.
	MayStay(id *Identity, room string) bool
}

// grant is why a socket may be in a room it subscribed to.
type grant struct {
	owner bool // the data said the user owns the room's row (order:{id})
}

// accessIndex finds the sockets concerned by a change: every socket of a
// user, and the sockets subscribed to a room, on this node.
type accessIndex struct {
	mu    sync.Mutex
	users map[string]map[*socketState]struct{}
	rooms map[string]map[*socketState]struct{}
}

func (x *accessIndex) add(m *map[string]map[*socketState]struct{}, key string, st *socketState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if *m == nil {
		*m = make(map[string]map[*socketState]struct{})
	}
	set := (*m)[key]
	if set == nil {
		set = make(map[*socketState]struct{})
		(*m)[key] = set
	}
	set[st] = struct{}{}
}

func (x *accessIndex) remove(m map[string]map[*socketState]struct{}, key string, st *socketState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if set := m[key]; set != nil {
		delete(set, st)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

func (x *accessIndex) snapshot(m map[string]map[*socketState]struct{}, key string) []*socketState {
	x.mu.Lock()
	defer x.mu.Unlock()
	set := m[key]
	out := make([]*socketState, 0, len(set))
	for st := range set {
		out = append(out, st)
	}
	return out
}

// has reports whether a socket of this node subscribed to room.
func (x *accessIndex) has(room string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.rooms[room]) > 0
}

func (p *Policy) indexRoom(room string, st *socketState) { p.access.add(&p.access.rooms, room, st) }
func (p *Policy) unindexRoom(room string, st *socketState) {
	p.access.remove(p.access.rooms, room, st)
}

// RoleChanged applies a committed change of user's role (role "" = no
// profile any more, so a customer): the cached profile is dropped, so new
// connections read the new role, and every socket of user on this node whose
// role came from the profile (not from a token claim) is re-checked with it.
// It does no I/O and is safe for concurrent use.
func (p *Policy) RoleChanged(user, role string) {
	if role == "" {
		role = DefaultCustomerRole
	}
	p.profiles.invalidate(user, role)
	for _, st := range p.access.snapshot(p.access.users, user) {
		old := st.identity()
		if !old.roleFromProfile || old.Role == role {
			continue
		}
		id := *old
		p.setRole(&id, role)
		st.reauthorize(&id, ReasonRoleChanged, nil)
	}
}

// RoomChanged applies a committed change of the data room's membership rests
// on: each socket of this node subscribed to room for which allowed(identity)
// is false leaves it and is told reason. owner, when not nil, records for the
// sockets that stay whether they now own the room's row (owner(identity)).
// It does no I/O and is safe for concurrent use.
func (p *Policy) RoomChanged(room string, allowed func(*Identity) bool, owner func(*Identity) bool, reason string) {
	for _, st := range p.access.snapshot(p.access.rooms, room) {
		st.recheckRoom(room, allowed, owner, reason)
	}
}

// OrderOwnerChanged applies a committed change of order orderID's owner
// (owner "" = the order was deleted): its subscribers other than admins and
// the new owner leave order:{orderID}.
func (p *Policy) OrderOwnerChanged(orderID, owner string) {
	isOwner := func(id *Identity) bool { return owner != "" && id.UserID == owner }
	p.RoomChanged(RoomOrder(orderID), func(id *Identity) bool { return id.Admin || isOwner(id) }, isOwner, ReasonOwnerChanged)
}

// setRole sets id's role and the flags that follow from it.
func (p *Policy) setRole(id *Identity, role string) {
	id.Role = role
	id.Admin = slices.Contains(p.cfg.AdminRoles, role)
	id.Seller = role == p.cfg.SellerRole
}

// autoRooms are the rooms id is joined to on connect.
func autoRooms(id *Identity) []string {
	auto := []string{RoomUser(id.UserID), RoomCart(id.UserID)}
	if id.Admin {
		auto = append(auto, RoomAdmin)
	}
	if id.Seller {
		auto = append(auto, RoomSeller(id.UserID))
	}
	return auto
}

// mayStay reports whether id may stay in room, a room it subscribed to with
// g, judged without I/O: by the role, or by what the data said (g).
func (p *Policy) mayStay(id *Identity, room string, g grant) bool {
	if k := p.kindOf(room); k != nil {
		return k.roleAllows(id) || g.owner
	}
	for _, r := range p.cfg.RoomRules {
		if strings.HasPrefix(room, r.Prefix()) {
			return r.MayStay(id, room)
		}
	}
	return false
}

// reauthorize replaces the socket's identity with id and brings its rooms in
// line with it; left are rooms already left (a recovered session's).
func (st *socketState) reauthorize(id *Identity, reason string, left []string) {
	st.mu.Lock()
	old := st.id
	st.id = id
	st.gen++
	oldAuto, newAuto := autoRooms(old), autoRooms(id)
	var joined []string
	for _, r := range oldAuto {
		if !slices.Contains(newAuto, r) {
			left = append(left, r)
		}
	}
	for _, r := range newAuto {
		if !slices.Contains(oldAuto, r) {
			joined = append(joined, r)
		}
	}
	var unsub []string
	for room, g := range st.subs {
		if !st.p.mayStay(id, room, g) {
			delete(st.subs, room)
			unsub = append(unsub, room)
		}
	}
	st.mu.Unlock()
	st.d.id.Store(id)
	left = append(left, unsub...)
	st.s.Leave(left...)
	st.s.Join(joined...)
	for _, r := range unsub {
		st.p.unindexRoom(r, st)
	}
	st.tell(reason, id, left, joined)
	if st.s.Namespace() == AdminNamespaceName && !id.Admin {
		st.s.Disconnect()
	}
}

// recheckRoom applies RoomChanged to this socket.
func (st *socketState) recheckRoom(room string, allowed, owner func(*Identity) bool, reason string) {
	st.mu.Lock()
	g, in := st.subs[room]
	if !in {
		st.mu.Unlock()
		return
	}
	id := st.id
	st.gen++ // a subscribe:order checking ownership meanwhile must not join on the old answer
	if allowed(id) {
		if owner != nil {
			g.owner = owner(id)
			st.subs[room] = g
		}
		st.mu.Unlock()
		return
	}
	delete(st.subs, room)
	st.mu.Unlock()
	st.s.Leave(room)
	st.p.unindexRoom(room, st)
	st.tell(reason, id, []string{room}, nil)
}

// tell sends EventAccessChanged; nothing when neither rooms nor role changed.
func (st *socketState) tell(reason string, id *Identity, left, joined []string) {
	if len(left) == 0 && len(joined) == 0 && reason != ReasonRoleChanged {
		return
	}
	if left == nil {
		left = []string{}
	}
	if joined == nil {
		joined = []string{}
	}
	_ = st.s.Emit(EventAccessChanged, struct {
		Reason string   `json:"reason"`
		Role   string   `json:"role"`
		Left   []string `json:"left"`
		Joined []string `json:"joined"`
	}{reason, id.Role, left, joined})
	st.p.cfg.Prom.accessChanged(reason)
	st.p.log.Info("access changed", slog.String(logkey.Reason, reason), slog.String(logkey.UserID, id.UserID),
		slog.String(logkey.Conn, st.s.ID()), slog.String(logkey.Role, id.Role), slog.Int("left", len(left)), slog.Int("joined", len(joined)))
}

// recoverRooms is the hub's OnRecover filter: the rooms of a recovered
// session are checked against the identity the middleware just verified
// (with the current role), before anything is replayed. Rooms of another
// user, admin rooms of a non-admin, orders the user does not own and rooms of
// no known kind are dropped; what stays becomes the socket's subscriptions.
func (p *Policy) recoverRooms(h *hub.Handshake, rooms []string) []string {
	d, ok := h.Data.(*socketData)
	if !ok || d.id.Load() == nil {
		return nil
	}
	id := d.id.Load()
	auto := autoRooms(id)
	kept := rooms[:0:0]
	d.subs = make(map[string]grant)
	for _, room := range rooms {
		if slices.Contains(auto, room) {
			kept = append(kept, room)
			continue
		}
		var g grant
		ok := false
		if k := p.kindOf(room); k != nil {
			roomID := room[len(k.Prefix):]
			if k.Constant || k.validID(roomID) {
				var r *refusal
				g, r = p.authorize(context.Background(), k, id, roomID)
				ok = r == nil
			}
		} else {
			for _, r := range p.cfg.RoomRules {
				if strings.HasPrefix(room, r.Prefix()) {
					ok = r.MayStay(id, room)
					break
				}
			}
		}
		if ok && (p.cfg.MaxRoomsPerSocket <= 0 || len(d.subs) < p.cfg.MaxRoomsPerSocket) {
			d.subs[room] = g
			kept = append(kept, room)
			continue
		}
		d.dropped = append(d.dropped, room)
	}
	return kept
}

// recheckRole reads the role of st's user again (a profile changed while the
// socket connected) and applies it if it differs.
func (p *Policy) recheckRole(ctx context.Context, st *socketState) {
	old := st.identity()
	if p.cfg.DB == nil {
		return
	}
	pr, err := p.lookupProfile(ctx, old.UserID)
	if err != nil {
		p.log.Warn("role re-check after a concurrent profile change failed; the role is re-checked at the next change or connect",
			slog.String(logkey.UserID, old.UserID), slog.Any(logkey.Err, err))
		return
	}
	role := pr.roleOrCustomer()
	if role == old.Role {
		return
	}
	id := *old
	p.setRole(&id, role)
	st.reauthorize(&id, ReasonRoleChanged, nil)
}
