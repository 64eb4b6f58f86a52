-- product:stock-updated: available = quantity - reserved changed.
-- Variant 1 (product 1, "Classic T-Shirt"): 40 - 2 = 38 -> 30.
UPDATE inventory SET quantity = 32 WHERE variant_id = '20000000-0000-4000-8000-000000000001';
-- quantity and reserved both +1: available unchanged, no event.
UPDATE inventory SET quantity = quantity + 1, reserved = reserved + 1 WHERE variant_id = '20000000-0000-4000-8000-000000000001';
-- A new product, variant and stock row in one transaction: the lookups follow
-- the stream, so the stock event already knows the new product.
BEGIN;
INSERT INTO products (id, name, seller_id, created_at) VALUES
  ('10000000-0000-4000-8000-000000000009', 'Cap', '00000000-0000-4000-8000-000000000012', '2026-02-01 00:00:00+00');
INSERT INTO variants (id, product_id, name, sku, price) VALUES
  ('20000000-0000-4000-8000-000000000009', '10000000-0000-4000-8000-000000000009', 'Blue', 'CAP-B', 15);
INSERT INTO inventory (variant_id, quantity, reserved, low_stock_threshold) VALUES
  ('20000000-0000-4000-8000-000000000009', 100, 0, 5);
COMMIT;
-- A delete gives no stock event.
DELETE FROM inventory WHERE variant_id = '20000000-0000-4000-8000-000000000009';
