-- A marketplace: stock sits on products (no variants), and one order holds
-- items of several sellers through order_items. walcast serves it with
-- testdata/marketplace/rules.json only.
CREATE TABLE public.products (
  id        bigint PRIMARY KEY,
  name      text NOT NULL,
  stock     integer NOT NULL DEFAULT 0,
  seller_id uuid NOT NULL
);
CREATE TABLE public.orders (
  id         bigint PRIMARY KEY,
  buyer_id   uuid NOT NULL,
  status     text NOT NULL DEFAULT 'pending',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.order_items (
  order_id   bigint NOT NULL REFERENCES public.orders (id) ON DELETE CASCADE,
  product_id bigint NOT NULL REFERENCES public.products (id),
  quantity   integer NOT NULL,
  price      numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
