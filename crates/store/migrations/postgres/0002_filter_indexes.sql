-- Filtered ListUsers pages are ordered by username: index the filter column with it, so an
-- equality filter reads only the matching users, in order.
DROP INDEX users_by_email;
DROP INDEX users_by_phone;
CREATE INDEX users_by_email ON users(pool_id, email, username_key);
CREATE INDEX users_by_phone ON users(pool_id, phone_number, username_key);
