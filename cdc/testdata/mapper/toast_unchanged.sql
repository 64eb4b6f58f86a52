-- A TOASTed text column left unchanged by an UPDATE: pgoutput sends it as
-- "unchanged"; under REPLICA IDENTITY FULL the Reader fills it from the old
-- row, so the row JSON equals to_jsonb (checked by the harness), never null.
-- Setup: 64 kB of poorly compressible text, stored out of line.
INSERT INTO orders (id, order_number, user_id, seller_id, status, total, notes, created_at)
SELECT '30000000-0000-4000-8000-000000000501', 'ORD-6001', '00000000-0000-4000-8000-000000000101',
       '00000000-0000-4000-8000-000000000011', 'paid', 120.00,
       string_agg(md5(i::text), ''), '2026-02-15 00:00:00+00'
FROM generate_series(1, 2000) i;
-- test
UPDATE orders SET status = 'shipped', tracking_number = 'TOAST-1' WHERE id = '30000000-0000-4000-8000-000000000501';
UPDATE orders SET total = 100.00 WHERE id = '30000000-0000-4000-8000-000000000501';
