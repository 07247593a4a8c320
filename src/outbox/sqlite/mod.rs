//! The embedded store: SQLite (WAL, `synchronous = FULL`). One writer thread owns the only write
//! connection; writes that arrive while a commit runs are applied together in the next
//! transaction (group commit), so concurrent requests share one fsync. Each worker reads due
//! deliveries through its own read connection.
//!
//! - `schema`: opening, pragmas, versioned migrations.
//! - `writer`: the writer thread and the statements it runs.
//! - `checkpoint`: the thread that copies the write-ahead log into the store, off the writer's path.
//! - `admin`: what `alert-relay deliveries` and `retry` do to the store.
//! - `oauth`: what the OAuth server keeps (its rare writes go through a read connection).
//! - `packed`: how an event's body and normalized form are kept, compressed.
//! - `silences`: the silences every relay on the store applies (written as the OAuth server's).
//! - `lock`: one server per store.

mod admin;
mod checkpoint;
mod lock;
mod oauth;
mod packed;
mod schema;
mod silences;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::Wakers;
use super::writes::{Write, Writer};
use super::{ActionRow, Claim, DeliveryState, RecentEvent, StoreError, StoredBody, display_id};
pub use admin::{list, requeue};
pub use lock::StoreLock;
pub use oauth::{revoke_token, tokens};
use packed::unpack;
pub use schema::SCHEMA_VERSION;
use schema::{connect, left_open, mark_open, migrate, wal_path};
pub use silences::{add_silence, expire_silence, silences};
use writer::write_loop;

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

pub struct Sqlite {
    path: PathBuf,
    /// Where accepts and outcomes go (see [`super::writes`]).
    pub(super) writer: Writer,
    wakers: Arc<Wakers>,
    /// For `/metrics`: pending and dead counts, read at scrape time.
    stats: Arc<Mutex<Connection>>,
    /// The last server did not close the store: it stopped during its attempts in flight.
    pub(super) crashed: bool,
}

