-- One transaction with several rows and a message: events keep the order of
-- the changes, share the transaction, and indexes are change*4 + event.
BEGIN;
INSERT INTO orders (id, order_number, user_id, seller_id, status, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000601', 'ORD-7001', '00000000-0000-4000-8000-000000000102', '00000000-0000-4000-8000-000000000012', 'paid', 19.00, '2026-02-16 00:00:00+00');
UPDATE inventory SET reserved = reserved + 2 WHERE variant_id = '20000000-0000-4000-8000-000000000005';
UPDATE inventory SET quantity = quantity - 1
  WHERE variant_id IN ('20000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000002');
SELECT walcast.notify('00000000-0000-4000-8000-000000000102'::uuid, 'Order placed', 'ORD-7001 is paid', 'success');
UPDATE orders SET status = 'processing' WHERE id = '30000000-0000-4000-8000-000000000601';
COMMIT;
