-- Ferry schema 0001, SQLite dialect.
-- migrations/postgres/0001_initial.sql holds the same tables, columns and
-- meanings for PostgreSQL; change both together, under the same number.
-- Every timestamp is unix milliseconds (UTC) read from the database clock.
-- Booleans are declared BOOLEAN (stored 0/1 by SQLite); the store reads them
-- through `CASE WHEN col THEN 1 ELSE 0 END` so both dialects decode alike.

-- One SFTP account per district.
CREATE TABLE accounts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    display_name        TEXT,
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    legacy_clients      BOOLEAN NOT NULL DEFAULT FALSE,
    expected_every_secs INTEGER,
    created_at          INTEGER NOT NULL
);

-- Installed public keys, with their propagation fields. Rows are kept after
-- revocation and expiry as history; a key's state is computed from
-- effective_at, retire_at and revoked_at against the database clock.
CREATE TABLE keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    fingerprint  TEXT    NOT NULL,
    key_type     TEXT    NOT NULL,
    bits         INTEGER NOT NULL,
    comment      TEXT    NOT NULL DEFAULT '',
    options      TEXT    NOT NULL DEFAULT '',
    openssh_line TEXT    NOT NULL,
    added_by     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    effective_at INTEGER NOT NULL,
    retire_at    INTEGER,
    revoked_at   INTEGER,
    revoked_by   TEXT,
    last_used_at INTEGER
);
CREATE INDEX keys_account_fingerprint ON keys (account_id, fingerprint);
CREATE INDEX keys_revoked_at ON keys (revoked_at);

-- Every login attempt, accepted or refused, with the reason.
CREATE TABLE auth_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    account_name  TEXT    NOT NULL,
    client_addr   TEXT    NOT NULL,
    client_banner TEXT    NOT NULL DEFAULT '',
    fingerprint   TEXT,
    key_type      TEXT,
    result        TEXT    NOT NULL CHECK (result IN ('accepted', 'refused')),
    reason        TEXT    NOT NULL
);
CREATE INDEX auth_attempts_account ON auth_attempts (account_name, id);

-- Append-only audit log: the triggers refuse UPDATE and DELETE.
CREATE TABLE audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    account_name TEXT,
    action       TEXT    NOT NULL,
    detail       TEXT    NOT NULL,
    client_addr  TEXT
);
CREATE INDEX audit_account ON audit (account_name, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only: UPDATE is not allowed');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only: DELETE is not allowed');
END;

-- Uploads: the ingest job queue. Ingest adds its columns in later migrations.
CREATE TABLE uploads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    name        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT,
    state       TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    detail      TEXT
);
CREATE INDEX uploads_account ON uploads (account_id, id);
CREATE INDEX uploads_state ON uploads (state);
