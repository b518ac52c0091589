-- Ferry schema 0006, PostgreSQL dialect: bounded pre-login records and per-source
-- penalties. migrations/sqlite/0006_prelogin_defences.sql holds the same
-- change for SQLite; change both together, under the same number.

-- Repeated refusals of one user name from one source (an IPv4 address or an
-- IPv6 /64) with the same reason become one row with a count: `at` is the
-- first of them, `last_at` the latest, `repeat_count` how many. Rows whose
-- `last_at` is older than sftp.attempts_retention are deleted.
ALTER TABLE auth_attempts ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_attempts ADD COLUMN repeat_count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE auth_attempts ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0;
UPDATE auth_attempts SET last_at = at;
CREATE INDEX auth_attempts_repeat ON auth_attempts (account_name, source, last_at);
CREATE INDEX auth_attempts_last_at ON auth_attempts (last_at);

-- Sources an SFTP node refuses for a while (per-source penalties). Each node
-- keeps its penalties in memory and writes a row here when one becomes
-- active, so `ferry penalties list` and the admin web can show them; a lift
-- sets lifted_at, and the node that owns the row drops the penalty at its
-- next poll and deletes the row.
CREATE TABLE sftp_penalties (
    node      TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    since     BIGINT NOT NULL,
    until     BIGINT NOT NULL,
    lifted_at BIGINT,
    PRIMARY KEY (node, source)
);
