//! The outbox: every accepted event and one delivery row per destination, in an embedded SQLite
//! store (WAL, `synchronous = FULL`), until each delivery is done or dead. Deduplicates on
//! `eventId`, because ThousandEyes re-posts any notification that did not get a 200.
//!
//! One writer thread owns the only write connection. Writes that arrive while a commit runs are
//! applied together in the next transaction (group commit), so concurrent requests share one
//! fsync. Each worker reads due deliveries through its own read connection. This is the only
//! module that knows SQL.
//!
//! - `schema`: opening, pragmas, versioned migrations.
//! - `writer`: the writer thread and the statements it runs.
//! - `admin`: what `alert-relay deliveries` and `retry` do to the store.
//! - `lock`: one server per store.

mod admin;
mod lock;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

pub use admin::{DeliveryRow, Requeue, list, requeue};
pub use lock::StoreLock;
pub use schema::SCHEMA_VERSION;
use schema::{connect, left_open, mark_open, migrate, wal_path};
use writer::{Wakers, Write, write_loop};

/// Writes waiting for the writer thread; past it, callers wait (back-pressure, not memory).
const WRITE_QUEUE: usize = 4096;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New { deliveries: usize },
    Duplicate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Embedded store for the outbox, dedup and thread state.
    pub path: PathBuf,
    /// How long delivered and dead deliveries, and the events behind them, are kept; an event id
    /// is recognised as a duplicate for this long. ThousandEyes re-posts for an hour.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often workers look at the store for what another process changed there (`alert-relay
    /// retry`); what this relay changes itself wakes them at once.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: "data/alert-relay.db".into(),
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
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [Self::Pending, Self::Done, Self::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not pending, done or dead"))
    }
}

impl rusqlite::ToSql for DeliveryState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for DeliveryState {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

/// A delivery claimed by a worker.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: i64,
    pub attempts: u32,
    pub event_id: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub body: Vec<u8>,
}

/// What an attempt ended in.
#[derive(Debug, Clone)]
pub enum Finish {
    Done {
        attempts: u32,
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

pub struct Outbox {
    path: PathBuf,
    writes: mpsc::Sender<Write>,
    wakers: Arc<Wakers>,
    /// For `/metrics`: pending and dead counts, read at scrape time.
    stats: std::sync::Mutex<Connection>,
}

/// An event's id for people from its dedup key: the text of a string `eventId`, a number as it is
/// written, the body hash of an event without one.
fn display_id(key: String) -> String {
    serde_json::from_str::<String>(&key).unwrap_or(key)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Outbox {
    /// Opens (creating it and its directory if needed) and migrates the store at `path`, then
    /// starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let existed = path.is_file();
        let wal_existed = wal_path(path).exists();
        let mut conn = connect(path, true)?;
        migrate(&mut conn, path)?;
        if existed && !wal_existed && left_open(&conn)? {
            tracing::error!(
                store = %path.display(),
                log = %wal_path(path).display(),
                "the store's write-ahead log is missing although the last server did not close the store (a crash, then the -wal file deleted or not copied with the store): events it accepted since its last checkpoint may be lost"
            );
        }
        mark_open(&conn, true)?;
        let wakers: Arc<Wakers> = Arc::default();
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let thread_wakers = wakers.clone();
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || write_loop(conn, queue, &thread_wakers))
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            path: path.to_owned(),
            writes,
            wakers,
            stats: std::sync::Mutex::new(connect(path, false)?),
        })
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Stores the event and one delivery per destination in `to`, unless an event with the same
    /// dedup `key` is already stored. Returns once the transaction is committed and synced to disk.
    pub async fn accept(
        &self,
        event_id: &str,
        received_at: i64,
        body: &[u8],
        to: &[String],
    ) -> Result<Accepted, StoreError> {
        self.write(|reply| Write::Accept {
            event_id: event_id.to_owned(),
            received_at,
            body: body.to_vec(),
            to: to.to_vec(),
            reply,
        })
        .await
    }

    /// Records how an attempt ended; returns once committed.
    pub async fn finish(
        &self,
        id: i64,
        destination: &str,
        finish: Finish,
    ) -> Result<(), StoreError> {
        self.write(|reply| Write::Finish {
            id,
            destination: destination.to_owned(),
            finish,
            reply,
        })
        .await
    }

