// Package rooms is walcast's identity and room policy: it verifies the JWT a
// socket.io client sends in its CONNECT `auth` object, resolves the user's
// role, auto-joins the user's rooms and decides which client events are
// allowed. It installs itself into a *hub.Server (Policy.Install) as a connect
// middleware plus event handlers; it knows nothing of Postgres replication.
//
// # Room catalogue
//
//	user:{sub}        every connection of user sub (auto-joined)
//	cart:{sub}        every connection of user sub, for cart:synced (auto-joined)
//	seller:{sub}      sellers only (auto-joined)
//	admin:room        admins only (auto-joined)
//	admin:metrics     admins who sent subscribe:metrics
//	product:{id}      anyone who sent subscribe:product
//	order:{id}        the order's owner or an admin, after subscribe:order
//
// The rooms clients subscribe to are room kinds given as data (Config.Kinds,
// from a rules file's "rooms"; nil is DefaultKinds, the last three above):
// the client events that subscribe and unsubscribe, the id format (a UUID or
// short slug [A-Za-z0-9_-]{1,64} by default, or uuid, or integer; anything
// else is refused with an ack error), whether the room's state comes first,
// and who may subscribe: anyone, admins, roles, an owner query, a SQL
// predicate over $id and the token's claims, or the app's row-level security
// (the query runs as Config.RLSRole with request.jwt.claims set, in a
// transaction that is rolled back, as PostgREST does). Subscriptions are
// checked once per subscribe, never per event.
//
// # Authentication
//
// Tokens are HS256 (shared secret, Supabase legacy secret) and/or asymmetric
// (RS*, PS*, ES*, EdDSA) from a JWKS URL looked up through keyfunc/v3. A key
// lookup that must refresh the JWKS waits at most Config.KeyLookupTimeout, so a
// handshake never hangs on the key server. Refusals are CONNECT_ERROR packets
// whose message is one of "Authentication token required", "Invalid
// authentication token", "Token expired", "Authentication failed", "Too many
// connections" or "Admin access required", with {"code": "..."} in data naming the exact
// reason (see the Code… constants).
//
// A connected socket whose token expires is dropped at exp with
// hub.Socket.CloseTransport, so socket.io-client reconnects on its own with the
// token the app has put in socket.auth meanwhile.
//
// # Recovered sessions
//
// The hub takes the session a CONNECT names (socket.io 4.6+ pid) only after
// the policy's middleware verified the token. The middleware records the
// token's subject as the socket's hub.Handshake.User, which the hub saves
// with the session; the policy's hub.Namespace.OnRecoveryCheck hook resumes
// a session only for that same user, so a CONNECT with another user's pid
// goes on as a new session and the owner's session stays recoverable. Then
// the OnRecover filter checks the session's rooms against the identity just
// verified (the current role, the current order owners) before the hub
// rejoins them and replays what was missed, so nothing of a room the user
// may no longer be in is replayed.
//
// # Access changes
//
// Access follows the data: RoleChanged (a profile's role), OrderOwnerChanged
// and RoomChanged (any room whose membership rests on a row, e.g. a
// RoomRule) re-check this node's sockets concerned at once, without I/O.
// RoomDataChanged (a row a room kind's query reads changed) asks the kind's
// queries again for the room's subscribers, on Run's goroutine; those no
// longer allowed leave with reason access_revoked. They leave the rooms no longer allowed (auto-joins included), join the
// auto rooms a new role brings, get an EventAccessChanged event, and a socket
// of /admin that is no longer an admin's is then disconnected. RoleChanged
// also drops the user's cached profile, so new connections read the new role.
// Roles taken from a token claim (Config.RoleClaim) change only with a new
// token.
//
// # Limits
//
// Per socket: a token bucket of EventRate/EventBurst client events (refused
// with the ack error "rate limited"; more than AbuseLimit refusals within
// AbuseWindow disconnect the socket), MaxRoomsPerSocket subscriptions and
// MaxCartBytes per cart:update. Per user and namespace on this node:
// MaxConnsPerUser sockets ("Too many connections").
//
// # Metrics and logs
//
// NewPromMetrics registers walcast_rooms_auth_refused_total{reason},
// walcast_rooms_events_refused_total{reason},
// walcast_rooms_token_expired_disconnects_total,
// walcast_rooms_abuse_disconnects_total and
// walcast_rooms_access_changed_total{reason}. Refusals are logged at Info (10
// lines a second overall after a burst of 50, and at most 5 per socket), with
// the keys of internal/logkey.
//
// # Concurrency
//
// A Policy is safe for concurrent use. Handlers of one socket run on that
// socket's reader goroutine (the hub's contract); the per-socket identity and
// subscriptions are also changed by access changes, under a per-socket lock,
// on the goroutine that reports the change (in cmd/walcast, the replication
// reader's). Run(ctx) owns the only background goroutine (periodic JWKS refresh); a
// JWKS refresh triggered by an unknown kid runs at most once at a time and is
// bounded by Config.JWKSFetchTimeout even when every waiting handshake has
// already given up.
package rooms
