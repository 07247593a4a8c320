//! The outbox: every accepted event and one delivery row per destination, until each delivery is
//! done or dead. Deduplicates on `eventId`, because ThousandEyes re-posts any notification that
//! did not get a 200. This module holds what every store shares (the vocabulary, and [`Outbox`],
//! which the rest of the relay uses without knowing the store); each store is the only code that
//! knows its SQL:
//!
//! - `sqlite`: the embedded store (the default): one writer thread, group commit, WAL.
//! - `postgres`: one database for several replicas: batched commits, leased claims.

mod disposition;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use tokio::sync::Notify;

use crate::event::Phase;

pub use sqlite::{SCHEMA_VERSION, StoreLock};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path} is not an alert-relay store: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    #[error(
        "the store at {path} has schema version {found}, newer than this alert-relay understands ({SCHEMA_VERSION}); run the newer version or point storage.path elsewhere"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error("no store at {0}: the relay has not run with this config yet")]
    Missing(PathBuf),
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot write the store: {0}")]
    Write(String),
    #[error("the store is closed")]
    Closed,
    #[error(
        "the store at {path} is in use by another alert-relay ({by}); stop it, or give this one its own storage.path"
    )]
    InUse { path: PathBuf, by: String },
    #[error(
        "the disk holding the store has {available} bytes free, less than the {needed} kept for new events"
    )]
    Full { available: u64, needed: u64 },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The store did not answer in time (a database down or restarting).
    #[error("{0}")]
    Unavailable(String),
    /// PostgreSQL gave up a transaction for another that wanted the same rows (a deadlock, a
    /// serialization failure): the same writes may be tried again.
    #[error("PostgreSQL: {0}")]
    Conflict(String),
}

impl StoreError {
    /// The same failure, for the next caller of a batch that failed as a whole.
    fn again(&self) -> StoreError {
        match self {
            Self::Unavailable(why) => Self::Unavailable(why.clone()),
            other => Self::Write(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New {
        deliveries: usize,
        /// This clear's trigger was held and not sent yet: neither goes out.
        flapped: bool,
    },
    Duplicate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Embedded store for the outbox, dedup and thread state.
    pub path: PathBuf,
    /// A PostgreSQL database instead (`postgres://user@host/db`, `?sslmode=require` for TLS),
    /// which several relays can share; a secret, as it may carry a password.
    pub url: Option<crate::secret::Secret>,
    pub url_file: Option<PathBuf>,
    /// How long delivered and dead deliveries, and the events behind them, are kept; an event id
    /// is recognised as a duplicate for this long. ThousandEyes re-posts for an hour.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often workers look at the store for what another process changed there (`alert-relay
    /// retry`); what this relay changes itself wakes them at once.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
}

impl StorageConfig {
    /// The PostgreSQL URL, when the store is PostgreSQL (`url` or `url_file`, read here).
    pub fn postgres_url(
        &self,
        base_dir: &Path,
    ) -> Result<Option<crate::secret::Secret>, crate::error::ConfigError> {
        if self.url.is_none() && self.url_file.is_none() {
            return Ok(None);
        }
        let file = self.url_file.as_ref().map(|f| base_dir.join(f));
        let url = crate::secret::from_value_or_file("url", self.url.as_ref(), file.as_deref())
            .map_err(|reason| crate::error::ConfigError::new("storage", reason))?;
        if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
            return Err(crate::error::ConfigError::new(
                "storage.url",
                "is not a postgres:// or postgresql:// URL",
            ));
        }
        Ok(Some(url))
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: "data/alert-relay.db".into(),
            url: None,
            url_file: None,
            retention: Duration::from_secs(7 * 24 * 3600),
            poll: Duration::from_secs(1),
        }
    }
}

/// Where a delivery stands, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// Delivered.
    Done,
    /// Failed for good; `alert-relay retry` makes it pending again.
    Dead,
    /// Not sent: a silence or a maintenance window held it (a trigger still firing goes out
    /// when that ends).
    Silenced,
    /// Not sent: its alert triggered and cleared within the route's `hold`.
    Flapped,
    /// Not sent on its own: it joined a group, whose notifications name it.
    Grouped,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 6] = [
        Self::Pending,
        Self::Done,
        Self::Dead,
        Self::Silenced,
        Self::Flapped,
        Self::Grouped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Silenced => "silenced",
            Self::Flapped => "flapped",
            Self::Grouped => "grouped",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("{text:?} is not one of {}", names.join(", "))
            })
    }
}

