-- Ferry schema 0002, SQLite dialect: admin users and API tokens.
-- migrations/postgres/0002_admins_tokens.sql holds the same tables for
-- PostgreSQL; change both together, under the same number.

-- People who sign in to the admin web. A vendor admin sees every account; a
-- district admin only the one in account_id.
CREATE TABLE admins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,  -- argon2id PHC string
    role          TEXT    NOT NULL CHECK (role IN ('vendor-admin', 'district-admin')),
    account_id    INTEGER REFERENCES accounts (id),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    CHECK ((role = 'vendor-admin' AND account_id IS NULL)
        OR (role = 'district-admin' AND account_id IS NOT NULL))
);

-- Bearer tokens for the JSON API. Only the SHA-256 (hex) of the secret is kept.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('vendor-admin', 'district-admin')),
    account_id  INTEGER REFERENCES accounts (id),
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    CHECK ((role = 'vendor-admin' AND account_id IS NULL)
        OR (role = 'district-admin' AND account_id IS NOT NULL))
);
