-- Ferry schema 0004, SQLite dialect: the ingest job queue.
-- migrations/postgres/0004_ingest_queue.sql holds the same change for
-- PostgreSQL; change both together, under the same number.
--
-- One row of `uploads` is one finished file. Its life:
--   received -> checking -> held | rejected | failed | handed_off -> archived
-- A node owns a row while state is `checking` (or `handed_off`, not yet
-- archived) and lease_until is in the future; after that any node retakes it.

-- A batch: finished files of one account handed over together.
CREATE TABLE ingest_batches (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    node_id    TEXT    NOT NULL
);

-- The file's identity in /inbound when it was seen (dedup of the three
-- detection sources): modification time, unix ms.
ALTER TABLE uploads ADD COLUMN file_mtime INTEGER;
-- Tries so far, the last thing that went wrong, and who holds the job until when.
ALTER TABLE uploads ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN last_error TEXT;
ALTER TABLE uploads ADD COLUMN node_id TEXT;
ALTER TABLE uploads ADD COLUMN lease_until INTEGER;
-- The batch the file travels in (files of one account, handed over together).
ALTER TABLE uploads ADD COLUMN batch_id INTEGER REFERENCES ingest_batches (id);
-- What the checks found: the name with its date suffix removed, data rows,
-- and the plain-text report also written to /reports.
ALTER TABLE uploads ADD COLUMN logical_name TEXT;
ALTER TABLE uploads ADD COLUMN rows_count INTEGER;
ALTER TABLE uploads ADD COLUMN report TEXT;
-- An admin's decision on a held file: `approved` or `rejected`, and by whom.
ALTER TABLE uploads ADD COLUMN decision TEXT;
ALTER TABLE uploads ADD COLUMN decided_by TEXT;
-- When the file was handed over (never twice for one account, logical name
-- and SHA-256), and where it was archived.
ALTER TABLE uploads ADD COLUMN handed_off_at INTEGER;
ALTER TABLE uploads ADD COLUMN archive_path TEXT;

CREATE INDEX uploads_account_name ON uploads (account_id, name);
CREATE INDEX uploads_batch ON uploads (batch_id);
CREATE INDEX uploads_logical_sha ON uploads (account_id, logical_name, sha256);
