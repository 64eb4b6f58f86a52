-- A shop whose tables and columns have none of the demo schema's names, used
-- with custom_mapping.json to check that a mapping file is enough (no code).
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE shop.item (
  item_id  bigint PRIMARY KEY,
  title    text NOT NULL,
  merchant uuid
);

CREATE TABLE shop.sku (
  sku_id   bigint PRIMARY KEY,
  item_ref bigint NOT NULL REFERENCES shop.item (item_id),
  label    text NOT NULL
);

CREATE TABLE shop.stock (
  sku_ref  bigint PRIMARY KEY REFERENCES shop.sku (sku_id),
  on_hand  integer NOT NULL,
  held     integer NOT NULL DEFAULT 0,
  alert_at integer NOT NULL DEFAULT 3
);

CREATE TABLE shop.purchase (
  purchase_id bigint PRIMARY KEY,
  ref         text NOT NULL,
  buyer       uuid NOT NULL,
  merchant    uuid,
  state       text NOT NULL DEFAULT 'new',
  amount      numeric(10,2) NOT NULL,
  parcel      text
);

INSERT INTO shop.item VALUES (1, 'Walking boots', '00000000-0000-4000-8000-0000000000aa');
INSERT INTO shop.sku VALUES (10, 1, 'EU 42'), (11, 1, 'EU 43');
INSERT INTO shop.stock VALUES (10, 20, 2, 3), (11, 4, 0, 3);
INSERT INTO shop.purchase VALUES (500, 'P-500', '00000000-0000-4000-8000-0000000000bb', '00000000-0000-4000-8000-0000000000aa', 'new', 120.00, NULL);