/// A silence as the store keeps it (see `noise::Silence`): every relay on the store sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRow {
    pub id: String,
    /// Its matchers, a JSON list of texts (`["test=checkout", "rule=~^Latency"]`).
    pub matchers: String,
    /// Unix milliseconds, as the other times.
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// An event the store keeps, as the studio lists it.
#[derive(Debug, Clone)]
pub struct RecentEvent {
    /// The store's own id of the event.
    pub id: i64,
    pub event_id: String,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Its normalized form (see `event::Event::stored_form`), for events stored since sources.
    pub normalized: Option<String>,
}

/// One delivery of a new event: where it goes, and how.
#[derive(Debug, Clone)]
pub struct Addressed {
    pub destination: String,
    /// A trigger waits this long (ms) before it is sent; cleared meanwhile, neither is sent.
    /// 0: at once.
    pub hold_ms: i64,
    /// A trigger goes into this group instead of a message of its own, and its clear marks it
    /// cleared there.
    pub group: Option<Joining>,
}

impl Addressed {
    /// A delivery sent at once.
    pub fn at_once(destination: &str) -> Self {
        Self {
            destination: destination.to_owned(),
            hold_ms: 0,
            group: None,
        }
    }
}

/// The group an alert joins at one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Joining {
    /// What tells the group from the destination's others (`test=checkout`).
    pub key: String,
    /// Its fields and their values, JSON.
    pub labels: String,
    /// A new group's first notification waits this long (ms) for more alerts.
    pub wait_ms: i64,
    /// Later changes are sent at most this often (ms).
    pub interval_ms: i64,
    /// What the group's notifications show of this alert, JSON.
    pub member: String,
}

/// A group whose notification is due, as the store read it.
#[derive(Debug, Clone)]
pub struct DueGroup {
    pub id: i64,
    pub destination: String,
    pub key: String,
    /// JSON, as [`Joining::labels`].
    pub labels: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// How many notifications were made before this one.
    pub notifications: i64,
    pub members: Vec<Member>,
}

/// One alert of a group.
#[derive(Debug, Clone)]
pub struct Member {
    pub correlation: String,
    pub firing: bool,
    /// JSON, as [`Joining::member`].
    pub summary: String,
    /// Unix milliseconds, as `changed_at`.
    pub joined_at: i64,
    pub changed_at: i64,
    /// As the last notification showed it: firing, cleared, or not at all.
    pub notified: Option<bool>,
}

/// A group's notification, stored as an event (`group:ID:N`) with one delivery to the group's
/// destination: its body and normalized form.
#[derive(Debug, Clone)]
pub struct GroupNotification {
    pub body: Vec<u8>,
    pub normalized: String,
}

/// Makes a due group's notification, at a time (unix ms).
pub type BuildNotification = fn(&DueGroup, i64) -> GroupNotification;

/// The most groups one flush takes (the next takes the rest).
pub const FLUSH_BATCH: usize = 64;

/// An event to store, with one delivery per destination in `to`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What dedup compares: while an event with the same key is kept, this one is a duplicate.
    pub key: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub body: Vec<u8>,
    /// The event as its source normalized it (see `Event::stored_form`).
    pub normalized: Option<String>,
    pub to: Vec<Addressed>,
    /// The correlation key and phase: a clear is not claimed for a destination while its trigger
    /// waits there.
    pub lifecycle: Option<(String, Phase)>,
    /// What silences it (`silence:ID`, `maintenance:NAME`), if anything does: its deliveries are
    /// kept as silenced, unless it is a clear whose trigger went out there; a clear whose trigger
    /// was silenced is silenced with it, whatever silences it now.
    pub silenced: Option<String>,
}

