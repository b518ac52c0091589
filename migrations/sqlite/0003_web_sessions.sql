-- Ferry schema 0003, SQLite dialect: sign-in sessions of the admin web.
-- migrations/postgres/0003_web_sessions.sql holds the same table for
-- PostgreSQL; change both together, under the same number.

-- One row per sign-in. The cookie holds a random secret; only its SHA-256
-- (hex) is kept here. A session ends when the admin signs out, after 30
-- minutes without a request, or 12 hours after sign-in, whichever is first.
CREATE TABLE web_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash  TEXT    NOT NULL UNIQUE,
    admin_id     INTEGER NOT NULL REFERENCES admins (id),
    client_addr  TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX web_sessions_admin ON web_sessions (admin_id);
