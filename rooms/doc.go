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
// Room ids sent by clients must be UUIDs or short slugs ([A-Za-z0-9_-]{1,64});
// anything else is refused with an ack error.
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
// # Concurrency
//
// A Policy is safe for concurrent use. Handlers of one socket run on that
// socket's reader goroutine (the hub's contract); per-socket state is owned by
// it. Run(ctx) owns the only background goroutine (periodic JWKS refresh); a
// JWKS refresh triggered by an unknown kid runs at most once at a time and is
// bounded by Config.JWKSFetchTimeout even when every waiting handshake has
// already given up.
package rooms
