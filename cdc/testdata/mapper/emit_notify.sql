-- walcast.emit / walcast.notify become events to their rooms; the heartbeat
-- gives none; a rolled-back emit gives none.
SELECT walcast.emit('product:10000000-0000-4000-8000-000000000001', 'product:promo', '{"discount": 0.15, "until": "2026-03-01"}');
SELECT walcast.notify('00000000-0000-4000-8000-000000000101', 'Shipped', 'Your order ORD-1002 is on its way', 'info');
SELECT walcast.emit('admin:room', 'ping');
SELECT walcast.heartbeat();
BEGIN;
SELECT walcast.notify('00000000-0000-4000-8000-000000000101', 'Never', 'rolled back', 'info');
ROLLBACK;
-- A hand-made message (not signed by walcast.emit) is logged and counted as
-- unverified, not delivered.
SELECT pg_logical_emit_message(true, 'walcast', '{"event": "x"}');
-- Someone else's prefix is ignored.
SELECT pg_logical_emit_message(true, 'other.app', 'hello');
