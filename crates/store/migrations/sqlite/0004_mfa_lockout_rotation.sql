-- Second factors, lockout and refresh-token rotation: each user's MFA settings and sealed
-- authenticator secrets (JSON, NULL when none); the last TOTP time step accepted, so each code is
-- accepted once; when the last failed sign-in was, so failures long past are forgotten; and the
-- refresh token a rotation replaced, which works until its grace period ends.
ALTER TABLE users ADD COLUMN mfa TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE users ADD COLUMN last_failed_sign_in_ms INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN previous_hash BLOB;
ALTER TABLE refresh_tokens ADD COLUMN previous_until_ms INTEGER;
CREATE UNIQUE INDEX refresh_tokens_previous ON refresh_tokens(previous_hash);
