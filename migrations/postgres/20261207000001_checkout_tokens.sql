-- Every checkout token, the one place its fate is decided: a checkout inserts its token here
-- before its order (and both roll back together if the order is refused), a void inserts it
-- voided. The unique key is where the two meet: whichever commits first wins, and the other
-- waits for it. A refused checkout so writes no row in `orders`, and voided tokens are deleted
-- once no transaction can still hold them (`Database::reap_checkout_voids`), as are the voided
-- rows older releases wrote in `orders`. Additive: the previous release never reads it.
CREATE TABLE checkout_tokens (
    token TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    voided BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX checkout_tokens_voided ON checkout_tokens (created_at) WHERE voided = 1;
