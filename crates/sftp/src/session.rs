//! One SSH connection from a district: login, then SFTP-only channels.
//!
//! Authentication is by public key only and is looked up in the store at
//! every attempt, so every node agrees on which keys work without a cache to
//! invalidate. Every attempt, accepted or refused, is recorded with its
//! reason, so an admin can answer "why can't we connect?". After login the
//! only thing a channel may do is run the `sftp` subsystem: shells and
//! commands get one explanatory line and are closed, never left hanging.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferry_keys::KeyOptions;
use ferry_store::{
    AuthResult, LoginLookup, LoginVerdict, MAX_ACCOUNT_NAME_BYTES, NewAuthAttempt, Recorded,
    StoreError,
};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, Pty};
use tokio::sync::mpsc;

use crate::admission::{AuthNote, ConnectionGuard};
use crate::channel::{ChannelSlot, ChannelSlots, NoSlot};
pub use crate::channel::{MAX_CHANNELS_PER_CONNECTION, MAX_CHANNELS_PER_CONNECTION_LIFETIME};
use crate::database_watch::{Caller, DATABASE_DOWN_BANNER};
use crate::jail::Jail;
use crate::server::Shared;
use crate::upload::UploadEvent;

/// How long a login waits for the database to look its key up. Past it the
/// login is refused (the database is down or overloaded), well before the
/// client gives up, instead of waiting for the pool's acquire timeout.
pub const LOGIN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The line a client that asks for a shell or a command gets.
pub const SFTP_ONLY_MESSAGE: &str =
    "This account accepts SFTP only. Connect with an SFTP client such as WinSCP or sftp.";

/// The russh handler for one connection.
pub struct SshSession {
    shared: Arc<Shared>,
    peer: SocketAddr,
    guard: ConnectionGuard,
    /// The account, once a key was accepted.
    account: Option<String>,
    /// Channels opened but not yet given a subsystem, with their slots. A
    /// channel running SFTP holds its slot in its task instead.
    channels: HashMap<ChannelId, (Channel<Msg>, ChannelSlot)>,
    /// Session channels open on this connection (OpenSSH's MaxSessions).
    slots: ChannelSlots,
}

impl SshSession {
    pub(crate) fn new(shared: Arc<Shared>, peer: SocketAddr, guard: ConnectionGuard) -> Self {
        SshSession {
            shared,
            peer,
            guard,
            account: None,
            channels: HashMap::new(),
            slots: ChannelSlots::new(),
        }
    }

    /// Judges one attempt and records it. `verified` is true once russh has
    /// checked the signature (a real login, not a probe): only then is the
    /// attempt recorded as accepted and a session slot taken.
    async fn attempt(
        &mut self,
        user: &str,
        key: &PublicKey,
        algorithm: &Algorithm,
        verified: bool,
    ) -> Result<Auth, russh::Error> {
        if user.len() > MAX_ACCOUNT_NAME_BYTES {
            return self.refuse_long_user_name(user, Some(key)).await;
        }
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let lookup = tokio::time::timeout(
            LOGIN_LOOKUP_TIMEOUT,
            self.shared.store.login_candidate(user, &fingerprint),
        )
        .await;
        let lookup = match lookup {
            Ok(Ok(lookup)) => lookup,
            Ok(Err(StoreError::Database(e))) => return Ok(self.refuse_unreachable(user, &e)),
            Err(_) => {
                let why = format!("no answer within {LOGIN_LOOKUP_TIMEOUT:?}");
                return Ok(self.refuse_unreachable(user, &why));
            }
            Ok(Err(e)) => {
                tracing::error!(account = user, error = %e, "login lookup failed; login refused");
                self.guard.note(AuthNote::ServerSide);
                return Ok(Auth::reject());
            }
        };
        self.shared.database.answered();
        if lookup.account.is_none() {
            self.guard.note(AuthNote::UnknownUser);
        }
        let mut verdict = judge(&lookup, algorithm, self.peer.ip());
        if verdict.is_ok() && !verified {
            return Ok(Auth::Accept);
        }
        if verdict.is_ok() && !self.guard.reserve_session(user, &fingerprint, self.peer) {
            self.guard.note(AuthNote::ServerSide);
            verdict = Err(format!(
                "too many sessions: the account already has {} open; close one or raise [sftp] max_sessions_per_account",
                self.shared.settings.max_sessions_per_account
            ));
        }
        let (result, reason) = match &verdict {
            Ok(_) => (AuthResult::Accepted, signature_note(algorithm)),
            Err(reason) => (AuthResult::Refused, reason.clone()),
        };
        let attempt = self.new_attempt(user, Some(key), result, &reason);
        let recorded = self.record(&attempt).await;
        metrics::counter!("ferry_sftp_logins_total", "result" => result.as_str()).increment(1);
        match verdict {
            Ok(key_id) => {
                if let Err(e) = self.shared.store.mark_key_used(key_id).await {
                    tracing::warn!(error = %e, "could not update the key's last use");
                }
                tracing::info!(account = user, peer = %self.peer, %fingerprint, "login accepted");
                self.account = Some(user.to_owned());
                Ok(Auth::Accept)
            }
            Err(_) => {
                self.guard.note(AuthNote::Refused);
                self.log_refusal(&attempt, recorded);
                Ok(Auth::reject())
            }
        }
    }

