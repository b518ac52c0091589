//! Installed keys and their propagation (DESIGN.md, "Keys and propagation").
//!
//! This module exists so that every node decides the same way whether a key
//! may log in: states are computed from `effective_at`, `retire_at`,
//! `revoked_at` and the `expiry-time` option against the database's clock,
//! and every change runs in one transaction that holds the account's row lock
//! and writes its audit rows. It must never parse key material (that is
//! `ferry-keys`), never cache keys (logins look them up every time), and never
//! delete a key row except a pending key that is cancelled.

use std::collections::HashMap;

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::accounts::lock_account;
use crate::db::{self, sql};
use crate::error::{Result, StoreError};
use crate::events::insert_audit;
use crate::model::{Actor, AddOutcome, AddStatus, KeyRecord, KeyState, NewKey};
use crate::time::format_timestamp;

/// The most keys an account may have pending or active at once. Retiring,
/// expired and revoked keys do not count.
pub const MAX_KEYS_PER_ACCOUNT: usize = 100;

/// The key columns, aliased `k_*`, for queries over `keys k`.
macro_rules! key_cols {
    () => {
        "k.id AS k_id, k.account_id AS k_account_id, k.fingerprint AS k_fingerprint, \
         k.key_type AS k_key_type, k.bits AS k_bits, k.comment AS k_comment, \
         k.options AS k_options, k.openssh_line AS k_openssh_line, k.added_by AS k_added_by, \
         k.created_at AS k_created_at, k.effective_at AS k_effective_at, \
         k.retire_at AS k_retire_at, k.revoked_at AS k_revoked_at, \
         k.revoked_by AS k_revoked_by, k.last_used_at AS k_last_used_at"
    };
}
pub(crate) use key_cols;

/// The key in `row` (columns from `key_cols!`) with its state at `now`, or
/// `None` when an outer join found no key.
pub(crate) fn key_from_row(row: &AnyRow, now: i64) -> Result<Option<KeyRecord>> {
    let Some(id) = row.try_get::<Option<i64>, _>("k_id")? else {
        return Ok(None);
    };
    let bits: i64 = row.try_get("k_bits")?;
    let options: String = row.try_get("k_options")?;
    let expires_at = ferry_keys::KeyOptions::parse(&options)
        .ok()
        .and_then(|parsed| parsed.expiry_time())
        .map(|secs| secs.saturating_mul(1000));
    let mut key = KeyRecord {
        id,
        account_id: row.try_get("k_account_id")?,
        fingerprint: row.try_get("k_fingerprint")?,
        key_type: row.try_get("k_key_type")?,
        bits: u32::try_from(bits)
            .map_err(|_| StoreError::Corrupt(format!("key {id} has {bits} bits")))?,
        comment: row.try_get("k_comment")?,
        options,
        openssh_line: row.try_get("k_openssh_line")?,
        added_by: row.try_get("k_added_by")?,
        created_at: row.try_get("k_created_at")?,
        effective_at: row.try_get("k_effective_at")?,
        retire_at: row.try_get("k_retire_at")?,
        expires_at,
        revoked_at: row.try_get("k_revoked_at")?,
        revoked_by: row.try_get("k_revoked_by")?,
        last_used_at: row.try_get("k_last_used_at")?,
        state: KeyState::Active,
    };
    key.state = key.state_at(now);
    Ok(Some(key))
}

/// How well a row answers "can this key log in?": lower is better. A usable
/// row first, then the pending row that activates soonest, then the newest
/// expired row, then the newest revoked row.
pub(crate) fn relevance(key: &KeyRecord) -> (u8, i64) {
    match key.state {
        KeyState::Active | KeyState::Retiring => (0, -key.id),
        KeyState::Pending => (1, key.effective_at),
        KeyState::Expired => (2, -key.id),
        KeyState::Revoked => (3, -key.id),
    }
}

/// A short description of a key for audit details.
fn describe(key_type: &str, bits: u32, fingerprint: &str, comment: &str) -> String {
    if comment.is_empty() {
        format!("{fingerprint} ({key_type} {bits})")
    } else {
        format!("{fingerprint} ({key_type} {bits} {comment:?})")
    }
}

fn describe_record(key: &KeyRecord) -> String {
    describe(&key.key_type, key.bits, &key.fingerprint, &key.comment)
}

/// The account's keys that are not revoked, states at `now`.
async fn live_keys(conn: &mut AnyConnection, account_id: i64, now: i64) -> Result<Vec<KeyRecord>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        key_cols!(),
        " FROM keys k WHERE k.account_id = $1 AND k.revoked_at IS NULL ORDER BY k.id"
    ))
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .filter_map(|row| key_from_row(row, now).transpose())
        .collect()
}

