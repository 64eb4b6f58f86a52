-- Metrics follow inserts, updates and deletes of orders (cancelled and
-- refunded orders do not count). Start: 39.98 + 19.00 over 2 orders.
INSERT INTO orders (id, order_number, user_id, status, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000801', 'ORD-9001', '00000000-0000-4000-8000-000000000101', 'paid', 100.00, '2026-02-18 00:00:00+00');
UPDATE orders SET status = 'cancelled' WHERE id = '30000000-0000-4000-8000-000000000002';  -- -19.00
UPDATE orders SET status = 'paid' WHERE id = '30000000-0000-4000-8000-000000000003';       -- +49.00
UPDATE orders SET total = 40.00 WHERE id = '30000000-0000-4000-8000-000000000001';         -- +0.02
DELETE FROM orders WHERE id = '30000000-0000-4000-8000-000000000801';                     -- -100.00
