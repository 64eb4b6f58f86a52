-- Demo seed data with fixed ids. Idempotent: ON CONFLICT DO NOTHING.
-- Users: 1 admin, 1 super_admin, 2 sellers, 2 customers.

INSERT INTO public.profiles (user_id, role, email, full_name) VALUES
  ('00000000-0000-4000-8000-000000000001', 'admin',       'admin@example.com',  'Ada Admin'),
  ('00000000-0000-4000-8000-000000000002', 'super_admin', 'root@example.com',   'Sam Super'),
  ('00000000-0000-4000-8000-000000000011', 'seller',      'seller1@example.com','Sella One'),
  ('00000000-0000-4000-8000-000000000012', 'seller',      'seller2@example.com','Sello Two'),
  ('00000000-0000-4000-8000-000000000101', 'customer',    'alice@example.com',  'Alice Customer'),
  ('00000000-0000-4000-8000-000000000102', 'customer',    'bob@example.com',    'Bob Customer')
ON CONFLICT (user_id) DO NOTHING;

INSERT INTO public.products (id, name, seller_id, description, created_at) VALUES
  ('10000000-0000-4000-8000-000000000001', 'Classic T-Shirt', '00000000-0000-4000-8000-000000000011', 'Soft cotton tee',   '2026-01-01 00:00:00+00'),
  ('10000000-0000-4000-8000-000000000002', 'Hoodie',          '00000000-0000-4000-8000-000000000011', 'Warm hoodie',       '2026-01-01 00:00:00+00'),
  ('10000000-0000-4000-8000-000000000003', 'Coffee Mug',      '00000000-0000-4000-8000-000000000012', 'Ceramic, 350 ml',   '2026-01-01 00:00:00+00')
ON CONFLICT (id) DO NOTHING;

INSERT INTO public.variants (id, product_id, name, sku, price) VALUES
  ('20000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'Small',  'TS-S',  19.99),
  ('20000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000001', 'Medium', 'TS-M',  19.99),
  ('20000000-0000-4000-8000-000000000003', '10000000-0000-4000-8000-000000000001', 'Large',  'TS-L',  21.99),
  ('20000000-0000-4000-8000-000000000004', '10000000-0000-4000-8000-000000000002', 'One size','HD-1', 49.00),
  ('20000000-0000-4000-8000-000000000005', '10000000-0000-4000-8000-000000000003', 'White',  'MUG-W',  9.50)
ON CONFLICT (id) DO NOTHING;

INSERT INTO public.inventory (variant_id, quantity, reserved, low_stock_threshold, updated_at) VALUES
  ('20000000-0000-4000-8000-000000000001', 40, 2, 5,  '2026-01-01 00:00:00+00'),
  ('20000000-0000-4000-8000-000000000002', 25, 0, 5,  '2026-01-01 00:00:00+00'),
  ('20000000-0000-4000-8000-000000000003',  8, 1, 5,  '2026-01-01 00:00:00+00'),
  ('20000000-0000-4000-8000-000000000004', 12, 0, 3,  '2026-01-01 00:00:00+00'),
  ('20000000-0000-4000-8000-000000000005', 60, 5, 10, '2026-01-01 00:00:00+00')
ON CONFLICT (variant_id) DO NOTHING;

INSERT INTO public.orders (id, order_number, user_id, seller_id, status, total, tracking_number, shipping_address, notes, created_at) VALUES
  ('30000000-0000-4000-8000-000000000001', 'ORD-1001', '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011', 'delivered', 39.98, '1Z999AA10123456784', '1 Main St, Springfield', NULL, '2026-01-02 10:00:00+00'),
  ('30000000-0000-4000-8000-000000000002', 'ORD-1002', '00000000-0000-4000-8000-000000000102', '00000000-0000-4000-8000-000000000012', 'paid',      19.00, NULL,                 '2 Elm St, Shelbyville',  'gift wrap', '2026-01-03 11:30:00+00'),
  ('30000000-0000-4000-8000-000000000003', 'ORD-1003', '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011', 'cancelled', 49.00, NULL,                 '1 Main St, Springfield', NULL, '2026-01-04 09:15:00+00')
ON CONFLICT (id) DO NOTHING;
