-- Second factors and lockout: each user's MFA settings and sealed authenticator secrets (JSON,
-- NULL when none); the last TOTP time step accepted, so each code is accepted once; and when the
-- last failed sign-in was, so failures long past are forgotten.
ALTER TABLE users ADD COLUMN mfa TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE users ADD COLUMN last_failed_sign_in_ms INTEGER;
