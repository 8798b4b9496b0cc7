-- Failed sign-ins at names nobody has in the pool (PreventUserExistenceErrors): counted and
-- locked out as a user's are, so that five wrong guesses at a name are answered alike whether it
-- exists or not (security checklist A1). `name_key` is a keyed hash of the pool and the name,
-- never the name typed; rows are forgotten 15 minutes after their last failure.
CREATE TABLE unknown_names (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    name_key TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_ms INTEGER NOT NULL,
    locked_until_ms INTEGER,
    PRIMARY KEY (pool_id, name_key)
);
CREATE INDEX unknown_names_last_failure ON unknown_names(last_failure_ms);