impl NewEvent {
    /// The correlation key and phase, as the stores keep them.
    pub(crate) fn lifecycle(&self) -> (Option<&str>, Option<&'static str>) {
        match &self.lifecycle {
            Some((key, phase)) => (Some(key.as_str()), Some(phase.as_str())),
            None => (None, None),
        }
    }

    /// An empty body stored under `key` for `to`, received at 1 (tests change what they need).
    #[cfg(test)]
    pub(crate) fn for_test(key: &str, to: &[&str]) -> Self {
        Self {
            key: key.to_owned(),
            received_at: 1,
            body: b"{}".to_vec(),
            normalized: None,
            to: to.iter().map(|name| Addressed::at_once(name)).collect(),
            lifecycle: None,
            silenced: None,
        }
    }
}

/// A stored event's body and its normalized form (see [`Claim::normalized`]).
pub type StoredBody = (Vec<u8>, Option<String>);

/// A delivery claimed by a worker.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: i64,
    pub attempts: u32,
    /// An earlier attempt may have reached the destination without its outcome being kept: it
    /// failed (a timeout may hide a message posted), or its relay stopped during it. A
    /// destination that can tell looks before it sends again.
    pub unsure: bool,
    pub event_id: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub body: Vec<u8>,
    /// The event as its source normalized it; `None` for events stored before sources existed.
    pub normalized: Option<String>,
    /// For a clear: what the destination kept of its trigger's message, and the trigger's
    /// summary (both JSON), if the trigger was delivered there within `storage.retention`.
    pub thread: Option<(String, String)>,
    /// What silenced it until it ended, for a trigger sent when its silence ended.
    pub silenced_by: Option<String>,
    /// Its event's message is to be updated in place (see [`NewAction`]), not sent anew.
    pub refresh: bool,
}

impl Claim {
    /// About how many bytes it holds: its event's body, normalized form and thread.
    pub fn memory_bytes(&self) -> usize {
        let thread = self.thread.as_ref().map_or(0, |(t, s)| t.len() + s.len());
        self.body.len() + self.normalized.as_ref().map_or(0, String::len) + thread
    }
}

/// What someone did from a message of an alert (Acknowledge, Silence, and their undoing), as
/// the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    /// The alert's correlation key (a group's: `group:ID`).
    pub correlation: String,
    /// Where the message was.
    pub destination: String,
    /// `ack`, `unack`, `silence`, `unsilence`.
    pub action: String,
    pub user_id: String,
    pub user_name: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The silence it made or ended.
    pub silence: Option<String>,
    /// A silence made to last until the alert clears: it ends then.
    pub until_cleared: bool,
    /// When the silence it made or ended ends (or ended), as the store keeps it; read only.
    pub silence_ends_at: Option<i64>,
}

/// One action to keep, in one commit with what it does in the store: once per `key` (a click
/// that two replicas both hear is kept by one), with the silence it makes or ends and a refresh
/// of the alert's message at its destination (its latest event delivered again, in place).
#[derive(Debug, Clone)]
pub struct NewAction {
    pub key: String,
    pub row: ActionRow,
    pub add_silence: Option<SilenceRow>,
    pub expire_silence: Option<String>,
}

/// What a destination keeps of a trigger's message for its clear: kind-specific JSON (see
/// `deliver::Sent`), with the trigger's summary for the clear's templates.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub correlation: String,
    pub thread: String,
    pub trigger_summary: String,
}