    /// Refuses a login whose key could not be looked up because the
    /// database does not answer. The attempt is not recorded (that would
    /// wait on the database again); the outage is logged once by
    /// [`crate::database_watch`], not once per login.
    fn refuse_unreachable(&mut self, user: &str, why: &dyn std::fmt::Display) -> Auth {
        self.guard.note(AuthNote::ServerSide);
        self.shared.database.failed(Caller::Login, why);
        metrics::counter!("ferry_sftp_logins_total", "result" => "refused").increment(1);
        tracing::debug!(account = user, peer = %self.peer, "login refused: the database does not answer");
        Auth::reject()
    }

    /// A user name longer than any account's cannot log in: refused without
    /// asking the database, recorded shortened and escaped, and the
    /// connection is closed at once.
    async fn refuse_long_user_name(
        &mut self,
        user: &str,
        key: Option<&PublicKey>,
    ) -> Result<Auth, russh::Error> {
        let reason = format!(
            "user name of {} bytes refused: account names are at most {MAX_ACCOUNT_NAME_BYTES}",
            user.len()
        );
        let attempt = self.new_attempt(user, key, AuthResult::Refused, &reason);
        let recorded = self.record(&attempt).await;
        metrics::counter!("ferry_sftp_logins_total", "result" => "refused").increment(1);
        self.guard.note(AuthNote::Refused);
        self.log_refusal(&attempt, recorded);
        Err(russh::Error::Disconnect)
    }

    /// Refuses a password or keyboard-interactive login (public keys only)
    /// and records it, so an admin sees why a misconfigured client fails.
    async fn refuse_method(&mut self, user: &str, method: &str) -> Result<Auth, russh::Error> {
        if user.len() > MAX_ACCOUNT_NAME_BYTES {
            return self.refuse_long_user_name(user, None).await;
        }
        let reason = format!(
            "{method} login refused: this server accepts public keys only; install the client's public key"
        );
        let attempt = self.new_attempt(user, None, AuthResult::Refused, &reason);
        let recorded = self.record(&attempt).await;
        metrics::counter!("ferry_sftp_logins_total", "result" => "refused").increment(1);
        self.guard.note(AuthNote::Refused);
        self.log_refusal(&attempt, recorded);
        Ok(Auth::reject())
    }

    /// The record of one attempt; the user name shortened and escaped.
    fn new_attempt(
        &self,
        user: &str,
        key: Option<&PublicKey>,
        result: AuthResult,
        reason: &str,
    ) -> NewAuthAttempt {
        NewAuthAttempt {
            account_name: printable_user_name(user),
            client_addr: self.peer.to_string(),
            client_banner: self.guard.client_banner().unwrap_or_default(),
            fingerprint: key.map(|k| k.fingerprint(HashAlg::Sha256).to_string()),
            key_type: key.map(|k| k.algorithm().as_str().to_owned()),
            result,
            reason: reason.to_owned(),
        }
    }

    async fn record(&self, attempt: &NewAuthAttempt) -> Option<Recorded> {
        match self.shared.store.record_auth_attempt(attempt).await {
            Ok(recorded) => Some(recorded),
            Err(e) => {
                tracing::warn!(error = %e, "could not record the login attempt");
                None
            }
        }
    }

