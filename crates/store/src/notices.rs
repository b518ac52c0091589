//! Notifications, durably: events, deduplication and the outbox.
//!
//! This module exists so that a notification survives a crash and is sent
//! once, by one node, whatever happens between the thing that happened and
//! the message leaving:
//! - an *event* (`notify_events`) is written in the same transaction as the
//!   change it reports (a file held, refused, or given up on), or by the
//!   periodic check through a gate that lets one event per account and kind
//!   through per window, whichever node checks;
//! - the notifier claims events with a lease (like the ingest queue) and
//!   turns each into messages in one transaction ([`Store::fan_out`]),
//!   letting through at most one message per account, kind and recipient
//!   per window (`notify_sent`);
//! - messages wait in the *outbox* (`notify_outbox`), where a node claims
//!   them with a lease, sends, and marks them sent, or retries them later.
//!
//! On PostgreSQL claims lock rows with `FOR UPDATE SKIP LOCKED`, so two
//! nodes never take the same event or message. Nothing here renders a text
//! or talks to a mail server: that is `ferry-notify`.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db;
use crate::error::{Result, StoreError};
use crate::time::serialize_ms;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A file was held for review by the roster guard.
    Held,
    /// A file was refused (by its checks or by an admin).
    Rejected,
    /// A hand-off failed and will not be retried automatically.
    HandoffFailed,
    /// No file within the account's `expected_every`.
    Stale,
    /// Logins refused again and again for one reason.
    RefusedLogins,
    /// A key expires within a week.
    KeyExpiring,
    /// The daily digest (vendor only; no event).
    Digest,
}

impl NoticeKind {
    /// Every kind.
    pub const ALL: [NoticeKind; 7] = [
        Self::Held,
        Self::Rejected,
        Self::HandoffFailed,
        Self::Stale,
        Self::RefusedLogins,
        Self::KeyExpiring,
        Self::Digest,
    ];

    /// The name as stored and sent in webhooks.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Rejected => "rejected",
            Self::HandoffFailed => "handoff_failed",
            Self::Stale => "stale",
            Self::RefusedLogins => "refused_logins",
            Self::KeyExpiring => "key_expiring",
            Self::Digest => "digest",
        }
    }

    /// The kind named `text`, if any.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// An event claimed for turning into messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeEvent {
    /// Database id.
    pub id: i64,
    /// When it happened.
    #[serde(serialize_with = "serialize_ms")]
    pub at: i64,
    /// What happened.
    pub kind: NoticeKind,
    /// The account's name.
    pub account: String,
    /// The upload concerned (held, rejected, hand-off failed).
    pub upload_id: Option<i64>,
    /// The key concerned (key expiring).
    pub key_id: Option<i64>,
    /// Facts the message needs (the refusal reason and count…).
    pub detail: String,
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// E-mail over SMTP; the recipient is an address.
    Email,
    /// The signed notification webhook; the recipient is its URL.
    Webhook,
}

impl Channel {
    /// `email` or `webhook`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// How.
    pub channel: Channel,
    /// To whom (an address, or the webhook's URL).
    pub recipient: String,
    /// The subject line.
    pub subject: String,
    /// The text (e-mail) or the JSON document (webhook).
    pub body: String,
}

/// What [`Store::fan_out`] and [`Store::queue_messages`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queued {
    /// Messages put in the outbox.
    pub queued: usize,
    /// Messages left out: the same account, kind and recipient had one
    /// within the window.
    pub suppressed: usize,
}

/// A message claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Database id.
    pub id: i64,
    /// What it is about.
    pub kind: String,
    /// How.
    pub channel: Channel,
    /// To whom.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Text or JSON.
    pub body: String,
    /// Tries so far, this one included.
    pub attempts: i64,
}

/// Outbox rows by state, for the overview and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Waiting to be sent (or retried).
    pub pending: i64,
    /// Sent.
    pub sent: i64,
    /// Given up on.
    pub failed: i64,
}

/// Writes an event inside the caller's transaction.
pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    kind: NoticeKind,
    account_id: i64,
    upload_id: Option<i64>,
    key_id: Option<i64>,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notify_events (at, kind, account_id, upload_id, key_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now)
    .bind(kind.as_str())
    .bind(account_id)
    .bind(upload_id)
    .bind(key_id)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Lets one message (or event, with recipient `''`) of `kind` about `scope`
