-- One order with items of two sellers: each seller's room gets one order:new
-- per transaction with all of its own items, and no item of the other
-- seller, at the commit (indexes after the transaction's changes).
INSERT INTO products (id, name, stock, seller_id) VALUES
  (1, 'Kettle', 40, '00000000-0000-4000-8000-0000000000a1'),
  (2, 'Teapot', 30, '00000000-0000-4000-8000-0000000000a1'),
  (3, 'Mug',    50, '00000000-0000-4000-8000-0000000000b2');

-- test
BEGIN;
INSERT INTO orders (id, buyer_id) VALUES (100, '00000000-0000-4000-8000-0000000000c3');
INSERT INTO order_items (order_id, product_id, quantity, price) VALUES
  (100, 1, 1, 39.90),
  (100, 3, 4, 7.50),
  (100, 2, 2, 24.00);
COMMIT;
-- A product added after start is known to the next order (the lookup
-- follows the stream).
INSERT INTO products (id, name, stock, seller_id) VALUES (4, 'Spoon', 90, '00000000-0000-4000-8000-0000000000b2');
BEGIN;
INSERT INTO orders (id, buyer_id) VALUES (101, '00000000-0000-4000-8000-0000000000c3');
INSERT INTO order_items (order_id, product_id, quantity, price) VALUES (101, 4, 6, 1.25);
COMMIT;
-- Two orders in one transaction: one event per seller and order; a stock
-- change in the same transaction goes first (its own index).
BEGIN;
INSERT INTO orders (id, buyer_id) VALUES (102, '00000000-0000-4000-8000-0000000000c3'), (103, '00000000-0000-4000-8000-0000000000c3');
INSERT INTO order_items (order_id, product_id, quantity, price) VALUES
  (102, 1, 2, 39.90),
  (103, 3, 1, 7.50),
  (102, 3, 1, 7.50),
  (103, 1, 1, 39.90);
UPDATE products SET stock = 39 WHERE id = 1;
COMMIT;
UPDATE orders SET status = 'paid' WHERE id = 100;
