-- Ferry schema 0007, PostgreSQL dialect: ingest's two audiences.
-- migrations/sqlite/0007_ingest_vendor_detail.sql holds the same change
-- for SQLite; change both together, under the same number.
--
-- `uploads.detail` and `uploads.report` are the district's: what it can act
-- on, never the vendor's URLs, commands, output or internal errors. What
-- the vendor's import answered lives in the columns below (and in
-- `last_error`), shown to vendor admins only.

-- The hand-off command's exit status (NULL: not run, killed, or timed out)
-- and the tail of what it printed (stdout, then stderr).
ALTER TABLE uploads ADD COLUMN handoff_exit_status BIGINT;
ALTER TABLE uploads ADD COLUMN handoff_output TEXT;
-- The webhook's URL without credentials, query or fragment; its last HTTP
-- status (NULL: no answer) and the tail of the answer's body.
ALTER TABLE uploads ADD COLUMN webhook_url TEXT;
ALTER TABLE uploads ADD COLUMN webhook_status BIGINT;
ALTER TABLE uploads ADD COLUMN webhook_body TEXT;

-- The file's inode when it was seen: with name, size and mtime, what makes
-- a finished file the same file whichever node or detection source saw it,
-- also after it was processed (it keeps its inode in staging and archive).
ALTER TABLE uploads ADD COLUMN file_inode BIGINT;

-- Batches of different accounts run side by side, one at a time per
-- account: "does this account have a batch in flight?" and "which files
-- wait, which leases ran out?" are asked often, over a table that only grows.
CREATE INDEX uploads_account_state ON uploads (account_id, state);
CREATE INDEX uploads_state_lease ON uploads (state, lease_until);
