//! Ferry's SFTP data plane: the SSH server districts connect to.
//!
//! Reading order: [`server`] accepts connections and runs each one, under
//! the limits of `admission` (who may connect), `penalties` (sources that
//! keep failing to log in) and `live_sessions` (who is logged in);
//! [`session`] is one SSH connection (public-key login looked up in the
//! store, SFTP-only channels), and `channel` one channel's slot and ending;
//! `database_watch` notices when the store cannot be reached; [`host_keys`]
//! loads or creates the server's identity; [`protocol`] speaks SFTP v3 on a
//! channel inside a [`jail`]; [`upload`] names the events an upload produces
//! for ingest; `budgets` holds each account's limits and usage on this node.
//!
//! This crate must never let a client see or touch anything outside its
//! account's root, and must never log key material.

mod admission;
pub mod algorithms;
mod budgets;
mod channel;
mod database_watch;
pub mod host_keys;
pub mod jail;
mod live_sessions;
mod penalties;
pub mod protocol;
pub mod server;
pub mod session;
pub mod upload;

pub use admission::MaxStartups;
pub use protocol::budget::{DescriptorBudget, Limits};
pub use server::{SftpServer, SftpSettings};
pub use upload::{UploadEvent, UploadFinished, UploadPartial};