    /// Proves that the store can take new events (`/readyz`): its file system has at least
    /// `room` bytes free, and a small write commits. The free space matters on its own: with the
    /// disk full, a small write can still succeed by reusing the space of the write-ahead log.
    pub async fn probe(&self, room: u64) -> Result<(), StoreError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stat = rustix::fs::statvfs(dir).map_err(|e| StoreError::Write(e.to_string()))?;
        let available = stat.f_bavail.saturating_mul(stat.f_frsize);
        if available < room {
            return Err(StoreError::Full {
                available,
                needed: room,
            });
        }
        self.write(|reply| Write::Probe { reply }).await
    }

    /// Marks the store closed (see `schema::mark_open`); the server's last write.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.write(|reply| Write::Close { reply }).await
    }

    /// Forgets deliveries done or dead before `before` (unix ms), and events with none left.
    pub async fn prune(&self, before: i64) -> Result<(), StoreError> {
        self.write(|reply| Write::Prune { before, reply }).await
    }

    /// `(destination, pending, dead)` for each of `destinations`.
    pub fn backlog(&self, destinations: &[String]) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let conn = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut statement = conn.prepare_cached(
            "SELECT destination, SUM(state = 'pending'), SUM(state = 'dead') FROM deliveries
             WHERE state != 'done' GROUP BY destination",
        )?;
        let mut counts: std::collections::HashMap<String, (i64, i64)> = statement
            .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))?
            .collect::<Result<_, _>>()?;
        Ok(destinations
            .iter()
            .map(|name| {
                let (pending, dead) = counts.remove(name).unwrap_or_default();
                (name.clone(), pending, dead)
            })
            .collect())
    }

    /// A read connection for one worker.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Ok(Reader {
            conn: std::sync::Mutex::new(connect(&self.path, false)?),
        })
    }

    /// Completes when something changed for `destination` (a new delivery, a finished attempt).
    pub async fn changed(&self, destination: &str) {
        let waker = self.wakers.get(destination);
        waker.notified().await;
    }
}

/// A worker's read connection. The mutex is only ever taken by its own worker; it makes the
/// reader shareable across the worker's awaits.
pub struct Reader {
    conn: std::sync::Mutex<Connection>,
}

impl Reader {
    /// The delivery for `destination` due first at `now` (unix ms), leaving out those in
    /// `in_flight`. Only that one row's body is read.
    pub fn next_due(
        &self,
        destination: &str,
        now: i64,
        in_flight: &std::collections::HashSet<i64>,
    ) -> Result<Option<Claim>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut statement = conn.prepare_cached(
            "SELECT d.id, d.attempts, e.event_id, e.received_at, e.body
             FROM deliveries d JOIN events e ON e.id = d.event
             WHERE d.destination = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
               AND d.id NOT IN (SELECT value FROM json_each(?3))
             ORDER BY d.next_attempt_at, d.id LIMIT 1",
        )?;
        let in_flight = serde_json::to_string(in_flight).unwrap_or_else(|_| "[]".into());
        let claim = statement
            .query_row(params![destination, now, in_flight], |row| {
                Ok(Claim {
                    id: row.get(0)?,
                    attempts: row.get(1)?,
                    event_id: display_id(row.get(2)?),
                    received_at: row.get(3)?,
                    body: row.get(4)?,
                })
            })
            .optional()?;
        Ok(claim)
    }

    /// When the next pending delivery for `destination` is due (unix ms), if there is one.
    pub fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut statement = conn.prepare_cached(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE destination = ?1 AND state = 'pending'",
        )?;
        Ok(statement.query_row(params![destination], |row| row.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn accept_dedup_claim_finish_and_requeue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/store.db");
        let destinations = names(&["a", "b"]);
        let outbox = Outbox::open(&path).unwrap();
        let accepted = outbox
            .accept("\"e1\"", 1, b"{}", &destinations)
            .await
            .unwrap();
        assert_eq!(accepted, Accepted::New { deliveries: 2 });
        assert_eq!(
            outbox
                .accept("\"e1\"", 2, b"{}", &destinations)
                .await
                .unwrap(),
            Accepted::Duplicate
        );
        let reader = outbox.reader().unwrap();
        let none = std::collections::HashSet::new();
        let id = reader.next_due("a", now_ms(), &none).unwrap().unwrap().id;
        assert!(
            reader
                .next_due("a", now_ms(), &[id].into_iter().collect())
                .unwrap()
                .is_none(),
            "the only due delivery is in flight"
        );
        outbox
            .finish(
                id,
                "a",
                Finish::Dead {
                    attempts: 1,
                    error: "HTTP 404".into(),
                },
            )
            .await
            .unwrap();
        assert!(reader.next_due("a", now_ms(), &none).unwrap().is_none());
        let dead = list(&path, Some(DeliveryState::Dead), 10).unwrap();
        assert_eq!(
            (
                dead.len(),
                dead[0].event_id.as_str(),
                dead[0].last_error.as_deref()
            ),
            (1, "e1", Some("HTTP 404"))
        );
        assert_eq!(requeue(&path, Requeue::AllDead).unwrap(), 1);
        assert!(reader.next_due("a", now_ms(), &none).unwrap().is_some());
        outbox.probe(1).await.unwrap();
    }

    #[tokio::test]
    async fn keys_stored_by_schema_1_still_deduplicate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO events (event_id, received_at, body) VALUES ('49-35541', 1, '{}')",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(
            outbox
                .accept("\"49-35541\"", 2, b"{}", &names(&["a"]))
                .await
                .unwrap(),
            Accepted::Duplicate
        );
    }

    #[test]
    fn refuses_what_is_not_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        assert!(matches!(
            Outbox::open(&junk),
            Err(StoreError::NotAStore { .. })
        ));
        let newer = dir.path().join("newer.db");
        let conn = Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let error = Outbox::open(&newer).err().expect("refused");
        assert!(
            error.to_string().contains("newer than this alert-relay"),
            "{error}"
        );
        let dir_as_file = dir.path().to_owned();
        assert!(matches!(
            Outbox::open(&dir_as_file),
            Err(StoreError::Open { .. })
        ));
        assert!(matches!(
            list(&dir.path().join("none.db"), None, 1),
            Err(StoreError::Missing(_))
        ));
    }
}
