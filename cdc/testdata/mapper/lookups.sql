-- Lookup caches follow the stream: a product renamed and moved to another
-- seller, a variant moved to another product, then stock changes.
UPDATE products SET name = 'Classic Tee', seller_id = '00000000-0000-4000-8000-000000000012'
  WHERE id = '10000000-0000-4000-8000-000000000001';
UPDATE variants SET product_id = '10000000-0000-4000-8000-000000000003', name = 'Mug-sized tee'
  WHERE id = '20000000-0000-4000-8000-000000000002';
UPDATE inventory SET quantity = 1 WHERE variant_id IN
  ('20000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000002');