/// The account's rows for `key_ref`: a key id (all digits) or a fingerprint.
async fn matching_keys(
    conn: &mut AnyConnection,
    account_id: i64,
    key_ref: &str,
    now: i64,
) -> Result<Vec<KeyRecord>> {
    let key_ref = key_ref.trim();
    let query = match key_ref.parse::<i64>() {
        Ok(id) => sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            " FROM keys k WHERE k.account_id = $1 AND k.id = $2 ORDER BY k.id"
        ))
        .bind(account_id)
        .bind(id),
        Err(_) => sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            " FROM keys k WHERE k.account_id = $1 AND k.fingerprint = $2 ORDER BY k.id"
        ))
        .bind(account_id)
        .bind(key_ref),
    };
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .filter_map(|row| key_from_row(row, now).transpose())
        .collect()
}

/// One key row by id, state at `now`.
async fn key_by_id(conn: &mut AnyConnection, id: i64, now: i64) -> Result<KeyRecord> {
    let row = sqlx::query(concat!(
        "SELECT ",
        key_cols!(),
        " FROM keys k WHERE k.id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    key_from_row(&row, now)?
        .ok_or_else(|| StoreError::Corrupt(format!("key {id} vanished inside its transaction")))
}

/// What to do for one offered key.
enum Plan<'k> {
    /// Already pending or active.
    Unchanged(KeyRecord),
    /// Retiring: clear `retire_at`.
    Reinstate(KeyRecord),
    /// Insert a new row.
    Insert(&'k NewKey),
    /// The same fingerprint appeared earlier in the input.
    Duplicate(usize),
}

/// Plans the offered keys against the account's live keys.
fn plan<'k>(existing: &[KeyRecord], offered: &'k [NewKey]) -> Vec<Plan<'k>> {
    let mut best: HashMap<&str, &KeyRecord> = HashMap::new();
    for key in existing {
        let entry = best.entry(key.fingerprint.as_str()).or_insert(key);
        if relevance(key) < relevance(entry) {
            *entry = key;
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    offered
        .iter()
        .enumerate()
        .map(|(index, new)| {
            if let Some(&first) = seen.get(new.fingerprint.as_str()) {
                return Plan::Duplicate(first);
            }
            seen.insert(new.fingerprint.as_str(), index);
            match best.get(new.fingerprint.as_str()) {
                Some(key) if matches!(key.state, KeyState::Pending | KeyState::Active) => {
                    Plan::Unchanged((*key).clone())
                }
                Some(key) if key.state == KeyState::Retiring => Plan::Reinstate((*key).clone()),
                _ => Plan::Insert(new),
            }
        })
        .collect()
}

/// Counts the keys that would be pending or active after applying `plans`.
fn counted_after(existing: &[KeyRecord], plans: &[Plan<'_>]) -> usize {
    let already = existing
        .iter()
        .filter(|key| matches!(key.state, KeyState::Pending | KeyState::Active))
        .count();
    let added = plans
        .iter()
        .filter(|plan| matches!(plan, Plan::Reinstate(_) | Plan::Insert(_)))
        .count();
    already + added
}

/// Context shared by the steps of one key-changing transaction.
struct KeyTx<'a> {
    account: &'a str,
    account_id: i64,
    now: i64,
    actor: &'a Actor,
}

impl KeyTx<'_> {
    /// Carries out `plans` (effective time `effective_at` for new rows) and
    /// returns one outcome per offered key.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        plans: Vec<Plan<'_>>,
        effective_at: i64,
    ) -> Result<Vec<AddOutcome>> {
        let mut outcomes: Vec<AddOutcome> = Vec::with_capacity(plans.len());
        for plan in plans {
            let outcome = match plan {
                Plan::Unchanged(key) => AddOutcome {
                    status: AddStatus::Unchanged,
                    key,
                },
                Plan::Duplicate(first) => AddOutcome {
                    status: AddStatus::Unchanged,
                    key: outcomes[first].key.clone(),
                },
                Plan::Reinstate(key) => {
                    sqlx::query("UPDATE keys SET retire_at = NULL WHERE id = $1")
                        .bind(key.id)
                        .execute(&mut *conn)
                        .await?;
                    let detail = format!(
                        "{} stays: it is in the new set, so it no longer retires",
                        describe_record(&key)
                    );
                    insert_audit(
                        conn,
                        self.now,
                        self.actor,
                        Some(self.account),
                        "key.reinstate",
                        &detail,
                    )
                    .await?;
                    AddOutcome {
                        status: AddStatus::Reinstated,
                        key: key_by_id(conn, key.id, self.now).await?,
                    }
                }
                Plan::Insert(new) => {
                    let row = sqlx::query(
                        "INSERT INTO keys (account_id, fingerprint, key_type, bits, comment, \
                         options, openssh_line, added_by, created_at, effective_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(self.account_id)
                    .bind(new.fingerprint.as_str())
                    .bind(new.key_type.as_str())
                    .bind(i64::from(new.bits))
                    .bind(new.comment.as_str())
                    .bind(new.options.as_str())
                    .bind(new.openssh_line.as_str())
                    .bind(self.actor.who.as_str())
                    .bind(self.now)
                    .bind(effective_at)
                    .fetch_one(&mut *conn)
                    .await?;
                    let id: i64 = row.try_get("id")?;
                    let when = if effective_at <= self.now {
                        "active now".to_owned()
                    } else {
                        format!("pending until {}", format_timestamp(effective_at))
                    };
                    let options = if new.options.is_empty() {
                        String::new()
                    } else {
                        format!(", options {}", new.options)
                    };
                    let detail = format!(
                        "added {}{options}, {when}",
                        describe(&new.key_type, new.bits, &new.fingerprint, &new.comment)
                    );
                    insert_audit(
                        conn,
                        self.now,
                        self.actor,
                        Some(self.account),
                        "key.add",
                        &detail,
                    )
                    .await?;
                    AddOutcome {
                        status: AddStatus::Added,
                        key: key_by_id(conn, id, self.now).await?,
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

impl Store {
    /// Opens a transaction that changes one account's rows (keys, contacts,
    /// invitations): the account locked first, then the database's time.
    pub(crate) async fn begin_account_change(
        &self,
        account: &str,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Any>, i64, i64)> {
        let mut tx = self.pool.begin().await?;
        // Lock first: on SQLite the write lock is taken before any read, so
        // concurrent writers wait (busy timeout) instead of failing.
        let account_id =
            lock_account(&mut tx, account)
                .await?
                .ok_or_else(|| StoreError::NoSuchAccount {
                    name: account.to_owned(),
                })?;
        let now = db::now(self.backend, &mut *tx).await?;
        Ok((tx, now, account_id))
    }

    /// Adds keys to an account. New keys become usable at `now + delay_ms`
    /// (database clock; `0` = at once). A key already pending or active is
    /// left as it is (`unchanged`, even if its options differ); a retiring key
    /// is kept (`reinstated`). All or nothing, in one transaction; one audit
    /// row per changed key. Returns one outcome per offered key, in order.
    ///
    /// # Errors
    /// [`StoreError::NoKeys`], [`StoreError::InvalidValue`] (negative delay),
    /// [`StoreError::NoSuchAccount`], [`StoreError::TooManyKeys`] when more
    /// than [`MAX_KEYS_PER_ACCOUNT`] would be pending or active.
    pub async fn add_keys(
        &self,
        account: &str,
        keys: &[NewKey],
        delay_ms: i64,
        actor: &Actor,
    ) -> Result<Vec<AddOutcome>> {
        if keys.is_empty() {
            return Err(StoreError::NoKeys {
                account: account.to_owned(),
                hint: "give at least one public key",
            });
        }
        check_delay(delay_ms)?;
        let (mut tx, now, account_id) = self.begin_account_change(account).await?;
        let existing = live_keys(&mut tx, account_id, now).await?;
        let plans = plan(&existing, keys);
        let would_have = counted_after(&existing, &plans);
        if would_have > MAX_KEYS_PER_ACCOUNT {
            return Err(StoreError::TooManyKeys {
                account: account.to_owned(),
                would_have,
                limit: MAX_KEYS_PER_ACCOUNT,
            });
        }
        let ctx = KeyTx {
            account,
            account_id,
            now,
            actor,
        };
        let outcomes = ctx
            .apply(&mut tx, plans, now.saturating_add(delay_ms))
            .await?;
        tx.commit().await?;
        log_outcomes(account, actor, &outcomes);
        Ok(outcomes)
    }

    /// Replaces the account's whole key set with `keys`. New keys become usable
    /// at `effective_at = now + delay_ms`; keys in both sets stay (a retiring
    /// one is reinstated); every other pending, active or retiring key gets
    /// `retire_at = effective_at` (or keeps an earlier one), so old and new
    /// keys overlap and a rotation never locks the district out. Returns one
    /// outcome per offered key, in order, then one `retiring` outcome per key
    /// that leaves.
    ///
    /// # Errors
    /// As [`Store::add_keys`]; the limit applies to the new set.
    pub async fn replace_keys(
        &self,
        account: &str,
        keys: &[NewKey],
        delay_ms: i64,
        actor: &Actor,
    ) -> Result<Vec<AddOutcome>> {
        if keys.is_empty() {
            return Err(StoreError::NoKeys {
                account: account.to_owned(),
                hint: "a replacement set needs at least one key; to take keys away, \
                       revoke them with `ferry key revoke ACCOUNT FINGERPRINT`",
            });
        }
        check_delay(delay_ms)?;
        let (mut tx, now, account_id) = self.begin_account_change(account).await?;
        let existing = live_keys(&mut tx, account_id, now).await?;
        let plans = plan(&existing, keys);
        let would_have = plans
            .iter()
            .filter(|plan| !matches!(plan, Plan::Duplicate(_)))
            .count();
        if would_have > MAX_KEYS_PER_ACCOUNT {
            return Err(StoreError::TooManyKeys {
                account: account.to_owned(),
                would_have,
                limit: MAX_KEYS_PER_ACCOUNT,
            });
        }
        let effective_at = now.saturating_add(delay_ms);
        let ctx = KeyTx {
            account,
            account_id,
            now,
            actor,
        };
        let mut outcomes = ctx.apply(&mut tx, plans, effective_at).await?;

        let kept: std::collections::HashSet<&str> =
            keys.iter().map(|key| key.fingerprint.as_str()).collect();
        for key in &existing {
            if kept.contains(key.fingerprint.as_str())
                || !matches!(
                    key.state,
                    KeyState::Pending | KeyState::Active | KeyState::Retiring
                )
            {
                continue;
            }
            let retire_at = key
                .retire_at
                .map_or(effective_at, |at| at.min(effective_at));
            if key.retire_at != Some(retire_at) {
                sqlx::query("UPDATE keys SET retire_at = $1 WHERE id = $2")
                    .bind(retire_at)
                    .bind(key.id)
                    .execute(&mut *tx)
                    .await?;
                let detail = format!(
                    "{} is not in the new set: retires at {}",
                    describe_record(key),
                    format_timestamp(retire_at)
                );
                insert_audit(&mut tx, now, actor, Some(account), "key.retire", &detail).await?;
            }
            outcomes.push(AddOutcome {
                status: AddStatus::Retiring,
                key: key_by_id(&mut tx, key.id, now).await?,
            });
        }
        tx.commit().await?;
        log_outcomes(account, actor, &outcomes);
        Ok(outcomes)
    }

    /// All of the account's keys, history included (revoked and expired
    /// rows), oldest first, with states at the database's `now`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`].
    pub async fn keys(&self, account: &str) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(sql(
            self.backend,
            concat!(
                "SELECT a.id AS a_id, ",
                key_cols!(),
                ", {now} AS now_ms FROM accounts a LEFT JOIN keys k ON k.account_id = a.id \
                 WHERE a.name = $1 ORDER BY k.id"
            ),
        ))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Err(StoreError::NoSuchAccount {
                name: account.to_owned(),
            });
        };
        let now: i64 = first.try_get("now_ms")?;
        rows.iter()
            .filter_map(|row| key_from_row(row, now).transpose())
            .collect()
    }

    /// The keys that may log in now (active and retiring), oldest first: what
    /// `ferry authorized-keys` prints (see [`KeyRecord::authorized_keys_line`]).
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`].
    pub async fn active_keys(&self, account: &str) -> Result<Vec<KeyRecord>> {
        let mut keys = self.keys(account).await?;
        keys.retain(|key| key.state.is_usable());
        Ok(keys)
    }

    /// Revokes a key (by id or fingerprint) at once; with a fingerprint, every
    /// unrevoked row of it. One audit row per revoked row. Revoking a key that
    /// is already revoked changes nothing and returns it as it is.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`], [`StoreError::NoSuchKey`].
    pub async fn revoke_key(
        &self,
        account: &str,
        key_ref: &str,
        actor: &Actor,
    ) -> Result<KeyRecord> {
        let (mut tx, now, account_id) = self.begin_account_change(account).await?;
        let matching = matching_keys(&mut tx, account_id, key_ref, now).await?;
        let no_such = || StoreError::NoSuchKey {
            account: account.to_owned(),
            key: key_ref.trim().to_owned(),
        };
        let to_revoke: Vec<&KeyRecord> = matching
            .iter()
            .filter(|key| key.revoked_at.is_none())
            .collect();
        let Some(latest) = to_revoke.iter().map(|key| key.id).max() else {
            // Nothing left to revoke: report the newest revoked row, if any.
            return matching
                .into_iter()
                .max_by_key(|key| key.id)
                .ok_or_else(no_such);
        };
        for key in &to_revoke {
            sqlx::query("UPDATE keys SET revoked_at = $1, revoked_by = $2 WHERE id = $3")
                .bind(now)
                .bind(actor.who.as_str())
                .bind(key.id)
                .execute(&mut *tx)
                .await?;
            let detail = format!("revoked {} (was {})", describe_record(key), key.state);
            insert_audit(&mut tx, now, actor, Some(account), "key.revoke", &detail).await?;
        }
        let revoked = key_by_id(&mut tx, latest, now).await?;
        tx.commit().await?;
        tracing::info!(account, actor = %actor.who, fingerprint = %revoked.fingerprint, "key revoked");
        Ok(revoked)
    }

    /// Cancels a pending key (by id or fingerprint): its row is removed, as
    /// if it had never been added. Audited as `key.cancel`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`], [`StoreError::NoSuchKey`],
    /// [`StoreError::KeyNotPending`].
    pub async fn cancel_pending_key(
        &self,
        account: &str,
        key_ref: &str,
        actor: &Actor,
    ) -> Result<KeyRecord> {
        let (mut tx, now, _account_id, key) =
            self.pending_key(account, key_ref, "cancelled").await?;
        sqlx::query("DELETE FROM keys WHERE id = $1")
            .bind(key.id)
            .execute(&mut *tx)
            .await?;
        let detail = format!(
            "cancelled pending {} (was to activate at {})",
            describe_record(&key),
            format_timestamp(key.effective_at)
        );
        insert_audit(&mut tx, now, actor, Some(account), "key.cancel", &detail).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Makes a pending key (by id or fingerprint) usable at once, skipping the
    /// rest of its delay. Audited as `key.activate`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchAccount`], [`StoreError::NoSuchKey`],
    /// [`StoreError::KeyNotPending`].
    pub async fn activate_key(
        &self,
        account: &str,
        key_ref: &str,
        actor: &Actor,
    ) -> Result<KeyRecord> {
        let (mut tx, now, _account_id, key) =
            self.pending_key(account, key_ref, "activated").await?;
        sqlx::query("UPDATE keys SET effective_at = $1 WHERE id = $2")
            .bind(now)
            .bind(key.id)
            .execute(&mut *tx)
            .await?;
        let detail = format!(
            "activated {} now instead of at {}",
            describe_record(&key),
            format_timestamp(key.effective_at)
        );
        insert_audit(&mut tx, now, actor, Some(account), "key.activate", &detail).await?;
        let key = key_by_id(&mut tx, key.id, now).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Opens a key-changing transaction and finds the pending row `key_ref`.
    async fn pending_key(
        &self,
        account: &str,
        key_ref: &str,
        action: &'static str,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Any>, i64, i64, KeyRecord)> {
        let (mut tx, now, account_id) = self.begin_account_change(account).await?;
        let matching = matching_keys(&mut tx, account_id, key_ref, now).await?;
        if let Some(key) = matching
            .iter()
            .filter(|key| key.state == KeyState::Pending)
            .min_by_key(|key| key.effective_at)
        {
            let key = key.clone();
            return Ok((tx, now, account_id, key));
        }
        match matching.iter().min_by_key(|key| relevance(key)) {
            Some(key) => Err(StoreError::KeyNotPending {
                account: account.to_owned(),
                key: key_ref.trim().to_owned(),
                state: key.state,
                action,
            }),
            None => Err(StoreError::NoSuchKey {
                account: account.to_owned(),
                key: key_ref.trim().to_owned(),
            }),
        }
    }
}

fn check_delay(delay_ms: i64) -> Result<()> {
    if delay_ms < 0 {
        return Err(StoreError::InvalidValue {
            what: "the propagation delay",
            rule: "zero (at once) or more milliseconds",
            got: delay_ms.to_string(),
        });
    }
    Ok(())
}

fn log_outcomes(account: &str, actor: &Actor, outcomes: &[AddOutcome]) {
    for outcome in outcomes {
        if outcome.status != AddStatus::Unchanged {
            tracing::info!(
                account,
                actor = %actor.who,
                fingerprint = %outcome.key.fingerprint,
                status = outcome.status.as_str(),
                state = outcome.key.state.as_str(),
                "key change"
            );
        }
    }
}
