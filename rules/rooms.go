package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// RoomSpec declares a kind of room clients subscribe to: which client event
// subscribes (and unsubscribes), how the id the client sends is validated,
// whether the room's current state is sent on subscribe, and who may
// subscribe. The rooms package enforces it; the rules package only parses and
// checks it.
type RoomSpec struct {
	// Room is the room's name: "order:{id}" (a prefix then the client's id)
	// or a constant name without {id} ("admin:metrics").
	Room string `json:"room"`
	// Subscribe and Unsubscribe are the client events (Unsubscribe optional).
	Subscribe   string `json:"subscribe"`
	Unsubscribe string `json:"unsubscribe,omitempty"`
	// ID is how the client's id is validated: "slug" (default: a UUID or 1-64
	// of A-Z a-z 0-9 _ -), "uuid" or "integer". Unused for a constant room.
	ID string `json:"id,omitempty"`
	// State is what a new subscriber gets first: "" nothing, "snapshot" the
	// room's current rows (ordered with the stream), "aggregate" the current
	// value of the aggregate whose room this is.
	State string `json:"state,omitempty"`
	// Allow says who may subscribe; any alternative that holds allows.
	Allow AllowSpec `json:"allow"`
	// Follow names, per table, the column holding the room's id: when a row
	// of the table changes, the room's subscribers are checked again and
	// those no longer allowed leave it (authorization follows the data).
	Follow map[string]string `json:"follow,omitempty"`
	// Denied is the ack error a refused subscriber gets; "" = "not allowed".
	Denied string `json:"denied,omitempty"`
	// Snapshot are the queries whose rows a new subscriber gets first, with
	// State "snapshot" (the built-in mapper's own state is used without a
	// rules file). Each row is one event; its columns are the payload's
	// fields. The queries may use $id only; they run in one transaction that
	// also commits the stream mark, so the state is ordered with the stream.
	Snapshot []SnapshotSpec `json:"snapshot,omitempty"`
}

// SnapshotSpec is one state query of a room kind.
type SnapshotSpec struct {
	Event string `json:"event"`
	SQL   string `json:"sql"`
}

// SnapshotQuery is a compiled SnapshotSpec.
type SnapshotQuery struct {
	Event string
	Query *Query
}

// AllowSpec says who may subscribe to a room kind. SQL texts may use $id
// (the client's id), $user (the token's sub), $role (the user's role),
// $claims (the token's claims as jsonb) and $claims.a.b (one claim as text);
// a query allows when it returns a row whose first column is neither false
// nor null.
type AllowSpec struct {
	Anyone bool     `json:"anyone,omitempty"` // every authenticated user
	Admins bool     `json:"admins,omitempty"` // users with an admin role
	Roles  []string `json:"roles,omitempty"`  // users with one of these roles
	// Owner is a query returning the user id (text) owning $id: its owner
	// may subscribe, and stays only while the row says so.
	Owner string `json:"owner,omitempty"`
	// SQL is a predicate query run as walcast's own database role.
	SQL string `json:"sql,omitempty"`
	// RLS is a query run as the database role authenticated with
	// request.jwt.claims set to the token's claims (SET LOCAL ROLE and
	// set_config(…, true) in a transaction that is rolled back, as PostgREST
	// and Supabase do), so auth.uid() and the app's row-level security
	// policies decide.
	RLS string `json:"rls,omitempty"`
}

// Query is a SQL text of a rules file with its named parameters rewritten to
// positional ones: Params[i] is the name bound to $i+1 ("id", "user",
// "role" or "claims").
type Query struct {
	SQL    string
	Params []string
}

// RoomKind is a parsed RoomSpec.
type RoomKind struct {
	Name     string
	Spec     RoomSpec
	Prefix   string // the room is Prefix+id, or Prefix itself when Constant
	Constant bool
	Owner    *Query
	SQL      *Query
	RLS      *Query
	Snapshot []SnapshotQuery
}

// Room kind id formats and state modes.
const (
	IDSlug    = "slug"
	IDUUID    = "uuid"
	IDInteger = "integer"

	StateSnapshot  = "snapshot"
	StateAggregate = "aggregate"
)

// RoomKinds returns the file's room kinds sorted by name.
func (r *Rules) RoomKinds() []*RoomKind { return r.kinds }

var claimPathRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// compileQuery rewrites $id, $user, $role, $claims and $claims.a.b to
// positional parameters, numbered by first use. Text inside '…' and "…" is
// left alone; positional parameters ($1) are refused.
func compileQuery(s string) (*Query, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("an empty query")
	}
	q := &Query{}
	num := func(name string) int {
		if i := slices.Index(q.Params, name); i >= 0 {
			return i + 1
		}
		q.Params = append(q.Params, name)
		return len(q.Params)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(s) && s[j] != c {
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated %c…%c in %q", c, c, s)
			}
			b.WriteString(s[i : j+1])
			i = j + 1
		case c == '$':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] == '.' || ('a' <= s[j] && s[j] <= 'z') || ('A' <= s[j] && s[j] <= 'Z') || ('0' <= s[j] && s[j] <= '9')) {
				j++
			}
			name := strings.TrimRight(s[i+1:j], ".")
			j = i + 1 + len(name)
			switch {
			case name == "id" || name == "user" || name == "role":
				fmt.Fprintf(&b, "$%d", num(name))
			case name == "claims":
				fmt.Fprintf(&b, "$%d::jsonb", num("claims"))
			case strings.HasPrefix(name, "claims."):
				path := strings.Split(name[len("claims."):], ".")
				for _, p := range path {
					if !claimPathRE.MatchString(p) {
						return nil, fmt.Errorf("bad claim path $%s", name)
					}
				}
				fmt.Fprintf(&b, "($%d::jsonb #>> '{%s}')", num("claims"), strings.Join(path, ","))
			case name == "":
				return nil, fmt.Errorf("a lone $ in %q (parameters: $id, $user, $role, $claims, $claims.name)", s)
			default:
				if _, err := strconv.Atoi(name); err == nil {
					return nil, fmt.Errorf("positional parameter $%s: use $id, $user, $role, $claims or $claims.name", name)
				}
				return nil, fmt.Errorf("unknown parameter $%s (known: $id, $user, $role, $claims, $claims.name)", name)
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	q.SQL = b.String()
	return q, nil
}

