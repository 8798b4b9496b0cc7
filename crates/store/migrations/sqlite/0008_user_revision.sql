-- A user's row counts its writes: a change made from a read is written only if nobody wrote
-- the row since (optimistic concurrency), so two concurrent changes to one user cannot lose one.
-- The sign-in failure counters, the TOTP step and `enabled` are written by their own statements
-- and do not count: the whole-row write never touches them.
ALTER TABLE users ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
