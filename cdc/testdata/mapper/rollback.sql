-- A rolled-back transaction gives no events; a rolled-back savepoint drops
-- only its own changes.
BEGIN;
INSERT INTO orders (id, order_number, user_id, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000701', 'ORD-8001', '00000000-0000-4000-8000-000000000101', 5, '2026-02-17 00:00:00+00');
UPDATE inventory SET quantity = 0 WHERE variant_id = '20000000-0000-4000-8000-000000000004';
SELECT walcast.emit('user:00000000-0000-4000-8000-000000000101', 'custom', '{"never": true}');
ROLLBACK;
BEGIN;
INSERT INTO orders (id, order_number, user_id, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000702', 'ORD-8002', '00000000-0000-4000-8000-000000000101', 7, '2026-02-17 00:00:00+00');
SAVEPOINT s;
INSERT INTO orders (id, order_number, user_id, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000703', 'ORD-8003', '00000000-0000-4000-8000-000000000101', 9, '2026-02-17 00:00:00+00');
SELECT walcast.emit('admin:room', 'custom', '{"never": true}');
ROLLBACK TO SAVEPOINT s;
COMMIT;
