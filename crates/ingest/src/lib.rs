//! Ingest (settle, hash, validate, hand off, archive, report). Not built yet: see the ingest issue.