impl Finish {
    /// What the delivery's row becomes: its state, attempts, when it is next due (unix ms; `now`
    /// once it is done or dead) and the error to keep, if any.
    fn row(&self, now: i64) -> (DeliveryState, u32, i64, Option<&str>) {
        match self {
            Finish::Done { attempts, .. } => (DeliveryState::Done, *attempts, now, None),
            Finish::Retry {
                attempts,
                due,
                error,
            } => (
                DeliveryState::Pending,
                *attempts,
                *due,
                Some(error.as_str()),
            ),
            Finish::Dead { attempts, error } => {
                (DeliveryState::Dead, *attempts, now, Some(error.as_str()))
            }
        }
    }
}

/// What an attempt ended in.
#[derive(Debug, Clone)]
pub enum Finish {
    Done {
        attempts: u32,
        /// Kept with the outcome, in the same transaction, when the event is a trigger.
        thread: Option<Thread>,
    },
    Retry {
        attempts: u32,
        due: i64,
        error: String,
    },
    Dead {
        attempts: u32,
        error: String,
    },
}

/// An event's id for people from its dedup key: the text of a string `eventId`, a number as it is
/// written, the body hash of an event without one.
fn display_id(key: String) -> String {
    if let Some(group) = key.strip_prefix("group:")
        && let Some((id, notification)) = group.split_once(':')
    {
        return format!("group {id} #{notification}");
    }
    // `<source>:<key>`: source names have no `:`.
    let key = key.split_once(':').map_or(key.as_str(), |(_, key)| key);
    serde_json::from_str::<String>(key).unwrap_or_else(|_| key.to_owned())
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A delivery as `alert-relay deliveries` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub destination: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// A token the relay's OAuth server issued, as the store keeps it: its id, whom it went to and
/// when; never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedToken {
    /// The token's `jti`.
    pub id: String,
    pub client: String,
    /// Who approved the consent; none for `client_credentials`.
    pub operator: Option<String>,
    /// `authorization_code`, `implicit` or `client_credentials`.
    pub grant: String,
    /// Unix milliseconds, as the three below.
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A one-use authorization code, as the store keeps it: its SHA-256, never the code.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    pub hash: String,
    pub client: String,
    pub redirect_uri: String,
    pub operator: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Which deliveries `alert-relay retry` requeues.
#[derive(Debug, Clone, Copy)]
pub enum Requeue {
    One(i64),
    AllDead,
}

/// Where the store is, as the commands (`deliveries`, `retry`) reach it from their own process.
pub enum Location {
    Sqlite(PathBuf),
    Postgres(crate::secret::Secret),
}

/// Deliveries for `alert-relay deliveries`, newest first, in `state` if given. Works while the
/// server runs.
pub async fn list(
    location: &Location,
    state: Option<DeliveryState>,
    limit: usize,
) -> Result<Vec<DeliveryRow>, StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::list(path, state, limit),
        Location::Postgres(url) => postgres::list(url, state, limit).await,
    }
}

/// Makes deliveries due now again, with a fresh count of attempts; how many. A running server
/// picks them up within `storage.poll`.
pub async fn requeue(location: &Location, which: Requeue) -> Result<usize, StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::requeue(path, which),
        Location::Postgres(url) => postgres::requeue(url, which).await,
    }
}

/// Every token the OAuth server issued, newest first, for `alert-relay tokens`.
pub async fn tokens(location: &Location) -> Result<Vec<IssuedToken>, StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::tokens(path),
        Location::Postgres(url) => postgres::tokens(url).await,
    }
}

/// Revokes the token `id` (from its next use on); whether it was there and not yet revoked.
pub async fn revoke_token(location: &Location, id: &str) -> Result<bool, StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::revoke_token(path, id),
        Location::Postgres(url) => postgres::revoke_token(url, id).await,
    }
}

/// Every silence the store keeps (those ended within `storage.retention` too), newest first, for
/// `alert-relay silence list`.
pub async fn silences(location: &Location) -> Result<Vec<SilenceRow>, StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::silences(path),
        Location::Postgres(url) => postgres::silences(url).await,
    }
}

