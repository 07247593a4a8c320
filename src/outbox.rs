//! The outbox: every accepted event and one delivery row per destination, in an embedded SQLite
//! store (WAL, `synchronous = FULL`), until each delivery is done or dead. Deduplicates on
//! `eventId`, because ThousandEyes re-posts any notification that did not get a 200.
//!
//! One writer thread owns the only write connection. Writes that arrive while a commit runs are
//! applied together in the next transaction (group commit), so concurrent requests share one
//! fsync. Each worker reads due deliveries through its own read connection. This is the only
//! module that knows SQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{Notify, mpsc, oneshot};

/// The schema this version writes; a store with a newer one is refused rather than damaged.
pub const SCHEMA_VERSION: i64 = 1;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        received_at INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        destination TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries (destination, state, next_attempt_at);
    CREATE INDEX deliveries_event ON deliveries (event);
    CREATE INDEX events_received ON events (received_at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"];

/// Writes taken into one transaction at most; enough to absorb every open connection at once.
const MAX_BATCH: usize = 1024;
/// Writes waiting for the writer thread; past it, callers wait (back-pressure, not memory).
const WRITE_QUEUE: usize = 4096;
/// Another process (`alert-relay retry`) may change the store: workers look again this often.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// A command that finds the store locked by the server waits this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New { deliveries: usize },
    Duplicate,
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

/// A delivery as `alert-relay deliveries` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub destination: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Which deliveries `alert-relay retry` requeues.
#[derive(Debug, Clone, Copy)]
pub enum Requeue {
    One(i64),
    AllDead,
}

enum Write {
    Accept {
        event_id: String,
        received_at: i64,
        body: Vec<u8>,
        to: Vec<String>,
        reply: oneshot::Sender<Result<Accepted, StoreError>>,
    },
    Finish {
        id: i64,
        destination: String,
        finish: Finish,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Probe {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Prune {
        before: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Wakes each destination's worker when something for it changed.
type Wakers = HashMap<String, Notify>;

pub struct Outbox {
    path: PathBuf,
    writes: mpsc::Sender<Write>,
    wakers: Arc<Wakers>,
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
    pub fn open<'a>(
        path: &Path,
        destinations: impl IntoIterator<Item = &'a String>,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let mut conn = connect(path, true)?;
        migrate(&mut conn, path)?;
        let wakers: Arc<Wakers> = Arc::new(
            destinations
                .into_iter()
                .map(|name| (name.clone(), Notify::new()))
                .collect(),
        );
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

    /// Stores the event and one delivery per destination in `to`, unless its `eventId` is already
    /// stored. Returns once the transaction is committed and synced to disk.
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

    /// Commits a small write: proves that the store can be written (`/readyz`).
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.write(|reply| Write::Probe { reply }).await
    }

    /// Forgets deliveries done or dead before `before` (unix ms), and events with none left.
    pub async fn prune(&self, before: i64) -> Result<(), StoreError> {
        self.write(|reply| Write::Prune { before, reply }).await
    }

    /// A read connection for one worker.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Ok(Reader {
            conn: std::sync::Mutex::new(connect(&self.path, false)?),
        })
    }

    /// Completes when something changed for `destination` (a new delivery, a finished attempt).
    pub async fn changed(&self, destination: &str) {
        match self.wakers.get(destination) {
            Some(waker) => waker.notified().await,
            None => std::future::pending().await,
        }
    }
}

/// A worker's read connection. The mutex is only ever taken by its own worker; it makes the
/// reader shareable across the worker's awaits.
pub struct Reader {
    conn: std::sync::Mutex<Connection>,
}

impl Reader {
    /// Up to `limit` deliveries for `destination` that are due at `now` (unix ms), oldest due first.
    pub fn due(&self, destination: &str, now: i64, limit: usize) -> Result<Vec<Claim>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut statement = conn.prepare_cached(
            "SELECT d.id, d.attempts, e.event_id, e.received_at, e.body
             FROM deliveries d JOIN events e ON e.id = d.event
             WHERE d.destination = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
             ORDER BY d.next_attempt_at, d.id LIMIT ?3",
        )?;
        let rows = statement.query_map(params![destination, now, limit as i64], |row| {
            Ok(Claim {
                id: row.get(0)?,
                attempts: row.get(1)?,
                event_id: row.get(2)?,
                received_at: row.get(3)?,
                body: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

/// Deliveries for `alert-relay deliveries`, newest first. Works while the server runs.
pub fn list(
    path: &Path,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let conn = open_existing(path)?;
    let mut statement = conn.prepare(
        "SELECT d.id, e.event_id, d.destination, d.state, d.attempts, d.next_attempt_at, d.last_error
         FROM deliveries d JOIN events e ON e.id = d.event
         WHERE ?1 IS NULL OR d.state = ?1
         ORDER BY d.id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![state, limit as i64], |row| {
        Ok(DeliveryRow {
            id: row.get(0)?,
            event_id: row.get(1)?,
            destination: row.get(2)?,
            state: row.get(3)?,
            attempts: row.get(4)?,
            next_attempt_at: row.get(5)?,
            last_error: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Makes deliveries due now again, with a fresh count of attempts; returns how many. A running
/// server picks them up within [`IDLE_POLL`].
pub fn requeue(path: &Path, which: Requeue) -> Result<usize, StoreError> {
    let conn = open_existing(path)?;
    let now = now_ms();
    let changed = match which {
        Requeue::One(id) => conn.execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1
             WHERE id = ?2 AND state != 'pending'",
            params![now, id],
        )?,
        Requeue::AllDead => conn.execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1
             WHERE state = 'dead'",
            params![now],
        )?,
    };
    Ok(changed)
}

fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing(path.to_owned()));
    }
    let conn = connect(path, false)?;
    let version = schema_version(&conn, path)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
        });
    }
    Ok(conn)
}

fn connect(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let not_a_store = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotAStore {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(not_a_store)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(not_a_store)?;
    // FULL: a commit is on disk before the relay answers 200.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(not_a_store)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(not_a_store)?;
    Ok(conn)
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| StoreError::NotAStore {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version = schema_version(conn, path)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| StoreError::NotAStore {
            path: path.to_owned(),
            reason: format!("migration to schema version {} failed: {e}", from + 1),
        })?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The writer thread: takes every write waiting, applies them in one transaction, commits, then
/// answers each caller and wakes the workers concerned.
fn write_loop(mut conn: Connection, mut queue: mpsc::Receiver<Write>, wakers: &Wakers) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let applied = apply(&mut conn, &batch);
        let mut woken: Vec<&str> = Vec::new();
        for (i, write) in batch.into_iter().enumerate() {
            let result = applied.as_ref().map(|results| results[i]);
            let error = || match &applied {
                Err(e) => StoreError::Write(e.to_string()),
                Ok(_) => StoreError::Closed,
            };
            match write {
                Write::Accept { reply, to, .. } => {
                    let answer = match result {
                        Ok(Some(accepted)) => Ok(accepted),
                        _ => Err(error()),
                    };
                    if matches!(answer, Ok(Accepted::New { .. })) {
                        woken.extend(
                            to.iter()
                                .filter_map(|d| wakers.get_key_value(d))
                                .map(|(k, _)| k.as_str()),
                        );
                    }
                    let _ = reply.send(answer);
                }
                Write::Finish {
                    reply, destination, ..
                } => {
                    if let Some((name, _)) = wakers.get_key_value(&destination) {
                        woken.push(name);
                    }
                    let _ = reply.send(result.map(|_| ()).map_err(|_| error()));
                }
                Write::Probe { reply } | Write::Prune { reply, .. } => {
                    let _ = reply.send(result.map(|_| ()).map_err(|_| error()));
                }
            }
        }
        woken.sort_unstable();
        woken.dedup();
        for name in woken {
            wakers[name].notify_one();
        }
    }
}

/// Applies a batch in one transaction; for each write, the accept outcome (if it is an accept).
fn apply(conn: &mut Connection, batch: &[Write]) -> Result<Vec<Option<Accepted>>, rusqlite::Error> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let mut results = Vec::with_capacity(batch.len());
    for write in batch {
        results.push(match write {
            Write::Accept {
                event_id,
                received_at,
                body,
                to,
                ..
            } => Some(insert_event(&tx, event_id, *received_at, body, to, now)?),
            Write::Finish { id, finish, .. } => {
                record_finish(&tx, *id, finish, now)?;
                None
            }
            Write::Probe { .. } => {
                tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?1)")?
                    .execute(params![now.to_string()])?;
                None
            }
            Write::Prune { before, .. } => {
                tx.execute(
                    "DELETE FROM deliveries WHERE state IN ('done', 'dead') AND updated_at < ?1",
                    params![before],
                )?;
                tx.execute(
                    "DELETE FROM events WHERE received_at < ?1
                     AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.event = events.id)",
                    params![before],
                )?;
                None
            }
        });
    }
    tx.commit()?;
    Ok(results)
}

