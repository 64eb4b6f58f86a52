-- The demo shop schema from the seeds: profiles, products, variants,
-- inventory, orders. Idempotent. REPLICA IDENTITY FULL on orders and
-- inventory gives the mapper the old row it needs for status changes,
-- low-stock crossings and metrics, and keeps unchanged TOASTed values.

CREATE TABLE IF NOT EXISTS public.profiles (
  user_id    uuid PRIMARY KEY,
  role       text NOT NULL DEFAULT 'customer',
  email      text,
  full_name  text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.products (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL,
  seller_id   uuid REFERENCES public.profiles (user_id),
  description text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.variants (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  product_id uuid NOT NULL REFERENCES public.products (id) ON DELETE CASCADE,
  name       text NOT NULL,
  sku        text UNIQUE,
  price      numeric(12,2) NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS variants_product_id_idx ON public.variants (product_id);

CREATE TABLE IF NOT EXISTS public.inventory (
  variant_id          uuid PRIMARY KEY REFERENCES public.variants (id) ON DELETE CASCADE,
  quantity            integer NOT NULL DEFAULT 0,
  reserved            integer NOT NULL DEFAULT 0,
  low_stock_threshold integer NOT NULL DEFAULT 5,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                 WHERE n.nspname = 'public' AND t.typname = 'order_status') THEN
    CREATE TYPE public.order_status AS ENUM
      ('pending', 'paid', 'processing', 'shipped', 'delivered', 'cancelled', 'refunded');
  END IF;
END
$do$;

CREATE TABLE IF NOT EXISTS public.orders (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  order_number     text NOT NULL UNIQUE,
  user_id          uuid NOT NULL,
  seller_id        uuid,
  status           public.order_status NOT NULL DEFAULT 'pending',
  total            numeric(12,2) NOT NULL DEFAULT 0,
  tracking_number  text,
  shipping_address text,
  notes            text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz
);

CREATE INDEX IF NOT EXISTS orders_user_id_idx ON public.orders (user_id);
CREATE INDEX IF NOT EXISTS orders_seller_id_idx ON public.orders (seller_id);

-- Only when not set yet: ALTER TABLE takes an ACCESS EXCLUSIVE lock.
DO $do$
BEGIN
  IF (SELECT relreplident FROM pg_class WHERE oid = 'public.orders'::regclass) <> 'f' THEN
    ALTER TABLE public.orders REPLICA IDENTITY FULL;
  END IF;
  IF (SELECT relreplident FROM pg_class WHERE oid = 'public.inventory'::regclass) <> 'f' THEN
    ALTER TABLE public.inventory REPLICA IDENTITY FULL;
  END IF;
END
$do$;
