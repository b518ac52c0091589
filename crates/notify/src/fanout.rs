//! Events into messages: gather what the texts need, pick the recipients,
//! and hand the lot to the store, which queues them (deduplicated) and marks
//! the event done in one transaction.
//!
//! Recipients: the vendor's addresses and the webhook hear about every
//! event; the account's district contacts about what they can act on (not
//! a failed hand-off, which is the vendor's import). E-mail recipients are
//! left out while no mail server is configured.

use std::time::Duration;

use ferry_store::{Channel, NewMessage, NoticeEvent, NoticeKind, Store, StoreError};
use serde_json::json;

use crate::texts::{self, Facts, Text};
use crate::{NotifySettings, ms};

/// How long a node holds events it is turning into messages.
const EVENT_LEASE: Duration = Duration::from_secs(120);

/// Turns every waiting event into messages.
pub(crate) async fn fan_out_events(
    settings: &NotifySettings,
    store: &Store,
    email_on: bool,
) -> Result<(), StoreError> {
    loop {
        let events = store
            .claim_events(&settings.node_id, ms(EVENT_LEASE), 50)
            .await?;
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            let facts = gather(settings, store, &event).await?;
            let contacts = store.contacts(&event.account).await?;
            let messages = messages_for(settings, &event, &facts, &contacts, email_on);
            if let Some(done) = store
                .fan_out(
                    &event,
                    &settings.node_id,
                    &messages,
                    ms(settings.repeat_after),
                )
                .await?
            {
                tracing::info!(event = event.id, kind = event.kind.as_str(), account = %event.account, queued = done.queued, suppressed = done.suppressed, "notification queued");
            }
        }
    }
}

/// What the texts about `event` need, read from the store.
async fn gather(
    settings: &NotifySettings,
    store: &Store,
    event: &NoticeEvent,
) -> Result<Facts, StoreError> {
    let account = store.account(&event.account).await?;
    let mut facts = Facts {
        account: event.account.clone(),
        display_name: account.as_ref().and_then(|a| a.display_name.clone()),
        expected_every_secs: account.as_ref().and_then(|a| a.expected_every_secs),
        detail: event.detail.clone(),
        web_url: settings.web_url.clone(),
        ..Facts::default()
    };
    if let Some(id) = event.upload_id {
        facts.upload = store.upload(id).await?;
    }
    if let (NoticeKind::Held, Some(upload)) = (event.kind, &facts.upload)
        && let Some(logical) = &upload.logical_name
    {
        facts.previous_rows = store
            .previous_accepted_rows(&event.account, logical, upload.id)
            .await?;
    }
    if event.kind == NoticeKind::Stale {
        facts.last_file_at = store
            .uploads(Some(&event.account), 50)
            .await?
            .iter()
            .find(|u| u.state != ferry_store::UploadState::Partial)
            .map(|u| u.received_at);
    }
    if let Some(key_id) = event.key_id {
        facts.key = store
            .keys(&event.account)
            .await?
            .into_iter()
            .find(|k| k.id == key_id)
            .map(|k| (k.fingerprint, k.comment, k.expires_at.unwrap_or_default()));
    }
    Ok(facts)
}

/// The webhook's JSON document for a message.
pub(crate) fn webhook_body(
    kind: NoticeKind,
    account: Option<&str>,
    text: &Text,
    extra: serde_json::Value,
) -> String {
    json!({
        "kind": kind.as_str(),
        "account": account,
        "subject": text.subject,
        "text": text.body,
        "facts": extra,
    })
    .to_string()
}

/// One message per recipient.
fn messages_for(
    settings: &NotifySettings,
    event: &NoticeEvent,
    facts: &Facts,
    contacts: &[String],
    email_on: bool,
) -> Vec<NewMessage> {
    let vendor = texts::vendor(event.kind, facts);
    let mut messages = Vec::new();
    if email_on {
        for to in &settings.vendor_emails {
            messages.push(NewMessage {
                channel: Channel::Email,
                recipient: to.clone(),
                subject: vendor.subject.clone(),
                body: vendor.body.clone(),
            });
        }
    }
    if let Some(url) = &settings.webhook_url {
        let extra = json!({
            "event_id": event.id,
            "upload_id": event.upload_id,
            "file": facts.upload.as_ref().map(|u| u.name.clone()),
            "key_id": event.key_id,
            "detail": event.detail,
        });
        messages.push(NewMessage {
            channel: Channel::Webhook,
            recipient: url.clone(),
            subject: vendor.subject.clone(),
            body: webhook_body(event.kind, Some(&event.account), &vendor, extra),
        });
    }
    if email_on && let Some(text) = texts::district(event.kind, facts) {
        for to in contacts {
            if settings.vendor_emails.contains(to) {
                continue;
            }
            messages.push(NewMessage {
                channel: Channel::Email,
                recipient: to.clone(),
                subject: text.subject.clone(),
                body: text.body.clone(),
            });
        }
    }
    messages
}
