-- Second factors: each user's MFA settings and sealed authenticator secrets (JSON, NULL when
-- none), and the last TOTP time step accepted, so each code is accepted once.
ALTER TABLE users ADD COLUMN mfa TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