/// Keeps a new silence (`alert-relay silence add`); relays on the store apply it within
/// `storage.poll`.
pub async fn add_silence(location: &Location, silence: SilenceRow) -> Result<(), StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::add_silence(path, silence),
        Location::Postgres(url) => postgres::add_silence(url, silence).await,
    }
}

/// Ends the silence `id` now (`alert-relay silence expire`); whether it had not ended yet.
pub async fn expire_silence(location: &Location, id: &str) -> Result<bool, StoreError> {
    match location {
        Location::Sqlite(path) => sqlite::expire_silence(path, id),
        Location::Postgres(url) => postgres::expire_silence(url, id).await,
    }
}

/// The store the relay runs on. Every method says the same thing whichever store it is.
pub enum Outbox {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

impl Outbox {
    /// Opens (creating it and its directory if needed) and migrates the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::Sqlite(sqlite::Sqlite::open(path)?))
    }

    /// Connects to and migrates the PostgreSQL database at `url`; a claim keeps other replicas
    /// off a delivery for `lease`.
    pub async fn connect(url: &crate::secret::Secret, lease: Duration) -> Result<Self, StoreError> {
        Ok(Self::Postgres(
            postgres::Postgres::connect(url, lease).await?,
        ))
    }

    /// Stores the event and its deliveries, unless an event with the same key is already
    /// stored. Returns once the transaction is committed and on disk.
    pub async fn accept(&self, event: NewEvent) -> Result<Accepted, StoreError> {
        self.writer()
            .send(|reply| writes::Write::Accept { event, reply })
            .await
    }

