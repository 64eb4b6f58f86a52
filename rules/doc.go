// Package rules is walcast's rule engine: business events declared as data.
//
// A rules file (JSON) declares lookups (tables kept in memory by key),
// per-table derived values, joins and guards, and event rules: on which
// operations of which table, under which condition over the old and new row,
// which event goes to which room with which payload. Conditions, derived
// values, room and payload templates are written in a small expression
// language (see the comment at the top of expr.go). The shop catalogue of the
// demo schema is the built-in file, builtin.json, embedded in the binary.
//
// Parse compiles a file without a database and reports every problem, one
// line each, wrapped in ErrInvalid. Compiled expressions are evaluated
// against a change's tuples without allocating.
//
// The same file declares room kinds ("rooms"): the client events that
// subscribe, the id format, state on subscribe and who may subscribe
// (anyone, admins, roles, or SQL: an owner query, a predicate, or a query
// run under the app's row-level security). The rules package parses and
// checks them (RoomKinds, FollowTables); the rooms package enforces them.
// "extends": "builtin" adds a file's entries to the built-in ones.
// TypeScript prints a declaration of the catalogue for socket.io-client.
//
// Engine maps changes by compiled rules (row events, lookups, the order_totals
// aggregate, walcast.emit). A collect rule holds its groups (one event per
// room and "by" value of a transaction) until the commit; the Engine is a
// cdc.Committer, and MapCommit sends them. The binary maps with it when WALCAST_RULES is set;
// otherwise cdc.Mapper still maps, and the built-in file gives the same
// events so that the Engine can replace it. CheckCatalog checks a file
// against the database (Engine.Load runs it).
//
// A Rules value is immutable after Parse and safe for concurrent use, except
// TypeScript, which must not run concurrently with itself. An Engine's
// methods are safe for concurrent use (one mutex); the payloads of the
// events Map returns are fresh copies the caller may keep.
package rules
