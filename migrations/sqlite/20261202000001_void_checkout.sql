-- A checkout claim taken over after a stall is voided under its own token first: a row that holds
-- the token and orders nothing. The stalled transaction, if it ever reaches the database, finds
-- the token taken and orders nothing, so a cart is never ordered twice. Voided rows are never
-- shown as orders.
ALTER TABLE orders ADD COLUMN voided BOOLEAN NOT NULL DEFAULT FALSE;