impl Sqlite {
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
        // A store this relay made is never empty: an empty file is one cut short (or not the
        // store), and taking it for a new store would forget every event it held.
        if existed && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::NotAStore {
                path: path.to_owned(),
                reason: "the file is empty (0 bytes), where a store is never empty: it may have \
                         been truncated; move it away to start a new store"
                    .into(),
            });
        }
        let wal_existed = wal_path(path).exists();
        let mut conn = connect(path, true)?;
        migrate(&mut conn, path)?;
        let crashed = existed && left_open(&conn)?;
        if crashed && !wal_existed {
            tracing::error!(
                store = %path.display(),
                log = %wal_path(path).display(),
                "the store's write-ahead log is missing although the last server did not close the store (a crash, then the -wal file deleted or not copied with the store): events it accepted since its last checkpoint may be lost"
            );
        }
        mark_open(&conn, true)?;
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        checkpoint::start(&mut conn, path)?;
        let wakers: Arc<Wakers> = Arc::default();
        let (writer, queue) = Writer::new();
        let thread_wakers = wakers.clone();
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || write_loop(conn, queue, &thread_wakers))
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            crashed,
            path: path.to_owned(),
            writer,
            wakers,
            stats: Arc::new(Mutex::new(connect(path, false)?)),
        })
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
        self.writer.probe().await
    }

    /// Marks the store closed (see `schema::mark_open`); the server's last write.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.writer.send(|reply| Write::Close { reply }).await
    }

    /// Forgets deliveries done or dead before `before` (unix ms), and events with none left; how
    /// many went (deliveries, or events where there were more of those). Works in small
    /// transactions, each queued behind the writes waiting, so that accepting never stalls
    /// behind a long prune.
    pub async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let rows = self
                .writer
                .send(|reply| Write::Prune { before, reply })
                .await?;
            total += rows;
            if rows < writer::PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// `(destination, pending, dead)` for each of `destinations`. Each count walks only its own
    /// range of the `deliveries_due` index, so the time does not grow with the deliveries done.
    pub async fn backlog(
        &self,
        destinations: Vec<String>,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            let mut statement = conn.prepare_cached(BACKLOG)?;
            let mut counts = Vec::with_capacity(destinations.len());
            for name in destinations {
                let (mut pending, mut dead) = (0, 0);
                let mut rows = statement.query(params![name])?;
                while let Some(row) = rows.next()? {
                    match row.get::<_, DeliveryState>(0)? {
                        DeliveryState::Pending => pending = row.get(1)?,
                        DeliveryState::Dead => dead = row.get(1)?,
                        _ => {}
                    }
                }
                counts.push((name, pending, dead));
            }
            Ok(counts)
        })
        .await
    }

    pub async fn open_groups(&self) -> Result<i64, StoreError> {
        off_runtime(&self.stats, |conn| {
            Ok(conn
                .prepare_cached("SELECT COUNT(*) FROM alert_groups WHERE ended_at IS NULL")?
                .query_row([], |row| row.get(0))?)
        })
        .await
    }

    pub async fn alert_event(&self, correlation: String) -> Result<Option<String>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            let normalized = conn
                .prepare_cached(
                    "SELECT body, normalized, packed FROM events WHERE correlation = ?1
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![correlation], |row| {
                    unpack(row.get(0)?, row.get(1)?, row.get(2)?)
                })
                .optional()?;
            Ok(normalized.and_then(|(_, normalized)| normalized))
        })
        .await
    }

    pub async fn actions(&self, correlation: String) -> Result<Vec<ActionRow>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT a.correlation, a.destination, a.action, a.user_id, a.user_name, a.at,
                     a.silence, a.until_cleared, s.ends_at
                 FROM alert_actions a LEFT JOIN silences s ON s.id = a.silence
                 WHERE a.correlation = ?1 ORDER BY a.at, a.key",
            )?;
            let rows = statement.query_map(params![correlation], |row| {
                Ok(ActionRow {
                    correlation: row.get(0)?,
                    destination: row.get(1)?,
                    action: row.get(2)?,
                    user_id: row.get(3)?,
                    user_name: row.get(4)?,
                    at: row.get(5)?,
                    silence: row.get(6)?,
                    until_cleared: row.get(7)?,
                    silence_ends_at: row.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The last `limit` events accepted, newest first (for the template studio).
    pub async fn recent_events(&self, limit: usize) -> Result<Vec<RecentEvent>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, event_id, received_at, body, normalized, packed FROM events
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = statement.query_map(params![limit as i64], |row| {
                Ok(RecentEvent {
                    id: row.get(0)?,
                    event_id: display_id(row.get(1)?),
                    received_at: row.get(2)?,
                    normalized: unpack(row.get(3)?, row.get(4)?, row.get(5)?)?.1,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The body of the stored event `id` (see [`RecentEvent`]) and its normalized form, if it
    /// is still kept.
    pub async fn event_body(&self, id: i64) -> Result<Option<StoredBody>, StoreError> {
        off_runtime(&self.stats, move |conn| {
            Ok(conn
                .prepare_cached("SELECT body, normalized, packed FROM events WHERE id = ?1")?
                .query_row(params![id], |row| {
                    unpack(row.get(0)?, row.get(1)?, row.get(2)?)
                })
                .optional()?)
        })
        .await
    }

    /// A read connection for one worker.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        let conn = connect(&self.path, false)?;
        // A worker reads the head of its destination's queue and one event at a time: a small
        // cache holds that, where SQLite's default of 2 MB per connection adds up over many
        // destinations.
        conn.pragma_update(None, "cache_size", READER_CACHE_KIB)
            .map_err(|e| StoreError::Open {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        Ok(Reader {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Completes when something changed for `destination` (a new delivery, a finished attempt).
    pub async fn changed(&self, destination: &str) {
        let waker = self.wakers.get(destination);
        waker.notified().await;
    }
}

/// Runs `query` on `conn` on a thread of the blocking pool: SQLite calls block, and the runtime's
/// threads serve requests.
async fn off_runtime<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || query(&conn.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .map_err(|_| StoreError::Closed)?
}

// A worker runs the first two for every few deliveries, a scrape the third for every destination.
// `+?1`, not `?1`: SQLite propagates a column's equality to a bound parameter into the rest of a
// query ordered by another column, and then
// prepares the statement again each time that parameter is bound (once per call, as much work
// as the query itself). The unary plus stops that propagation; the index is used all the same.
// `LIMIT +?4` likewise: a bare parameter there is read by the planner, and prepared again.
//
// A clear, or a refresh of a message, waits while anything of its alert queued before it (its
// trigger; for a group's later notification, the earlier ones; an earlier refresh) waits for the
// same destination (a reply needs the trigger's message, and an update must not be overtaken by
// an older one); it comes with what the destination kept of that message.
const NEXT_DUE: &str = "SELECT d.id, d.attempts, e.event_id, e.received_at, e.body,
         th.thread, th.trigger_summary, e.normalized, d.silenced_by, d.refresh, e.packed
     FROM deliveries d JOIN events e ON e.id = d.event
     LEFT JOIN threads th ON (e.phase = 'clear' OR d.refresh = 1)
         AND th.destination = d.destination
         AND th.correlation = e.correlation
     WHERE d.destination = +?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
       AND d.id NOT IN (SELECT value FROM json_each(?3))
       AND NOT ((e.phase = 'clear' OR d.refresh = 1) AND EXISTS (
           SELECT 1 FROM events te JOIN deliveries t ON t.event = te.id
           WHERE te.correlation = e.correlation AND te.id <= e.id AND t.id < d.id
             AND t.destination = d.destination AND t.state = 'pending'))
     ORDER BY d.next_attempt_at, d.id LIMIT +?4";
const BACKLOG: &str = "SELECT state, COUNT(*) FROM deliveries
     WHERE destination = +?1 AND state IN ('pending', 'dead') GROUP BY state";
const NEXT_DUE_AT: &str =
    "SELECT MIN(next_attempt_at) FROM deliveries WHERE destination = +?1 AND state = 'pending'";

/// The page cache of the writer, in KiB (negative, as SQLite takes it).
const WRITER_CACHE_KIB: i64 = -16384;

/// The page cache of a worker's read connection, in KiB (as SQLite takes it: negative).
const READER_CACHE_KIB: i64 = -256;

/// A worker's read connection; its queries run off the runtime's threads.
pub struct Reader {
    conn: Arc<Mutex<Connection>>,
}

impl Reader {
    /// Up to `limit` deliveries for `destination` due at `now` (unix ms), the first due first,
    /// leaving out the ids in `in_flight`. Only those rows' bodies are read.
    pub async fn due(
        &self,
        destination: &str,
        now: i64,
        in_flight: Vec<i64>,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        let destination = destination.to_owned();
        off_runtime(&self.conn, move |conn| {
            let mut statement = conn.prepare_cached(NEXT_DUE)?;
            let in_flight = serde_json::to_string(&in_flight).unwrap_or_else(|_| "[]".into());
            let claims = statement
                .query_map(params![destination, now, in_flight, limit as i64], |row| {
                    let attempts: u32 = row.get(1)?;
                    let (body, normalized) = unpack(row.get(4)?, row.get(7)?, row.get(10)?)?;
                    Ok(Claim {
                        id: row.get(0)?,
                        attempts,
                        unsure: attempts > 0,
                        event_id: display_id(row.get(2)?),
                        received_at: row.get(3)?,
                        body,
                        normalized,
                        thread: match (row.get(5)?, row.get(6)?) {
                            (Some(thread), Some(trigger)) => Some((thread, trigger)),
                            _ => None,
                        },
                        silenced_by: row.get(8)?,
                        refresh: row.get(9)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(claims)
        })
        .await
    }

    /// When the next pending delivery for `destination` is due (unix ms), if there is one.
    pub async fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        let destination = destination.to_owned();
        off_runtime(&self.conn, move |conn| {
            let mut statement = conn.prepare_cached(NEXT_DUE_AT)?;
            Ok(statement.query_row(params![destination], |row| row.get(0))?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Accepted, NewEvent, Outbox, now_ms};

    #[tokio::test]
    async fn keys_stored_by_schema_1_still_deduplicate() {
        // Schema 2 quoted the key as JSON text, schema 5 put its source in front: a relay of
        // schema 1 kept `49-35541` from the one ThousandEyes source.
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
                .accept(NewEvent {
                    received_at: 2,
                    ..NewEvent::for_test("thousandeyes:\"49-35541\"", &["a"])
                })
                .await
                .unwrap(),
            Accepted::Duplicate
        );
    }

    #[tokio::test]
    async fn events_stored_before_packing_are_still_sent_and_new_ones_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema7.db");
        let conn = Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute(
            "INSERT INTO events (id, event_id, received_at, body, normalized)
             VALUES (1, 'thousandeyes:\"old\"', 1, CAST('{\"eventId\": \"old\"}' AS BLOB),
                     '{\"id\": \"old\"}')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO deliveries (event, destination, state, next_attempt_at, updated_at)
             VALUES (1, 'a', 'pending', 0, 0)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        drop(conn);
        let outbox = Outbox::open(&path).unwrap();
        outbox
            .accept(NewEvent {
                body: b"{\"eventId\": \"new\"}".to_vec(),
                normalized: Some("{\"id\": \"new\"}".into()),
                received_at: 2,
                ..NewEvent::for_test("thousandeyes:\"new\"", &["a"])
            })
            .await
            .unwrap();
        let claims = outbox
            .reader()
            .unwrap()
            .due("a", now_ms(), Vec::new(), 10, true)
            .await
            .unwrap();
        let read: Vec<(String, Option<String>)> = claims
            .into_iter()
            .map(|c| (String::from_utf8(c.body).unwrap(), c.normalized))
            .collect();
        assert_eq!(
            read,
            [
                (
                    r#"{"eventId": "old"}"#.to_owned(),
                    Some(r#"{"id": "old"}"#.to_owned())
                ),
                (
                    r#"{"eventId": "new"}"#.to_owned(),
                    Some(r#"{"id": "new"}"#.to_owned())
                ),
            ]
        );
        let conn = connect(&path, false).unwrap();
        let packed: Vec<Option<i64>> = conn
            .prepare("SELECT packed FROM events ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            packed,
            [None, Some(18)],
            "the new event is packed, the old one not"
        );
    }

    #[tokio::test]
    async fn keys_stored_by_schema_4_take_their_source_from_the_normalized_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        for migration in &schema::MIGRATIONS[..4] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute(
            "INSERT INTO events (event_id, received_at, body, normalized)
             VALUES ('alertmanager:f1:firing:t', 1, '{}', '{\"source\":{\"name\":\"prom\",\"kind\":\"alertmanager\"}}')",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 4).unwrap();
        drop(conn);
        let outbox = Outbox::open(&path).unwrap();
        let accept = |key: &'static str| {
            outbox.accept(NewEvent {
                received_at: 2,
                ..NewEvent::for_test(key, &["a"])
            })
        };
        assert_eq!(
            accept("prom:alertmanager:f1:firing:t").await.unwrap(),
            Accepted::Duplicate
        );
        assert!(matches!(
            accept("other:alertmanager:f1:firing:t").await.unwrap(),
            Accepted::New { .. }
        ));
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
        // An empty file is refused by name (a new store is made only where there is none).
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let error = Outbox::open(&empty).err().expect("refused").to_string();
        assert!(
            error.contains("empty.db") && error.contains("empty (0 bytes)"),
            "{error}"
        );
        assert!(
            Outbox::open(&dir.path().join("new.db")).is_ok(),
            "a new one"
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

    #[tokio::test]
    async fn the_log_is_copied_into_a_new_store_of_4_kib_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.db");
        let outbox = Outbox::open(&path).unwrap();
        let conn = connect(&path, false).unwrap();
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .unwrap();
        assert_eq!(page_size, 4096);
        let stored_before = std::fs::metadata(&path).unwrap().len();
        // About 2,400 pages of log: past the 1,000 at which the checkpoint thread is asked.
        // Bodies that do not compress, so that packing keeps them this size.
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..1200 {
            outbox
                .accept(NewEvent {
                    body: std::iter::repeat_with(|| rng.u8(..)).take(7000).collect(),
                    ..NewEvent::for_test(&format!("\"{i}\""), &["a"])
                })
                .await
                .unwrap();
        }
        // The thread copies the log into the store file while no one writes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() < stored_before + 1000 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was never copied into the store"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let events: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(events, 1200);
    }

    #[tokio::test]
    async fn a_workers_queries_are_prepared_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prepared.db");
        let outbox = Outbox::open(&path).unwrap();
        outbox
            .accept(NewEvent::for_test("\"e\"", &["a"]))
            .await
            .unwrap();
        let conn = connect(&path, false).unwrap();
        for (sql, params) in [
            (NEXT_DUE, params!["a", now_ms(), "[]", 1].to_vec()),
            (NEXT_DUE_AT, params!["a"].to_vec()),
            (BACKLOG, params!["a"].to_vec()),
        ] {
            for _ in 0..3 {
                let mut statement = conn.prepare_cached(sql).unwrap();
                statement.query_row(&*params, |_| Ok(())).unwrap();
                assert_eq!(
                    statement.get_status(rusqlite::StatementStatus::RePrepare),
                    0,
                    "prepared again: {sql}"
                );
            }
        }
    }

    #[test]
    fn what_runs_every_poll_never_reads_a_whole_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.db");
        drop(Outbox::open(&path).unwrap());
        let conn = connect(&path, false).unwrap();
        for sql in [writer::UNTIL_CLEARED, NEXT_DUE, NEXT_DUE_AT, BACKLOG] {
            let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = std::iter::repeat_n(rusqlite::types::Null, plan.parameter_count());
            let steps: Vec<String> = plan
                .query_map(rusqlite::params_from_iter(unbound), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // Scanned whole: the actions people took (`a`) and a parameter's JSON list; never
            // the tables that grow with every alert.
            for step in &steps {
                let whole = step.starts_with("SCAN") && !step.contains("USING");
                assert!(
                    !whole || step == "SCAN a" || step.starts_with("SCAN json_each"),
                    "reads a whole table ({step}): {sql}"
                );
            }
        }
    }
}
