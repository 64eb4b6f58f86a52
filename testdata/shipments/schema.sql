-- walcast: demo
-- A team's own table beside the demo shop (create the demo schema first:
-- walcast migrate -demo). Its changes reach order:{order_id} through
-- testdata/shipments/rules.json, with no Go code and no trigger.
CREATE TABLE public.shipments (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id        uuid NOT NULL REFERENCES public.orders (id),
  carrier         text NOT NULL,
  tracking_number text,
  status          text NOT NULL DEFAULT 'label_created',
  updated_at      timestamptz NOT NULL DEFAULT now()
);
