//! The periodic checks: conditions that are true for a while rather than
//! things that happen at one moment — an account gone stale, logins refused
//! again and again for one reason, a key about to expire — and the daily
//! digest. Every node may run them: the store lets one event per account
//! and kind through per `notify.repeat_after`, and one digest per day.

use std::time::Duration;

use ferry_store::{Channel, NewMessage, NoticeKind, OverviewFilter, OverviewQuery, Store};

use crate::fanout::webhook_body;
use crate::{NotifySettings, ms, texts};

/// Keys expiring this soon are announced.
pub const KEY_EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Sent messages and handled events are removed after this long.
const KEEP_NOTIFICATIONS: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs every check once; failures are logged and tried again next time.
pub(crate) async fn run_checks(settings: &NotifySettings, store: &Store) {
    if let Err(e) = conditions(settings, store).await {
        tracing::warn!(error = %e, "the notification checks failed; trying again");
    }
    if let Some(at) = settings.digest_at
        && let Err(e) = digest(settings, store, at).await
    {
        tracing::warn!(error = %e, "the daily digest failed; trying again");
    }
    if let Err(e) = store.prune_notifications(ms(KEEP_NOTIFICATIONS)).await {
        tracing::warn!(error = %e, "cannot remove old notifications");
    }
}

async fn conditions(
    settings: &NotifySettings,
    store: &Store,
) -> Result<(), ferry_store::StoreError> {
    let window = ms(settings.repeat_after);
    for account in store.stale_accounts().await? {
        store
            .raise_condition(&account, NoticeKind::Stale, None, "", window)
            .await?;
    }
    for refusal in store
        .repeated_refusals(ms(settings.refused_logins_window), settings.refused_logins)
        .await?
    {
        let detail = format!("{}\t{}", refusal.count, refusal.reason);
        store
            .raise_condition(
                &refusal.account,
                NoticeKind::RefusedLogins,
                None,
                &detail,
                window,
            )
            .await?;
    }
    for key in store.expiring_keys(ms(KEY_EXPIRY_WARNING)).await? {
        store
            .raise_condition(
                &key.account,
                NoticeKind::KeyExpiring,
                Some(key.key_id),
                "",
                window,
            )
            .await?;
    }
    Ok(())
}

/// Once a day, after `at` (UTC), the overview's counts and the accounts
/// needing attention go to the vendor's addresses and webhook.
async fn digest(
    settings: &NotifySettings,
    store: &Store,
    (hour, minute): (u32, u32),
) -> Result<(), ferry_store::StoreError> {
    let now = store.now().await?;
    let minute_of_day = now.rem_euclid(86_400_000) / 60_000;
    if minute_of_day < i64::from(hour * 60 + minute) {
        return Ok(());
    }
    // One digest per day, whichever node gets here first.
    if !store
        .take_turn("*", NoticeKind::Digest, 20 * 3_600_000)
        .await?
    {
        return Ok(());
    }
    let query = OverviewQuery {
        filter: OverviewFilter::Attention,
        per_page: 100,
        ..OverviewQuery::default()
    };
    let page = store.overview(None, &query).await?;
    let text = texts::digest(&page, &settings.web_url);
    let mut messages: Vec<NewMessage> = settings
        .vendor_emails
        .iter()
        .filter(|_| settings.smtp_url.is_some())
        .map(|to| NewMessage {
            channel: Channel::Email,
            recipient: to.clone(),
            subject: text.subject.clone(),
            body: text.body.clone(),
        })
        .collect();
    if let Some(url) = &settings.webhook_url {
        let counts = serde_json::to_value(&page.counts).unwrap_or_default();
        messages.push(NewMessage {
            channel: Channel::Webhook,
            recipient: url.clone(),
            subject: text.subject.clone(),
            body: webhook_body(NoticeKind::Digest, None, &text, counts),
        });
    }
    store
        .queue_messages("*", NoticeKind::Digest, &messages, 20 * 3_600_000)
        .await?;
    Ok(())
}