    /// Stores several events at once (the alerts of one body): all are handed to the writer
    /// before any answer is awaited, so that they share its transactions; each one's result.
    pub async fn accept_all(&self, events: Vec<NewEvent>) -> Vec<Result<Accepted, StoreError>> {
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            answers.push(
                self.writer()
                    .submit(|reply| writes::Write::Accept { event, reply })
                    .await,
            );
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(answer) => answer.await.unwrap_or(Err(StoreError::Closed)),
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Whether the last server on this store stopped without closing it (SQLite; on PostgreSQL a
    /// claim says it of itself, see [`Claim::unsure`]): its attempts in flight then may have
    /// reached their destinations without their outcomes being kept.
    pub fn left_open(&self) -> bool {
        match self {
            Self::Sqlite(store) => store.crashed,
            Self::Postgres(_) => false,
        }
    }

    /// Records how an attempt ended; returns once committed.
    pub async fn finish(
        &self,
        id: i64,
        destination: &str,
        finish: Finish,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => &store.writer,
            Self::Postgres(store) => &store.outcomes,
        }
        .finish(id, destination, finish)
        .await
    }

    /// Where both stores take accepts and the other writes (outcomes too, for SQLite; see
    /// [`Outbox::finish`]).
    fn writer(&self) -> &writes::Writer {
        match self {
            Self::Sqlite(store) => &store.writer,
            Self::Postgres(store) => &store.writer,
        }
    }

    /// Proves that the store can take new events (`/readyz`), with at least `room` bytes free
    /// where that can be known.
    pub async fn probe(&self, room: u64) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.probe(room).await,
            Self::Postgres(store) => store.probe().await,
        }
    }

    /// The server's last write.
    pub async fn close(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(_) => Ok(()),
        }
    }

    /// Forgets deliveries done or dead before `before` (unix ms), events with none left, and
    /// threads kept before it; how many went. Works in small transactions, so that accepting
    /// never stalls behind a long prune.
    pub async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(store) => store.prune(before).await,
            Self::Postgres(store) => store.prune(before).await,
        }
    }

    /// `(destination, pending, dead)` for each of `destinations`, in a time that does not grow
    /// with the deliveries done.
    pub async fn backlog(
        &self,
        destinations: Vec<String>,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        match self {
            Self::Sqlite(store) => store.backlog(destinations).await,
            Self::Postgres(store) => store.backlog(destinations).await,
        }
    }

    /// How many groups are open (an alert of theirs fires, or their last notification is to
    /// come), for `/metrics`.
    pub async fn open_groups(&self) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(store) => store.open_groups().await,
            Self::Postgres(store) => store.open_groups().await,
        }
    }

    /// The last `limit` events accepted, newest first (for the template studio).
    pub async fn recent_events(&self, limit: usize) -> Result<Vec<RecentEvent>, StoreError> {
        match self {
            Self::Sqlite(store) => store.recent_events(limit).await,
            Self::Postgres(store) => store.recent_events(limit).await,
        }
    }

    /// The OAuth server's signing key: the one kept in the store, or `candidate`, kept now if
    /// there is none (replicas starting together agree on the first one written).
    pub async fn signing_key(&self, candidate: String) -> Result<String, StoreError> {
        match self {
            Self::Sqlite(store) => store.signing_key(candidate).await,
            Self::Postgres(store) => store.signing_key(candidate).await,
        }
    }

    /// Records a token the OAuth server issued.
    pub async fn issue_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.issue_token(token).await,
            Self::Postgres(store) => store.issue_token(token).await,
        }
    }

    /// The token `id`, if the OAuth server issued it (revoked or not).
    pub async fn token(&self, id: &str) -> Result<Option<IssuedToken>, StoreError> {
        match self {
            Self::Sqlite(store) => store.token(id.to_owned()).await,
            Self::Postgres(store) => store.token(id).await,
        }
    }

    /// Keeps an authorization code until it is taken (and forgets codes past their time).
    pub async fn keep_code(&self, code: AuthorizationCode) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.keep_code(code).await,
            Self::Postgres(store) => store.keep_code(code).await,
        }
    }

    /// Takes the code whose SHA-256 is `hash`: once only, whatever replica asks.
    pub async fn take_code(&self, hash: &str) -> Result<Option<AuthorizationCode>, StoreError> {
        match self {
            Self::Sqlite(store) => store.take_code(hash.to_owned()).await,
            Self::Postgres(store) => store.take_code(hash).await,
        }
    }

    /// Every silence that has not ended before `after` (unix ms), newest first.
    pub async fn silences(&self, after: i64) -> Result<Vec<SilenceRow>, StoreError> {
        match self {
            Self::Sqlite(store) => store.silences(after).await,
            Self::Postgres(store) => store.silences(after).await,
        }
    }

    pub async fn add_silence(&self, silence: SilenceRow) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.add_silence(silence).await,
            Self::Postgres(store) => store.add_silence(silence).await,
        }
    }

    /// Ends the silence `id` now; whether it had not ended yet.
    pub async fn expire_silence(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(store) => store.expire_silence(id.to_owned()).await,
            Self::Postgres(store) => store.expire_silence(id).await,
        }
    }

    /// Keeps `action` and does what it does in the store (see [`NewAction`]); whether it is new
    /// (`false`: this click was kept before, by this relay or another, and nothing is done).
    pub async fn act(&self, action: NewAction) -> Result<bool, StoreError> {
        self.writer()
            .send(|reply| writes::Write::Act { action, reply })
            .await
    }

    /// The normalized form of the latest event of the alert `correlation` (what a silence made
    /// from its message matches).
    pub async fn alert_event(&self, correlation: &str) -> Result<Option<String>, StoreError> {
        match self {
            Self::Sqlite(store) => store.alert_event(correlation.to_owned()).await,
            Self::Postgres(store) => store.alert_event(correlation).await,
        }
    }

    /// What was done from the messages of the alert `correlation`, oldest first.
    pub async fn actions(&self, correlation: &str) -> Result<Vec<ActionRow>, StoreError> {
        match self {
            Self::Sqlite(store) => store.actions(correlation.to_owned()).await,
            Self::Postgres(store) => store.actions(correlation).await,
        }
    }

    /// Makes the notification of every group whose time has come (`build` says what it shows),
    /// each stored with its delivery in the transaction that marks the group notified, so that
    /// none is made twice. How many were made.
    pub async fn flush_groups(&self, build: BuildNotification) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(_) => {
                self.writer()
                    .send(|reply| writes::Write::Flush { build, reply })
                    .await
            }
            Self::Postgres(store) => store.flush_groups(build).await,
        }
    }

    /// Sends the triggers that silences held and that are still firing, where what held them
    /// has ended: a silence of the store that has ended, or a maintenance window not in
    /// `open_windows` (`maintenance:NAME`). How many deliveries became pending.
    pub async fn unsilence(&self, open_windows: Vec<String>) -> Result<usize, StoreError> {
        self.writer()
            .send(|reply| writes::Write::Unsilence {
                open_windows,
                reply,
            })
            .await
    }

    /// The body of the stored event `id` (see [`RecentEvent`]) and its normalized form, if it
    /// is still kept.
    pub async fn event_body(&self, id: i64) -> Result<Option<StoredBody>, StoreError> {
        match self {
            Self::Sqlite(store) => store.event_body(id).await,
            Self::Postgres(store) => store.event_body(id).await,
        }
    }

    /// What one worker reads due deliveries through.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        match self {
            Self::Sqlite(store) => Ok(Reader::Sqlite(store.reader()?)),
            Self::Postgres(store) => Ok(Reader::Postgres(Box::new(store.reader()))),
        }
    }

    /// Completes when something changed for `destination` (a new delivery, a finished attempt).
    pub async fn changed(&self, destination: &str) {
        match self {
            Self::Sqlite(store) => store.changed(destination).await,
            Self::Postgres(store) => store.changed(destination).await,
        }
    }
}