/// to `recipient` through per `window_ms`: true when it may go, and then
/// the window starts again at `now`.
async fn pass_gate(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    scope: &str,
    kind: NoticeKind,
    recipient: &str,
    window_ms: i64,
) -> Result<bool> {
    let row = sqlx::query(
        "INSERT INTO notify_sent (scope, kind, recipient, last_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (scope, kind, recipient) DO UPDATE SET last_at = excluded.last_at \
         WHERE notify_sent.last_at <= excluded.last_at - $5 RETURNING last_at",
    )
    .bind(scope)
    .bind(kind.as_str())
    .bind(recipient)
    .bind(now)
    .bind(window_ms)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// Queues `messages` about `scope` (gated per recipient) in the caller's transaction.
async fn queue_in(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    scope: &str,
    account_id: Option<i64>,
    kind: NoticeKind,
    messages: &[NewMessage],
    window_ms: i64,
) -> Result<Queued> {
    let mut done = Queued::default();
    for message in messages {
        if !pass_gate(conn, now, scope, kind, &message.recipient, window_ms).await? {
            done.suppressed += 1;
            continue;
        }
        sqlx::query(
            "INSERT INTO notify_outbox (created_at, account_id, kind, channel, recipient, subject, \
             body, next_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $1)",
        )
        .bind(now)
        .bind(account_id)
        .bind(kind.as_str())
        .bind(message.channel.as_str())
        .bind(&message.recipient)
        .bind(&message.subject)
        .bind(&message.body)
        .execute(&mut *conn)
        .await?;
        done.queued += 1;
    }
    Ok(done)
}

fn event_from_row(row: &AnyRow) -> Result<NoticeEvent> {
    let kind: String = row.try_get("kind")?;
    Ok(NoticeEvent {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        kind: NoticeKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("notification kind `{kind}`")))?,
        account: row.try_get("account")?,
        upload_id: row.try_get("upload_id")?,
        key_id: row.try_get("key_id")?,
        detail: row.try_get("detail")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<OutboxMessage> {
    let channel: String = row.try_get("channel")?;
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        channel: match channel.as_str() {
            "email" => Channel::Email,
            "webhook" => Channel::Webhook,
            other => return Err(StoreError::Corrupt(format!("outbox channel `{other}`"))),
        },
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        attempts: row.try_get("attempts")?,
    })
}

/// A key that expires soon ([`Store::expiring_keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiringKey {
    /// The account's name.
    pub account: String,
    /// The key's id.
    pub key_id: i64,
    /// When its `expiry-time` passes.
    #[serde(serialize_with = "serialize_ms")]
    pub expires_at: i64,
}

