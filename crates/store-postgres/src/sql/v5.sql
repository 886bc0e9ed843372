-- Schema version 5: rate limits, shared by every node (see `limits.rs` and
-- `durable_store::limits`). One row per limit key (a keyed hash, never a phone number or an
-- address in clear): the GCRA theoretical arrival time in Unix microseconds, and the reference
-- of its last charge (e.g. the verification an SMS reply answers). Charges lock the rows of a
-- start in key order, in the transaction that creates the instance.

CREATE TABLE __SCHEMA__.limits (
    key text COLLATE "C" PRIMARY KEY,
    tat bigint NOT NULL,
    reference text
);
CREATE INDEX limits_tat ON __SCHEMA__.limits (tat);
