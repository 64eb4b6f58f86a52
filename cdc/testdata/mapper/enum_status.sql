-- status is an ENUM (order_status): its text form goes out as a string.
INSERT INTO orders (id, order_number, user_id, seller_id, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000201', 'ORD-3001', '00000000-0000-4000-8000-000000000102', '00000000-0000-4000-8000-000000000012', 9.50, '2026-02-12 10:00:00+00');
UPDATE orders SET status = 'paid' WHERE id = '30000000-0000-4000-8000-000000000201';
UPDATE orders SET status = 'processing' WHERE id = '30000000-0000-4000-8000-000000000201';
UPDATE orders SET status = 'shipped', tracking_number = 'TRK-1' WHERE id = '30000000-0000-4000-8000-000000000201';
UPDATE orders SET status = 'delivered' WHERE id = '30000000-0000-4000-8000-000000000201';
UPDATE orders SET status = 'refunded' WHERE id = '30000000-0000-4000-8000-000000000201';
