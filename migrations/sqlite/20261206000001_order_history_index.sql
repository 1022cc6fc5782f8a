-- The order history reads a user's orders that are not voided, newest first: one index for
-- exactly that. Additive, as every migration is in the release that adds it (README, "Deploying
-- a new version"): the previous release starts against it and never notices.
CREATE INDEX orders_history ON orders (user_id, id DESC) WHERE NOT voided;