    /// Logs a refusal once per recorded row, then every
    /// [`REFUSAL_LOG_EVERY_REPEAT`]th repeat, so a flood of refusals is a
    /// handful of lines (each repeat is counted in the attempt's row).
    fn log_refusal(&self, attempt: &NewAuthAttempt, recorded: Option<Recorded>) {
        // Already escaped by `printable_user_name`: shown as it is, so a
        // line break reads `\n` once rather than `\\n`.
        let quoted = format!("\"{}\"", attempt.account_name);
        let account = tracing::field::display(&quoted);
        let fingerprint = attempt.fingerprint.as_deref().unwrap_or("-");
        let reason = attempt.reason.as_str();
        let peer = self.peer;
        match recorded.map(Recorded::count) {
            None | Some(1) => {
                tracing::info!(account, %peer, fingerprint, reason, "login refused")
            }
            Some(times) if times % REFUSAL_LOG_EVERY_REPEAT == 0 => tracing::info!(
                account,
                %peer,
                fingerprint,
                reason,
                times,
                "login refused again: the same refusal from this source, counted in its login attempt"
            ),
            Some(times) => {
                tracing::debug!(account, %peer, fingerprint, reason, times, "login refused")
            }
        }
    }

    /// Sends the SFTP-only line on stderr, exit status 1, EOF and close, and
    /// gives the channel's slot back (russh will not report the client's
    /// CLOSE reply). A channel already running SFTP is not touched.
    fn refuse_channel(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if self.channels.remove(&channel).is_none() {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)?;
        session.extended_data(channel, 1, format!("{SFTP_ONLY_MESSAGE}\r\n").into_bytes())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }
}

/// A refusal repeated from one source is logged again at info every this
/// many times (in between at debug).
const REFUSAL_LOG_EVERY_REPEAT: i64 = 100;

/// A client's user name as it may be logged and stored: control characters
/// and quotes escaped, cut to [`MAX_ACCOUNT_NAME_BYTES`] with the full
/// length noted, so a 200,000-byte name costs a few dozen bytes.
pub fn printable_user_name(user: &str) -> String {
    let escaped_prefix = |limit: usize| -> String {
        let mut out = String::new();
        for c in user.chars() {
            let escaped: String = if c.is_control() || c == '\\' {
                c.escape_debug().collect()
            } else {
                c.to_string()
            };
            if out.len() + escaped.len() > limit {
                break;
            }
            out.push_str(&escaped);
        }
        out
    };
    let whole = escaped_prefix(usize::MAX);
    if whole.len() <= MAX_ACCOUNT_NAME_BYTES {
        return whole;
    }
    format!(
        "{}… ({} bytes)",
        escaped_prefix(MAX_ACCOUNT_NAME_BYTES),
        user.len()
    )
}

/// The note stored with an accepted login.
fn signature_note(algorithm: &Algorithm) -> String {
    if *algorithm == (Algorithm::Rsa { hash: None }) {
        "accepted with a legacy ssh-rsa (SHA-1) signature (account allows legacy clients)".into()
    } else {
        "accepted".into()
    }
}