/// A worker's way to its due deliveries; its queries never block the runtime's threads.
pub enum Reader {
    Sqlite(sqlite::Reader),
    Postgres(Box<postgres::Reader>),
}

impl Reader {
    /// The first of [`Reader::due`]: workers claim several at once, the store's tests look at
    /// one at a time.
    #[cfg(test)]
    pub async fn next_due(
        &self,
        destination: &str,
        now: i64,
        in_flight: Vec<i64>,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(self.due(destination, now, in_flight, 1, true).await?.pop())
    }

    /// Up to `limit` deliveries for `destination` due at `now` (unix ms), the first due first,
    /// leaving out the ids in `in_flight`, each with its event's body and, for a clear, what was
    /// kept of its trigger: one query for several attempts. `exclusive`: only where this relay
    /// drives the destination (one replica of those sharing a store; a paced destination).
    pub async fn due(
        &self,
        destination: &str,
        now: i64,
        in_flight: Vec<i64>,
        limit: usize,
        exclusive: bool,
    ) -> Result<Vec<Claim>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.due(destination, now, in_flight, limit).await,
            Self::Postgres(reader) => {
                reader
                    .due(destination, now, in_flight, limit, exclusive)
                    .await
            }
        }
    }

    /// When the next pending delivery for `destination` is due (unix ms), if there is one.
    pub async fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Self::Sqlite(reader) => reader.next_due_at(destination).await,
            Self::Postgres(reader) => reader.next_due_at(destination).await,
        }
    }
}

/// Wakes each destination's worker when something for it changed. Destinations come and go with
/// config reloads, so a waker is made the first time a name is asked for.
#[derive(Default)]
struct Wakers(std::sync::Mutex<HashMap<String, Arc<Notify>>>);

impl Wakers {
    fn get(&self, destination: &str) -> Arc<Notify> {
        let mut wakers = self.0.lock().unwrap_or_else(|e| e.into_inner());
        wakers.entry(destination.to_owned()).or_default().clone()
    }
}
