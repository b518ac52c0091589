//! ferry-notify: trouble that finds the right person.
//!
//! Events are written by the store in the same transaction as what they
//! report (a file held or refused, a hand-off given up on) or raised by the
//! periodic checks here (a stale account, refused logins, an expiring key).
//! This crate turns them into messages for the right people, deduplicated,
//! and delivers them through the store's outbox, durably and once:
//! - `texts`: what each message says, in the vendor's and in the district's words;
//! - `fanout`: events → one message per recipient (vendor addresses and
//!   webhook for everything, district contacts for what they can act on);
//! - `checks`: the periodic checks and the optional daily digest;
//! - `deliver`: the outbox worker (claim, send, retry with back-off);
//! - `email`, `webhook`: the two channels.
//!
//! [`run`] runs it all until a stop signal; [`send_invitation`] e-mails a
//! district admin invitation at once (its link is a secret, so it never
//! waits in the outbox).

mod checks;
mod deliver;
mod email;
mod fanout;
pub mod texts;
mod webhook;

use std::future::Future;
use std::time::Duration;

use ferry_store::Store;

pub use email::{Mailer, send_invitation};
pub use webhook::signature;

/// Everything the notifier needs from the configuration (`[notify]`).
#[derive(Clone)]
pub struct NotifySettings {
    /// `smtp://[user:pass@]host:port[?tls=required]` or `smtps://…`; `None`: no e-mail.
    pub smtp_url: Option<String>,
    /// The sender, `Ferry <ferry@vendor.example>`.
    pub from: String,
    /// The vendor's operations addresses: every event.
    pub vendor_emails: Vec<String>,
    /// The notification webhook: every event; `None`: none.
    pub webhook_url: Option<String>,
    /// The webhook's HMAC key.
    pub webhook_secret: String,
    /// At most one message per account, kind and recipient this often.
    pub repeat_after: Duration,
    /// The daily digest's time (UTC hours, minutes); `None`: no digest.
    pub digest_at: Option<(u32, u32)>,
    /// This many refused logins for one account with one reason…
    pub refused_logins: i64,
    /// …within this long raise a notification.
    pub refused_logins_window: Duration,
    /// How often events and the outbox are looked at.
    pub poll_interval: Duration,
    /// How often the periodic checks run.
    pub check_interval: Duration,
    /// The first retry's wait; it doubles with each try, up to an hour.
    pub retry_backoff: Duration,
    /// This node's name (leases).
    pub node_id: String,
    /// The admin web's address, for links (`https://sftp.example.org`).
    pub web_url: String,
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifySettings")
            .field("smtp", &self.smtp_url.as_ref().map(|_| "set"))
            .field("from", &self.from)
            .field("vendor_emails", &self.vendor_emails)
            .field("webhook", &self.webhook_url.as_ref().map(|_| "set"))
            .field("repeat_after", &self.repeat_after)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The SMTP URL or an address is not usable.
    #[error("{0}")]
    Config(String),
    /// The mail server refused or could not be reached.
    #[error(
        "sending e-mail failed: {0}; check notify.smtp_url and that the mail server is reachable"
    )]
    Smtp(String),
    /// The webhook answered with an error or could not be reached.
    #[error("the notification webhook failed: {0}; check notify.webhook_url and the receiver")]
    Webhook(String),
}

/// A message is given up on after this many tries.
pub const MAX_SEND_ATTEMPTS: i64 = 10;

/// Runs the notifier until `stop` completes: events into messages, the
/// periodic checks, and delivery. Safe to run on every node.
pub async fn run(settings: NotifySettings, store: Store, stop: impl Future<Output = ()> + Send) {
    let mailer = match &settings.smtp_url {
        Some(url) => match Mailer::new(url, &settings.from) {
            Ok(mailer) => Some(mailer),
            Err(e) => {
                tracing::error!(error = %e, "no e-mail is sent");
                None
            }
        },
        None => None,
    };
    tracing::info!(node = %settings.node_id, email = mailer.is_some(), webhook = settings.webhook_url.is_some(), "notifications running");
    let work = async {
        let mut poll = tokio::time::interval(settings.poll_interval);
        let mut check = tokio::time::interval(settings.check_interval);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    if let Err(e) = fanout::fan_out_events(&settings, &store, mailer.is_some()).await {
                        tracing::warn!(error = %e, "cannot turn events into messages; trying again");
                    }
                    deliver::deliver_due(&settings, &store, mailer.as_ref()).await;
                }
                _ = check.tick() => checks::run_checks(&settings, &store).await,
            }
        }
    };
    tokio::select! {
        () = stop => {}
        () = work => {}
    }
    tracing::info!("notifications stopped");
}

/// Milliseconds of a duration, saturating.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
