-- Ferry schema 0008, SQLite dialect: operations — district contacts,
-- durable notifications (events, deduplication, outbox), district admin
-- invitations, and the indexes the overview reads through.
-- migrations/postgres/0008_operations.sql holds the same change for
-- PostgreSQL; change both together, under the same number.

-- The district's people to tell about what they can act on (a held or
-- refused file, a stale feed, refused logins, an expiring key).
CREATE TABLE account_contacts (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    email      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, email)
);

-- What happened that someone should hear about: written in the same
-- transaction as the change it reports (a held file), or by the periodic
-- check (a stale account). The notifier turns each event into messages
-- once (done_at), holding a lease while it does.
CREATE TABLE notify_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    upload_id   INTEGER REFERENCES uploads (id),
    key_id      INTEGER REFERENCES keys (id),
    detail      TEXT    NOT NULL DEFAULT '',
    done_at     INTEGER,
    node_id     TEXT,
    lease_until INTEGER
);
CREATE INDEX notify_events_waiting ON notify_events (done_at, id);

-- Deduplication: when the last message of a kind went to a recipient about
-- an account (scope = the account's name; '*' for the daily digest). The
-- recipient '' gates the periodic checks' events themselves.
CREATE TABLE notify_sent (
    scope     TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    recipient TEXT    NOT NULL,
    last_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, kind, recipient)
);

-- The outbox: one row per message and recipient, delivered by whichever
-- node claims it (lease), retried with back-off, kept after sending.
CREATE TABLE notify_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL,
    account_id  INTEGER REFERENCES accounts (id),
    kind        TEXT    NOT NULL,
    channel     TEXT    NOT NULL CHECK (channel IN ('email', 'webhook')),
    recipient   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    node_id     TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    sent_at     INTEGER
);
CREATE INDEX notify_outbox_due ON notify_outbox (state, next_at);

-- One-time links with which a district admin creates their own sign-in.
-- Only the SHA-256 (hex) of the link's secret is kept.
CREATE TABLE admin_invitations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash  TEXT    NOT NULL UNIQUE,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    email        TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    used_by      INTEGER REFERENCES admins (id),
    withdrawn_at INTEGER
);
CREATE INDEX admin_invitations_account ON admin_invitations (account_id);

-- The overview reads the last 24 hours of uploads and login attempts.
CREATE INDEX uploads_received ON uploads (received_at);
CREATE INDEX auth_attempts_at ON auth_attempts (at);
