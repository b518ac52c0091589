-- Ferry schema 0005, SQLite dialect: per-account SFTP limits.
-- migrations/postgres/0005_account_limits.sql holds the same change for
-- PostgreSQL; change both together, under the same number.
--
-- Each column overrides one [sftp] default for the account; NULL means the
-- configuration's value applies.
-- Open files and folders across the account's sessions on one node.
ALTER TABLE accounts ADD COLUMN max_handles INTEGER;
-- The largest file the account may upload, in bytes.
ALTER TABLE accounts ADD COLUMN max_file_size INTEGER;
-- Bytes the account may hold in /inbound plus uploads in progress.
ALTER TABLE accounts ADD COLUMN quota_bytes INTEGER;