/// The login rules, in the order an admin would check them: the store's
/// verdict (account, key state, `expiry-time`), then the key's `from=`
/// option, then the signature algorithm. `Ok` carries the key's id; `Err`
/// the reason recorded in the auth attempt.
pub fn judge(lookup: &LoginLookup, algorithm: &Algorithm, addr: IpAddr) -> Result<i64, String> {
    let verdict = lookup.verdict();
    let (LoginVerdict::Accepted { key_id }, Some(account), Some(key)) =
        (verdict, &lookup.account, &lookup.key)
    else {
        return Err(verdict.to_string());
    };
    let options = KeyOptions::parse(&key.options).unwrap_or_default();
    if let Some(patterns) = options
        .from_patterns()
        .filter(|patterns| !ferry_keys::from_allows(patterns, addr))
    {
        return Err(format!(
            "address {addr} is not allowed by the key's from=\"{patterns}\" option"
        ));
    }
    if *algorithm == (Algorithm::Rsa { hash: None }) && !account.legacy_clients {
        return Err(format!(
            "ssh-rsa (SHA-1) signature refused: the client is too old for this account's policy; \
             update it, or allow legacy clients with `ferry account set {} --legacy-clients on`",
            account.name
        ));
    }
    Ok(key_id)
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    /// While the database is known to be down, clients are told why their
    /// login will be refused.
    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(self
            .shared
            .database
            .is_down()
            .then(|| DATABASE_DOWN_BANNER.to_owned()))
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.attempt(user, offer.public_key, offer.algorithm, false)
            .await
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.attempt(user, key.public_key, key.algorithm, true)
            .await
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.refuse_method(user, "password").await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.refuse_method(user, "keyboard-interactive").await
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.guard.logged_in(session.handle());
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let slot = match self.slots.take() {
            Ok(slot) => slot,
            Err(NoSlot::AllTaken) => {
                tracing::info!(peer = %self.peer, "refused a channel: {MAX_CHANNELS_PER_CONNECTION} already open on this connection");
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return Ok(());
            }
            Err(NoSlot::LifetimeUsed) => {
                let why = format!(
                    "this connection opened {MAX_CHANNELS_PER_CONNECTION_LIFETIME} channels; reconnect to open more"
                );
                tracing::info!(peer = %self.peer, "disconnecting: {why}");
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return session.disconnect(Disconnect::ByApplication, &why, "");
            }
        };
        let id = channel.id();
        reply.accept().await;
        self.channels.insert(id, (channel, slot));
        Ok(())
    }

    /// Starts SFTP on a channel that asked for the `sftp` subsystem; any
    /// other subsystem, or one asked before login, is refused and the
    /// channel stays open (and keeps its slot) until the client closes it.
    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(account), true, true) = (
            &self.account,
            name == "sftp",
            self.channels.contains_key(&channel),
        ) else {
            tracing::info!(peer = %self.peer, subsystem = name, "refused subsystem");
            return session.channel_failure(channel);
        };
        let jail = match Jail::open(&self.shared.settings.data_dir, account) {
            Ok(jail) => jail,
            Err(e) => {
                tracing::error!(%account, error = %e, "cannot open the account's folder");
                return session.channel_failure(channel);
            }
        };
        let Some((ch, slot)) = self.channels.remove(&channel) else {
            return session.channel_failure(channel);
        };
        session.channel_success(channel)?;
        let events: mpsc::UnboundedSender<UploadEvent> = self.shared.events.clone();
        tokio::spawn(crate::channel::serve_sftp(
            ch.into_stream(),
            channel,
            session.handle(),
            Arc::clone(&self.shared),
            jail,
            events,
            slot,
        ));
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, "refused a shell");
        self.refuse_channel(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command: String = String::from_utf8_lossy(data).chars().take(80).collect();
        tracing::info!(peer = %self.peer, %command, "refused a command");
        self.refuse_channel(channel, session)
    }

    /// Answered with success (no terminal is allocated) so `ssh -tt` shows
    /// the SFTP-only line instead of "PTY allocation request failed".
    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    /// The client closed a channel the server had not closed: one without
    /// a subsystem gives its slot back here; a running SFTP task ends on
    /// its own and gives its slot back then.
    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn lookup_dh_gex_group(
        &mut self,
        params: &russh::client::GexParams,
    ) -> Result<Option<russh::kex::dh::groups::DhGroup>, Self::Error> {
        Ok(crate::algorithms::dh_gex_group(
            params.min_group_size(),
            params.preferred_group_size(),
            params.max_group_size(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::printable_user_name;

    #[test]
    fn user_names_are_recorded_short_and_escaped() {
        assert_eq!(printable_user_name("lincoln-usd"), "lincoln-usd");
        assert_eq!(
            printable_user_name("evil\n2026 INFO fake"),
            "evil\\n2026 INFO fake"
        );
        let long = "x".repeat(200_000);
        let shown = printable_user_name(&long);
        assert_eq!(shown, format!("{}… (200000 bytes)", "x".repeat(63)));
        // Escapes are never cut in half.
        let shown = printable_user_name(&"\u{7}".repeat(100));
        assert!(
            shown.starts_with("\\u{7}") && shown.contains("… (100 bytes)"),
            "{shown}"
        );
        assert!(!shown.contains('\u{7}'));
    }
}
