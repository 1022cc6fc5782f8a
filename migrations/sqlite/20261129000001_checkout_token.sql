-- A checkout is placed at most once: every attempt carries a token that is unique among orders,
-- so a double click, a retry after a dead replica, or ten requests racing over three replicas
-- all land on the one order that token placed.
ALTER TABLE orders ADD COLUMN checkout_token TEXT;
CREATE UNIQUE INDEX orders_checkout_token ON orders (checkout_token);