fn insert_event(
    tx: &rusqlite::Transaction,
    event_id: &str,
    received_at: i64,
    body: &[u8],
    to: &[String],
    now: i64,
) -> Result<Accepted, rusqlite::Error> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO events (event_id, received_at, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (event_id) DO NOTHING RETURNING id",
        )?
        .query_row(params![event_id, received_at, body], |row| {
            row.get::<_, i64>(0)
        })
        .optional()?;
    let Some(event) = inserted else {
        return Ok(Accepted::Duplicate);
    };
    let mut delivery = tx.prepare_cached(
        "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at, updated_at)
         VALUES (?1, ?2, 'pending', 0, ?3, ?3)",
    )?;
    for destination in to {
        delivery.execute(params![event, destination, now])?;
    }
    Ok(Accepted::New {
        deliveries: to.len(),
    })
}

fn record_finish(
    tx: &rusqlite::Transaction,
    id: i64,
    finish: &Finish,
    now: i64,
) -> Result<(), rusqlite::Error> {
    let (state, attempts, due, error) = match finish {
        Finish::Done { attempts } => ("done", attempts, now, None),
        Finish::Retry {
            attempts,
            due,
            error,
        } => ("pending", attempts, *due, Some(error.as_str())),
        Finish::Dead { attempts, error } => ("dead", attempts, now, Some(error.as_str())),
    };
    tx.prepare_cached(
        "UPDATE deliveries SET state = ?1, attempts = ?2, next_attempt_at = ?3,
         last_error = COALESCE(?4, last_error), updated_at = ?5 WHERE id = ?6",
    )?
    .execute(params![state, attempts, due, error, now, id])?;
    Ok(())
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
        let outbox = Outbox::open(&path, &destinations).unwrap();
        let accepted = outbox.accept("e1", 1, b"{}", &destinations).await.unwrap();
        assert_eq!(accepted, Accepted::New { deliveries: 2 });
        assert_eq!(
            outbox.accept("e1", 2, b"{}", &destinations).await.unwrap(),
            Accepted::Duplicate
        );
        let reader = outbox.reader().unwrap();
        let due = reader.due("a", now_ms(), 10).unwrap();
        assert_eq!(due.len(), 1);
        let id = due[0].id;
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
        assert!(reader.due("a", now_ms(), 10).unwrap().is_empty());
        let dead = list(&path, Some("dead"), 10).unwrap();
        assert_eq!(
            (dead.len(), dead[0].last_error.as_deref()),
            (1, Some("HTTP 404"))
        );
        assert_eq!(requeue(&path, Requeue::AllDead).unwrap(), 1);
        assert_eq!(reader.due("a", now_ms(), 10).unwrap().len(), 1);
        outbox.probe().await.unwrap();
    }

    #[test]
    fn refuses_what_is_not_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        assert!(matches!(
            Outbox::open(&junk, &[]),
            Err(StoreError::NotAStore { .. })
        ));
        let newer = dir.path().join("newer.db");
        let conn = Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let error = Outbox::open(&newer, &[]).err().expect("refused");
        assert!(
            error.to_string().contains("newer than this alert-relay"),
            "{error}"
        );
        let dir_as_file = dir.path().to_owned();
        assert!(matches!(
            Outbox::open(&dir_as_file, &[]),
            Err(StoreError::Open { .. })
        ));
        assert!(matches!(
            list(&dir.path().join("none.db"), None, 1),
            Err(StoreError::Missing(_))
        ));
    }
}
