-- inventory:low-stock goes to the product's own seller, once per crossing of
-- stock <= 5; product:stock-updated to the product's room on every change.
INSERT INTO products (id, name, stock, seller_id) VALUES
  (1, 'Kettle', 8, '00000000-0000-4000-8000-0000000000a1'),
  (3, 'Mug',    6, '00000000-0000-4000-8000-0000000000b2');

-- test
UPDATE products SET stock = 5 WHERE id = 1;   -- crosses: seller a1
UPDATE products SET stock = 4 WHERE id = 1;   -- still low: no alert
UPDATE products SET stock = 2 WHERE id = 3;   -- crosses: seller b2
UPDATE products SET stock = 20 WHERE id = 1;  -- back up
UPDATE products SET stock = 1 WHERE id = 1;   -- crosses again
UPDATE products SET name = 'Big Kettle' WHERE id = 1; -- no stock change: nothing
INSERT INTO products (id, name, stock, seller_id) VALUES (5, 'Saucer', 3, '00000000-0000-4000-8000-0000000000b2'); -- new and low