// parseRooms checks and compiles the file's room kinds.
func (r *Rules) parseRooms(bad func(string, ...any)) {
	events := map[string]string{}
	prefixes := map[string]string{}
	for _, name := range sortedKeys(mapKeys(r.File.Rooms)) {
		s := r.File.Rooms[name]
		at := "rooms." + name
		k := &RoomKind{Name: name, Spec: s}
		switch i := strings.Index(s.Room, "{"); {
		case s.Room == "":
			bad("%s.room: a room name is required", at)
		case i < 0:
			k.Prefix, k.Constant = s.Room, true
		case s.Room[i:] != "{id}" || i == 0:
			bad("%s.room: %q: want a prefix then {id} (\"order:{id}\") or a constant name", at, s.Room)
		default:
			k.Prefix = s.Room[:i]
		}
		if strings.ContainsAny(k.Prefix, "{} ") {
			bad("%s.room: %q has a brace or a space in its prefix", at, s.Room)
		}
		for _, ev := range []string{s.Subscribe, s.Unsubscribe} {
			if ev == "" {
				continue
			}
			if reservedEventNames[ev] {
				bad("%s: %q is reserved by Socket.IO", at, ev)
			} else if other, ok := events[ev]; ok {
				bad("%s: client event %q is also rooms.%s's", at, ev, other)
			}
			events[ev] = name
		}
		if s.Subscribe == "" {
			bad("%s.subscribe: the client event that subscribes is required", at)
		}
		if other, ok := prefixes[k.Prefix]; ok && k.Prefix != "" {
			bad("%s.room: rooms %q are also rooms.%s's", at, s.Room, other)
		}
		prefixes[k.Prefix] = name
		switch s.ID {
		case "", IDSlug, IDUUID, IDInteger:
		default:
			bad("%s.id: unknown id format %q (want slug, uuid or integer)", at, s.ID)
		}
		switch s.State {
		case "", StateSnapshot, StateAggregate:
		default:
			bad("%s.state: unknown state %q (want snapshot or aggregate)", at, s.State)
		}
		a := s.Allow
		if !a.Anyone && !a.Admins && len(a.Roles) == 0 && a.Owner == "" && a.SQL == "" && a.RLS == "" {
			bad("%s.allow: say who may subscribe (anyone, admins, roles, owner, sql or rls)", at)
		}
		q := func(field, text string) *Query {
			if text == "" {
				return nil
			}
			if k.Constant {
				bad("%s.allow.%s: a constant room has no $id to query", at, field)
			}
			c, err := compileQuery(text)
			if err != nil {
				bad("%s.allow.%s: %v", at, field, err)
			}
			return c
		}
		k.Owner, k.SQL, k.RLS = q("owner", a.Owner), q("sql", a.SQL), q("rls", a.RLS)
		for table, col := range s.Follow {
			if _, err := normTable(table); err != nil {
				bad("%s.follow: %v", at, err)
			}
			if col == "" {
				bad("%s.follow.%s: the column holding the room's id is required", at, table)
			}
			if k.Constant {
				bad("%s.follow: a constant room has no id to follow", at)
			}
		}
		if len(s.Snapshot) > 0 && s.State != StateSnapshot {
			bad("%s.snapshot: set state to snapshot to send these queries' rows", at)
		}
		for i, sn := range s.Snapshot {
			if strings.TrimSpace(sn.Event) == "" {
				bad("%s.snapshot[%d].event: an event name is required", at, i)
			}
			c, err := compileQuery(sn.SQL)
			if err != nil {
				bad("%s.snapshot[%d].sql: %v", at, i, err)
				continue
			}
			for _, p := range c.Params {
				if p != "id" {
					bad("%s.snapshot[%d].sql: $%s: state queries may use $id only (the state is the room's, not the user's)", at, i, p)
				}
			}
			k.Snapshot = append(k.Snapshot, SnapshotQuery{Event: sn.Event, Query: c})
		}
		r.kinds = append(r.kinds, k)
	}
}

// KindOf returns the room kind room belongs to, or nil.
func (r *Rules) KindOf(room string) *RoomKind {
	var best *RoomKind
	for _, k := range r.kinds {
		switch {
		case k.Constant:
			if room == k.Prefix {
				return k
			}
		case strings.HasPrefix(room, k.Prefix) && len(room) > len(k.Prefix):
			if best == nil || len(k.Prefix) > len(best.Prefix) {
				best = k
			}
		}
	}
	return best
}

// FollowTables returns the tables room kinds follow, with the kinds and the
// id column, by "schema.table".
func (r *Rules) FollowTables() map[string][]Follow {
	out := map[string][]Follow{}
	for _, k := range r.kinds {
		for table, col := range k.Spec.Follow {
			t, err := normTable(table)
			if err != nil {
				continue
			}
			out[t] = append(out[t], Follow{Kind: k, Column: col})
		}
	}
	return out
}

// Follow is a table column a room kind's authorization follows.
type Follow struct {
	Kind   *RoomKind
	Column string
}
