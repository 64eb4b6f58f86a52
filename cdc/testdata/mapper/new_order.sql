-- admin:new-order (the order row, as to_jsonb gives it) and order:new to the
-- seller's room. NULLs: no seller (no order:new), no tracking number, no notes.
INSERT INTO orders (id, order_number, user_id, seller_id, status, total, tracking_number, shipping_address, notes, created_at) VALUES
  ('30000000-0000-4000-8000-000000000101', 'ORD-2001', '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011',
   'pending', 59.97, NULL, E'1 Main St\nSpringfield "Apt 2"', 'leave at the door – thanks ✓', '2026-02-10 08:30:00+00');
INSERT INTO orders (id, order_number, user_id, status, total, created_at) VALUES
  ('30000000-0000-4000-8000-000000000102', 'ORD-2002', '00000000-0000-4000-8000-000000000102', 'paid', 9.50, '2026-02-10 08:31:00+00');
