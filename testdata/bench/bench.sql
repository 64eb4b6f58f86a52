-- Bench rows and the Node baseline's trigger, applied after walcast's own
-- migration (sql/: the demo schema). Idempotent.
--
-- 10,000 bench products, one variant each, inventory with reserved = 0 and a
-- low-stock threshold of 0, so that available == quantity == the load tool's
-- sequence number and no low-stock crossing happens. Ids are fixed:
--   product r: 30000000-0000-4000-8000-<r, 12 digits>, r = 1..10000
--   variant r: 40000000-0000-4000-8000-<r, 12 digits>

INSERT INTO public.products (id, name, description)
SELECT ('30000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       'bench ' || lpad(i::text, 5, '0'), 'load test product'
FROM generate_series(1, 10000) AS i
ON CONFLICT (id) DO NOTHING;

INSERT INTO public.variants (id, product_id, name, sku, price)
SELECT ('40000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       ('30000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       'bench', 'BENCH-' || i, 1
FROM generate_series(1, 10000) AS i
ON CONFLICT (id) DO NOTHING;

INSERT INTO public.inventory (variant_id, quantity, reserved, low_stock_threshold)
SELECT ('40000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 0, 0, 0
FROM generate_series(1, 10000) AS i
ON CONFLICT (variant_id) DO NOTHING;

-- The Node baseline (server.mjs) gets its events the way a Node shop without
-- walcast would: an AFTER UPDATE trigger that NOTIFYs, and LISTEN in Node.
-- Same rule as walcast's mapper: only when available = quantity - reserved changed.
CREATE OR REPLACE FUNCTION public.bench_notify_stock() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  pid uuid;
BEGIN
  IF (NEW.quantity - NEW.reserved) IS DISTINCT FROM (OLD.quantity - OLD.reserved) THEN
    SELECT product_id INTO pid FROM public.variants WHERE id = NEW.variant_id;
    PERFORM pg_notify('bench_stock', json_build_object(
      'productId', pid,
      'variantId', NEW.variant_id,
      'available', NEW.quantity - NEW.reserved)::text);
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS bench_notify_stock ON public.inventory;
CREATE TRIGGER bench_notify_stock AFTER UPDATE ON public.inventory
  FOR EACH ROW EXECUTE FUNCTION public.bench_notify_stock();
-- Enabled only while the Node baseline is measured (walcast-load bench toggles it),
-- so that walcast's runs do not pay for it.
ALTER TABLE public.inventory DISABLE TRIGGER bench_notify_stock;
