//! The outbox worker: claim due messages, send each through its channel,
//! and record the outcome — sent, or tried again later with back-off (the
//! wait doubles from `notify.retry_backoff` up to an hour), or given up on
//! after [`crate::MAX_SEND_ATTEMPTS`] tries. A message is held by one node
//! at a time (a lease), so nodes sharing a database send it once.

use std::time::Duration;

use ferry_store::{Channel, OutboxMessage, Store};

use crate::email::Mailer;
use crate::{MAX_SEND_ATTEMPTS, NotifyError, NotifySettings, ms, webhook};

/// How long a node holds the messages it is sending.
const SEND_LEASE: Duration = Duration::from_secs(300);

/// Sends every due message.
pub(crate) async fn deliver_due(settings: &NotifySettings, store: &Store, mailer: Option<&Mailer>) {
    loop {
        let messages = match store
            .claim_messages(&settings.node_id, ms(SEND_LEASE), 20)
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; trying again");
                return;
            }
        };
        if messages.is_empty() {
            return;
        }
        for message in messages {
            let outcome = send(settings, mailer, &message).await;
            if let Err(e) = record(settings, store, &message, outcome).await {
                tracing::warn!(error = %e, message = message.id, "cannot record a message's delivery");
            }
        }
    }
}

async fn send(
    settings: &NotifySettings,
    mailer: Option<&Mailer>,
    message: &OutboxMessage,
) -> Result<(), NotifyError> {
    match message.channel {
        Channel::Email => match mailer {
            Some(mailer) => {
                mailer
                    .send(&message.recipient, &message.subject, &message.body)
                    .await
            }
            None => Err(NotifyError::Config(
                "notify.smtp_url is not set (or not usable) on this node".to_owned(),
            )),
        },
        Channel::Webhook => {
            webhook::post(&message.recipient, &settings.webhook_secret, &message.body).await
        }
    }
}

async fn record(
    settings: &NotifySettings,
    store: &Store,
    message: &OutboxMessage,
    outcome: Result<(), NotifyError>,
) -> Result<(), ferry_store::StoreError> {
    match outcome {
        Ok(()) => {
            tracing::info!(message = message.id, kind = %message.kind, channel = message.channel.as_str(), "notification sent");
            store.message_sent(message.id, &settings.node_id).await
        }
        Err(e) if message.attempts >= MAX_SEND_ATTEMPTS => {
            tracing::error!(message = message.id, kind = %message.kind, channel = message.channel.as_str(), attempts = message.attempts, error = %e, "notification given up on");
            store
                .message_failed(message.id, &settings.node_id, &e.to_string(), None)
                .await
        }
        Err(e) => {
            let wait = backoff(settings.retry_backoff, message.attempts);
            tracing::warn!(message = message.id, kind = %message.kind, channel = message.channel.as_str(), attempts = message.attempts, retry_in_ms = wait, error = %e, "notification not sent; trying again later");
            store
                .message_failed(message.id, &settings.node_id, &e.to_string(), Some(wait))
                .await
        }
    }
}

/// The wait after the `attempts`-th failed try: `base`, doubling, at most an hour.
fn backoff(base: Duration, attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    ms(base).saturating_mul(1_i64 << doublings).min(3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), 30_000);
        assert_eq!(backoff(base, 2), 60_000);
        assert_eq!(backoff(base, 3), 120_000);
        assert_eq!(backoff(base, 10), 3_600_000);
    }
}
