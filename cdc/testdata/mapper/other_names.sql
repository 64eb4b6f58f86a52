-- A schema with other table and column names, mapped by
-- other_names.mapping.json: integer ids, a text status, bigint amounts, no
-- reserved or threshold column (lowStockThreshold 2), order:status off, a
-- domain-typed amount, array columns (to_jsonb makes them JSON arrays).
CREATE SCHEMA shop;
CREATE DOMAIN shop.cents AS bigint CHECK (VALUE >= 0);  -- to_jsonb encodes it like bigint
CREATE TABLE shop.items (item_id bigint PRIMARY KEY, title text NOT NULL, vendor_id bigint);
CREATE TABLE shop.skus (sku_id bigint PRIMARY KEY, item_id bigint NOT NULL REFERENCES shop.items, label text);
CREATE TABLE shop.stock (sku_id bigint PRIMARY KEY REFERENCES shop.skus, on_hand integer NOT NULL);
CREATE TABLE shop.purchases (purchase_id bigint PRIMARY KEY, reference text, customer_id text NOT NULL,
  state text NOT NULL, amount_cents shop.cents NOT NULL, carrier_ref text, placed_at timestamptz NOT NULL,
  tags text[], qtys integer[], grid numeric[], flags boolean[]);
INSERT INTO shop.items VALUES (1, 'Kettle', 77);
INSERT INTO shop.skus VALUES (10, 1, 'Steel');
INSERT INTO shop.stock VALUES (10, 9);
INSERT INTO shop.purchases VALUES (500, 'P-500', 'cust-1', 'open', 1999, NULL, '2026-02-20 00:00:00+00');
-- test
INSERT INTO shop.purchases VALUES (501, 'P-501', 'cust-2', 'open', 2500, NULL, '2026-02-20 01:00:00+00',
  ARRAY['gift', 'a,b', 'say "hi"', NULL, 'back\slash', '', 'NULL', ' pad '], ARRAY[1, NULL, 3], '{{1.50,2},{-3,0.001}}', '{}');
UPDATE shop.purchases SET state = 'sent', carrier_ref = 'C-1' WHERE purchase_id = 500;
UPDATE shop.purchases SET state = 'void' WHERE purchase_id = 501;
UPDATE shop.stock SET on_hand = 2 WHERE sku_id = 10;