impl Store {
    /// Lets one turn at `kind` about `scope` through per `window_ms`, across
    /// every node: true for the caller that gets it (the daily digest).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn take_turn(&self, scope: &str, kind: NoticeKind, window_ms: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let passed = pass_gate(&mut tx, now, scope, kind, "", window_ms).await?;
        tx.commit().await?;
        Ok(passed)
    }

    /// Keys that can log in (or will) and whose `expiry-time` passes within
    /// `within_ms` from now.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn expiring_keys(&self, within_ms: i64) -> Result<Vec<ExpiringKey>> {
        let now = self.now().await?;
        let rows = sqlx::query(
            "SELECT a.name, k.id, k.options FROM keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.revoked_at IS NULL AND (k.retire_at IS NULL OR k.retire_at > $1) \
             AND k.options LIKE '%expiry-time%' ORDER BY k.id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let options: String = row.try_get("options")?;
            let Some(expires_at) = ferry_keys::KeyOptions::parse(&options)
                .ok()
                .and_then(|o| o.expiry_time())
                .map(|secs| secs.saturating_mul(1000))
            else {
                continue;
            };
            if expires_at > now && expires_at <= now + within_ms {
                out.push(ExpiringKey {
                    account: row.try_get("name")?,
                    key_id: row.try_get("id")?,
                    expires_at,
                });
            }
        }
        Ok(out)
    }

    /// Raises a condition the periodic check found (stale, refused logins,
    /// key expiring) as an event, unless one of the same kind about the
    /// same account was raised within `window_ms` (by any node). True when
    /// the event was written.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`]; [`StoreError::Database`].
    pub async fn raise_condition(
        &self,
        account: &str,
        kind: NoticeKind,
        key_id: Option<i64>,
        detail: &str,
        window_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query("SELECT id FROM accounts WHERE name = $1")
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NoSuchAccount {
                name: account.to_owned(),
            })?;
        let account_id: i64 = row.try_get("id")?;
        if !pass_gate(&mut tx, now, account, kind, "", window_ms).await? {
            return Ok(false);
        }
        insert_event(&mut tx, now, kind, account_id, None, key_id, detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` events not yet turned into messages, for `node`,
    /// leased for `lease_ms` (events of a node that died are taken up again
    /// when the lease ends). Oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn claim_events(
        &self,
        node: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<NoticeEvent>> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let claimed = sqlx::query(db::sql(
            self.backend,
            "UPDATE notify_events SET node_id = $1, lease_until = $2 + $3 \
             WHERE id IN (SELECT id FROM notify_events WHERE done_at IS NULL \
                 AND (lease_until IS NULL OR lease_until < $2) ORDER BY id LIMIT $4 {skip_locked}) \
             RETURNING id",
        ))
        .bind(node)
        .bind(now)
        .bind(lease_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut events = Vec::with_capacity(claimed.len());
        for row in claimed {
            let id: i64 = row.try_get("id")?;
            let row = sqlx::query(
                "SELECT e.id, e.at, e.kind, a.name AS account, e.upload_id, e.key_id, e.detail \
                 FROM notify_events e JOIN accounts a ON a.id = e.account_id WHERE e.id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            events.push(event_from_row(&row)?);
        }
        tx.commit().await?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Turns a claimed event into `messages`, in one transaction: each
    /// message goes to the outbox unless the account, kind and recipient had
    /// one within `window_ms`, and the event is marked done. `None` when
    /// `node` no longer holds the event (another node did it).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn fan_out(
        &self,
        event: &NoticeEvent,
        node: &str,
        messages: &[NewMessage],
        window_ms: i64,
    ) -> Result<Option<Queued>> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let row = sqlx::query(
            "UPDATE notify_events SET done_at = $3, lease_until = NULL \
             WHERE id = $1 AND node_id = $2 AND done_at IS NULL RETURNING account_id",
        )
        .bind(event.id)
        .bind(node)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let account_id: i64 = row.try_get("account_id")?;
        let done = queue_in(
            &mut tx,
            now,
            &event.account,
            Some(account_id),
            event.kind,
            messages,
            window_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(done))
    }

    /// Queues messages that belong to no event (the daily digest), gated
    /// per `scope`, kind and recipient like [`Store::fan_out`].
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn queue_messages(
        &self,
        scope: &str,
        kind: NoticeKind,
        messages: &[NewMessage],
        window_ms: i64,
    ) -> Result<Queued> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let done = queue_in(&mut tx, now, scope, None, kind, messages, window_ms).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Claims up to `limit` messages that are due, for `node`, leased for
    /// `lease_ms`; counts the try. Oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn claim_messages(
        &self,
        node: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let mut tx = self.pool.begin().await?;
        let now = db::now(self.backend, &mut *tx).await?;
        let rows = sqlx::query(db::sql(
            self.backend,
            "UPDATE notify_outbox SET node_id = $1, lease_until = $2 + $3, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM notify_outbox WHERE state = 'pending' AND next_at <= $2 \
                 AND (lease_until IS NULL OR lease_until < $2) ORDER BY id LIMIT $4 {skip_locked}) \
             RETURNING id, kind, channel, recipient, subject, body, attempts",
        ))
        .bind(node)
        .bind(now)
        .bind(lease_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>>>()?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    /// Marks a message `node` holds as sent.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn message_sent(&self, id: i64, node: &str) -> Result<()> {
        sqlx::query(db::sql(
            self.backend,
            "UPDATE notify_outbox SET state = 'sent', sent_at = {now}, lease_until = NULL, \
             last_error = NULL WHERE id = $1 AND node_id = $2",
        ))
        .bind(id)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that sending failed with `error`: tried again in `retry_in_ms`,
    /// or given up on (`None`).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn message_failed(
        &self,
        id: i64,
        node: &str,
        error: &str,
        retry_in_ms: Option<i64>,
    ) -> Result<()> {
        let (state, delay) = match retry_in_ms {
            Some(ms) => ("pending", ms),
            None => ("failed", 0),
        };
        sqlx::query(db::sql(
            self.backend,
            "UPDATE notify_outbox SET state = $3, last_error = $4, next_at = {now} + $5, \
             lease_until = NULL WHERE id = $1 AND node_id = $2",
        ))
        .bind(id)
        .bind(node)
        .bind(state)
        .bind(error)
        .bind(delay)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Outbox rows by state.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM notify_outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            match state.as_str() {
                "pending" => counts.pending = n,
                "sent" => counts.sent = n,
                _ => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// Removes events turned into messages and messages sent or given up
    /// on, older than `age_ms`. Returns the rows removed.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn prune_notifications(&self, age_ms: i64) -> Result<u64> {
        let events = sqlx::query(db::sql(
            self.backend,
            "DELETE FROM notify_events WHERE done_at IS NOT NULL AND done_at < {now} - $1",
        ))
        .bind(age_ms)
        .execute(&self.pool)
        .await?;
        let messages = sqlx::query(db::sql(
            self.backend,
            "DELETE FROM notify_outbox WHERE state <> 'pending' AND created_at < {now} - $1",
        ))
        .bind(age_ms)
        .execute(&self.pool)
        .await?;
        Ok(events.rows_affected() + messages.rows_affected())
    }
}
