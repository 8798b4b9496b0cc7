-- Refresh tokens a rotation replaced, kept until their family goes, so that a replaced token
-- presented again is known for what it is: with `refresh_token_reuse: revoke_family`, reuse
-- revokes the family (security checklist A10).
CREATE TABLE retired_refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    origin_jti TEXT COLLATE "C" NOT NULL REFERENCES refresh_tokens(origin_jti) ON DELETE CASCADE
);
CREATE INDEX retired_refresh_tokens_family ON retired_refresh_tokens(origin_jti);
-- A rotation replaces the family's token hash in one UPDATE; the replaced hash is kept by the
-- same statement.
CREATE FUNCTION retire_refresh_token() RETURNS trigger AS $$
BEGIN
    INSERT INTO retired_refresh_tokens (token_hash, origin_jti) VALUES (OLD.token_hash, OLD.origin_jti)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$ LANGUAGE plpgsql
-- The schema the store lives in, whatever the search path of the session that rotates.
SET search_path FROM CURRENT;
CREATE TRIGGER refresh_tokens_retire AFTER UPDATE OF token_hash ON refresh_tokens
FOR EACH ROW WHEN (OLD.token_hash IS DISTINCT FROM NEW.token_hash)
EXECUTE FUNCTION retire_refresh_token();
