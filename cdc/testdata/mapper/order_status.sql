-- order:status-changed (order room) when status or tracking_number changes;
-- order:status (user room) when status changes.
UPDATE orders SET status = 'shipped', tracking_number = '1Z999AA10123456785' WHERE id = '30000000-0000-4000-8000-000000000002';
-- Tracking number only: status-changed, no order:status.
UPDATE orders SET tracking_number = '1Z999AA10123456786' WHERE id = '30000000-0000-4000-8000-000000000002';
-- Neither changes: no event.
UPDATE orders SET notes = 'fragile', updated_at = '2026-02-11 09:00:00+00' WHERE id = '30000000-0000-4000-8000-000000000002';
-- Tracking number removed (NULL).
UPDATE orders SET status = 'delivered', tracking_number = NULL WHERE id = '30000000-0000-4000-8000-000000000002';
