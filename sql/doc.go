// Package sql holds everything walcast needs inside the database, as plain SQL
// files embedded in the binary, and Migrate, which applies them.
//
// The files, applied in name order:
//
//   - 001_walcast.sql: the walcast schema with walcast.emit(room, event,
//     payload), walcast.notify(user_id, title, message, type) and
//     walcast.heartbeat(). They write transactional logical decoding messages
//     (prefixes "walcast" and "walcast.heartbeat"), so an event is delivered
//     only if its transaction commits, and no rows are left behind. emit and
//     notify are SECURITY DEFINER and sign each message with HMAC-SHA256
//     under the key in walcast.emit_key (created once, readable only by its
//     owner), bound to the transaction id; walcast drops "walcast" messages
//     whose signature does not verify (cdc.EmitKey), so EXECUTE on the two
//     functions decides who may emit.
//   - 010_demo_schema.sql: the demo shop from the seeds (profiles, products,
//     variants, inventory, orders with the order_status enum), with REPLICA
//     IDENTITY FULL on orders and inventory.
//   - 020_demo_seed.sql: demo rows with fixed ids.
//
// Migrate also creates or extends the publication and, when asked, the
// logical replication slot. Everything is idempotent: running it twice gives
// no error and no duplicate data. Concurrent Migrate calls against one
// database serialise on a transaction-level advisory lock.
//
// Callers: `walcast migrate` and `walcast demo` (cmd/walcast), and tests that
// need the schema. The package keeps no state and is safe for concurrent use;
// context cancellation aborts the running statement and rolls back.
package sql
