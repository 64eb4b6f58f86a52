-- Without REPLICA IDENTITY FULL the mapper does not invent old values:
-- an unchanged TOASTed column is left out of the row (never null), status
-- events fire on every UPDATE (the change cannot be seen), no low-stock
-- crossing is reported (counted in stats.MissingOldImage), and metrics do not
-- follow updates (also counted).
ALTER TABLE orders REPLICA IDENTITY DEFAULT;
ALTER TABLE inventory REPLICA IDENTITY DEFAULT;
INSERT INTO orders (id, order_number, user_id, seller_id, status, total, notes, created_at)
SELECT '30000000-0000-4000-8000-000000000901', 'ORD-9901', '00000000-0000-4000-8000-000000000101',
       '00000000-0000-4000-8000-000000000011', 'paid', 120.00,
       string_agg(md5(i::text), ''), '2026-02-21 00:00:00+00'
FROM generate_series(1, 2000) i;
-- test
UPDATE orders SET status = 'shipped' WHERE id = '30000000-0000-4000-8000-000000000901';
UPDATE orders SET updated_at = '2026-02-22 00:00:00+00' WHERE id = '30000000-0000-4000-8000-000000000901';
UPDATE inventory SET quantity = 1 WHERE variant_id = '20000000-0000-4000-8000-000000000003';
