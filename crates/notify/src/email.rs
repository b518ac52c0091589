//! E-mail over SMTP (lettre): plain to a local relay, STARTTLS
//! (`smtp://…?tls=required`) or TLS (`smtps://`), with authentication from
//! the URL's user and password. Nothing here logs the password.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::NotifyError;

/// An SMTP connection (pooled) and the sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `smtp_url`, sending as `from`.
    ///
    /// # Errors
    /// [`NotifyError::Config`] naming the key to fix.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, NotifyError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| {
                NotifyError::Config(format!(
                    "notify.smtp_url is not usable ({e}): write it like smtp://user:password@mail.example.org:587?tls=required (STARTTLS) or smtps://user:password@mail.example.org:465 (TLS)"
                ))
            })?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from.parse::<Mailbox>().map_err(|e| {
            NotifyError::Config(format!(
                "notify.from = {from:?} is not an address ({e}): write it like \"Ferry <ferry@vendor.example>\""
            ))
        })?;
        Ok(Self { transport, from })
    }

    /// Sends one plain-text message to `to`.
    ///
    /// # Errors
    /// [`NotifyError::Config`] for an address that is not valid;
    /// [`NotifyError::Smtp`] when the server refuses or cannot be reached.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), NotifyError> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| NotifyError::Config(format!("{to:?} is not an e-mail address ({e})")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| NotifyError::Config(format!("cannot build the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| NotifyError::Smtp(e.to_string()))
    }
}

/// E-mails a district admin invitation to `to` at once (not through the
/// outbox: the link is a secret and is never stored).
///
/// # Errors
/// [`NotifyError`] when the message cannot be sent; the caller shows the
/// link instead.
pub async fn send_invitation(
    mailer: &Mailer,
    to: &str,
    account: &str,
    display_name: Option<&str>,
    link: &str,
    days: i64,
) -> Result<(), NotifyError> {
    let text = crate::texts::invitation(account, display_name, link, days);
    mailer.send(to, &text.subject, &text.body).await
}
