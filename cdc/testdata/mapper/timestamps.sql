-- timestamptz goes out in UTC as to_jsonb prints it, whatever the writer's
-- time zone; fractional seconds keep their digits; NULL stays null.
SET TimeZone = 'Asia/Kolkata';
INSERT INTO orders (id, order_number, user_id, total, created_at, updated_at) VALUES
  ('30000000-0000-4000-8000-000000000401', 'ORD-5001', '00000000-0000-4000-8000-000000000101', 1, '2026-02-14 10:00:00.123456+05:30', NULL),
  ('30000000-0000-4000-8000-000000000402', 'ORD-5002', '00000000-0000-4000-8000-000000000101', 1, '2026-02-14 23:59:59.5-08', '1999-12-31 23:59:59+00'),
  ('30000000-0000-4000-8000-000000000403', 'ORD-5003', '00000000-0000-4000-8000-000000000101', 1, '2026-02-14 12:00:00+00', 'infinity');
