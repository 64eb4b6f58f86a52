-- admin:low-stock and inventory:low-stock fire once per crossing of
-- available <= low_stock_threshold. Variant 3 (Large T-Shirt, seller 11):
-- 8 - 1 = 7, threshold 5.
UPDATE inventory SET quantity = 6 WHERE variant_id = '20000000-0000-4000-8000-000000000003';  -- 5: crosses
UPDATE inventory SET quantity = 4 WHERE variant_id = '20000000-0000-4000-8000-000000000003';  -- 3: still low, no alert
UPDATE inventory SET reserved = 4 WHERE variant_id = '20000000-0000-4000-8000-000000000003';  -- 0: still low
UPDATE inventory SET quantity = 50, reserved = 0 WHERE variant_id = '20000000-0000-4000-8000-000000000003'; -- 50: back up
UPDATE inventory SET quantity = 2 WHERE variant_id = '20000000-0000-4000-8000-000000000003';  -- 2: crosses again
-- Raising the threshold above the stock is a crossing too (Mug, seller 12: 60 - 5 = 55).
UPDATE inventory SET low_stock_threshold = 60 WHERE variant_id = '20000000-0000-4000-8000-000000000005';
