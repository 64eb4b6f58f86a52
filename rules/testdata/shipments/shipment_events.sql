-- A team's own shipments table: its inserts and status or tracking changes
-- reach order:{order_id} (demo order ORD-1002), by the rules file alone.
INSERT INTO shipments (order_id, carrier) VALUES ('30000000-0000-4000-8000-000000000002', 'DHL');
UPDATE shipments SET tracking_number = 'JD0146000001' WHERE order_id = '30000000-0000-4000-8000-000000000002';
UPDATE shipments SET updated_at = '2026-03-01 00:00:00+00' WHERE order_id = '30000000-0000-4000-8000-000000000002'; -- nothing
UPDATE shipments SET status = 'in_transit' WHERE order_id = '30000000-0000-4000-8000-000000000002';
-- The built-in events still run beside it.
UPDATE orders SET status = 'shipped', tracking_number = 'JD0146000001' WHERE id = '30000000-0000-4000-8000-000000000002';
