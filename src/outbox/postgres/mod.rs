//! The PostgreSQL store, for several relays on one database. The same promises as the SQLite
//! store, across replicas:
//!
//! - Accepting answers only after the commit; requests waiting while a commit runs share the next
//!   one (a writer task batches them into one transaction, as the SQLite writer thread does).
//! - Dedup on the event key is a unique index, so a re-post landing on another replica is a
//!   duplicate there too.
//! - A claim takes the due row `FOR UPDATE SKIP LOCKED` and leases it (`lease_until`): another
//!   replica skips it while the lease runs, and takes it once the lease has ended without an
//!   outcome (its replica died). At least once: only attempts in flight at a crash repeat.
//! - One replica at a time drives each destination: the one holding the destination's advisory
//!   lock claims its deliveries, so that its pacing and its pauses after a `Retry-After` hold for
//!   the destination as a whole (a shared token bucket would need a write per message). The lock
//!   is held by a connection of its own; when that replica dies, its connection closes, the lock
//!   goes, and another replica's worker takes it at its next look (`storage.poll`).
//! - Migrations run under an advisory lock, so replicas starting together migrate once; a prune
//!   runs on the replica that gets the prune lock, the others skip it.
//! - A database that does not answer fails a request within [`WAIT`], not after a pool's
//!   default 30 s: the server answers 503 and workers back off.
//! - The OAuth server's key, tokens and codes (`oauth`) are shared by every replica: a code issued
//!   on one is taken once, on whichever replica the token request lands.

mod oauth;
mod silences;

pub use oauth::{revoke_token, tokens};
pub use silences::{add_silence, expire_silence, silences};

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Timeouts};
use tokio::sync::mpsc;

use super::disposition::{Disposition, Row, Trigger, disposition};
use super::writes::{Applied, Write, Writer, answer};
use super::{
    Accepted, ActionRow, BuildNotification, Claim, DeliveryRow, DeliveryState, DueGroup,
    FLUSH_BATCH, Finish, Joining, Member, NewAction, NewEvent, RecentEvent, Requeue, StoreError,
    StoredBody, Wakers, display_id, now_ms,
};

use crate::secret::Secret;

/// Longest wait for a connection, or for the database to answer a statement.
pub const WAIT: Duration = Duration::from_secs(3);
/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 512;
/// Rows one prune transaction deletes at most.
const PRUNE_BATCH: i64 = 1000;
/// Advisory lock keys: migrations, and pruning.
const MIGRATE_LOCK: i64 = 0x616c_6572_7401;
const PRUNE_LOCK: i64 = 0x616c_6572_7402;
/// Advisory lock class of the destinations: `(DRIVE_CLASS, hashtext(name))`.
const DRIVE_CLASS: i32 = 0x616c_7201;

/// The schema this version writes; a database with a newer one is refused.
pub const SCHEMA_VERSION: i64 = 5;

const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        received_at BIGINT NOT NULL,
        body BYTEA NOT NULL,
        correlation TEXT,
        phase TEXT CHECK (phase IN ('trigger', 'clear'))
    );
    CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        event BIGINT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        destination TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT,
        updated_at BIGINT NOT NULL,
        lease_until BIGINT
    );
    CREATE INDEX deliveries_due ON deliveries (destination, state, next_attempt_at);
    CREATE INDEX deliveries_event ON deliveries (event);
    CREATE INDEX events_received ON events (received_at);
    CREATE INDEX events_correlation ON events (correlation);
    CREATE TABLE threads (
        destination TEXT NOT NULL,
        correlation TEXT NOT NULL,
        thread TEXT NOT NULL,
        trigger_summary TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (destination, correlation)
    );
    CREATE INDEX threads_created ON threads (created_at);
",
    // Sources and the OAuth server (see SQLite's migration 4). The due index ends with the id, as
    // the claim orders: without it PostgreSQL sorted every pending row of a destination for each
    // claim (23 ms at a backlog of 11,000, against 0.2 ms).
    "
    DROP INDEX deliveries_due;
    CREATE INDEX deliveries_due ON deliveries (destination, state, next_attempt_at, id);
    ALTER TABLE events ADD COLUMN normalized TEXT;
    CREATE TABLE alert_relay_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE oauth_tokens (
        id TEXT PRIMARY KEY,
        client TEXT NOT NULL,
        operator TEXT,
        grant_type TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE TABLE oauth_codes (
        hash TEXT PRIMARY KEY,
        client TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        operator TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
",
    // Dedup keys are per source (see SQLite's migration 5).
    "UPDATE events SET event_id =
         COALESCE(normalized::json -> 'source' ->> 'name', 'thousandeyes') || ':' || event_id;",
    // Noise control (see SQLite's migration 6).
    "
    ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
        CHECK (state IN ('pending', 'done', 'dead', 'silenced', 'flapped', 'grouped'));
    ALTER TABLE deliveries ADD COLUMN silenced_by TEXT,
        ADD COLUMN unsilence BOOLEAN NOT NULL DEFAULT false,
        ADD COLUMN held BOOLEAN NOT NULL DEFAULT false,
        ADD COLUMN grp BIGINT;
    CREATE INDEX deliveries_unsilence ON deliveries (silenced_by) WHERE unsilence;
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at BIGINT NOT NULL,
        ends_at BIGINT NOT NULL,
        comment TEXT NOT NULL,
        created_by TEXT,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    CREATE TABLE alert_groups (
        id BIGSERIAL PRIMARY KEY,
        destination TEXT NOT NULL,
        key TEXT NOT NULL,
        labels TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        interval_ms BIGINT NOT NULL,
        flush_at BIGINT,
        flushed_at BIGINT,
        notifications INTEGER NOT NULL DEFAULT 0,
        ended_at BIGINT
    );
    CREATE UNIQUE INDEX alert_groups_open ON alert_groups (destination, key)
        WHERE ended_at IS NULL;
    CREATE INDEX alert_groups_flush ON alert_groups (flush_at) WHERE flush_at IS NOT NULL;
    CREATE INDEX alert_groups_ended ON alert_groups (ended_at) WHERE ended_at IS NOT NULL;
    CREATE TABLE alert_group_members (
        grp BIGINT NOT NULL REFERENCES alert_groups(id) ON DELETE CASCADE,
        correlation TEXT NOT NULL,
        firing BOOLEAN NOT NULL,
        summary TEXT NOT NULL,
        joined_at BIGINT NOT NULL,
        changed_at BIGINT NOT NULL,
        notified BOOLEAN,
        PRIMARY KEY (grp, correlation)
    );
",
    // See the SQLite store's schema 7: what people did from a message, and refresh deliveries.
    "
    CREATE TABLE alert_actions (
        key TEXT PRIMARY KEY,
        correlation TEXT NOT NULL,
        destination TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        at BIGINT NOT NULL,
        silence TEXT,
        until_cleared BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX alert_actions_alert ON alert_actions (correlation, at);
    ALTER TABLE deliveries ADD COLUMN refresh BOOLEAN NOT NULL DEFAULT false;
",
];

pub struct Postgres {
    pool: Pool,
    /// Where accepts and the rest go (see [`super::writes`]).
    pub(super) writer: Writer,
    /// Where outcomes go (see [`outcome_loop`]).
    pub(super) outcomes: Writer,
    wakers: Arc<Wakers>,
    /// How long a claim keeps other replicas off a delivery.
    lease: Duration,
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`; `sslmode=require`
    /// for TLS) and migrates it under an advisory lock. `lease` is how long a claim holds.
    pub async fn connect(url: &Secret, lease: Duration) -> Result<Self, StoreError> {
        let (config, tls) = client_config(url)?;
        let manager = Manager::from_connect(
            config,
            OnRuntime {
                tls,
                runtime: tokio::runtime::Handle::current(),
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .config(PoolConfig {
                max_size: 16,
                timeouts: Timeouts {
                    wait: Some(WAIT),
                    create: Some(WAIT),
                    recycle: Some(WAIT),
                },
                ..PoolConfig::default()
            })
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        migrate(&pool).await?;
        let wakers: Arc<Wakers> = Arc::default();
        let (writer, queue) = Writer::new();
        tokio::spawn(write_loop(pool.clone(), queue, wakers.clone()));
        let (outcomes, queue) = Writer::new();
        tokio::spawn(outcome_loop(pool.clone(), queue, wakers.clone()));
        tokio::spawn(listen(url.clone(), Arc::downgrade(&wakers)));
        Ok(Self {
            pool,
            writer,
            outcomes,
            wakers,
            lease,
        })
    }

    /// A small write commits: the database is there and takes writes.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.writer.probe().await
    }

    /// Deletes what is finished and older than `before`, 1,000 rows per transaction, on the one
    /// replica that holds the prune lock; the others skip (and return 0).
    pub async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut conn = self.connection().await?;
            let tx = conn.transaction().await.map_err(pg)?;
            let locked: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
                .await
                .map_err(pg)?
                .get(0);
            if !locked {
                return Ok(total);
            }
            let deliveries = tx
                .execute(
                    "DELETE FROM deliveries WHERE id IN (
                         SELECT id FROM deliveries
                         WHERE state IN ('done', 'dead', 'flapped', 'grouped', 'silenced')
                           AND NOT unsilence AND updated_at < $1
                         ORDER BY id LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await
                .map_err(pg)?;
            let events = tx
                .execute(
                    "DELETE FROM events WHERE id IN (
                         SELECT id FROM events e WHERE received_at < $1
                         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = e.id)
                         ORDER BY received_at LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await
                .map_err(pg)?;
            let threads = tx
                .execute(
                    "DELETE FROM threads WHERE (destination, correlation) IN (
                         SELECT destination, correlation FROM threads WHERE created_at < $1
                         ORDER BY created_at LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await
                .map_err(pg)?;
            let groups = tx
                .execute(
                    "DELETE FROM alert_groups WHERE id IN (
                         SELECT id FROM alert_groups WHERE ended_at < $1
                         ORDER BY ended_at LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await
                .map_err(pg)?;
            let silences = tx
                .execute(
                    "DELETE FROM silences WHERE id IN (
                         SELECT id FROM silences WHERE ends_at < $1 ORDER BY ends_at LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            let most = [deliveries, events, threads, groups, silences]
                .into_iter()
                .max()
                .unwrap_or(0) as usize;
            total += most;
            if (most as i64) < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// See `Outbox::flush_groups`. The due groups are locked (`FOR UPDATE SKIP LOCKED`): a
    /// replica flushing at the same time takes others, and an accept that changes one waits
    /// for this commit, its change sent at the group's next notification.
    pub async fn flush_groups(&self, build: BuildNotification) -> Result<usize, StoreError> {
        let mut conn = self.connection().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let now = now_ms();
        let due = tx
            .query(
                "SELECT id, destination, key, labels, started_at, notifications FROM alert_groups
                 WHERE flush_at <= $1 AND ended_at IS NULL ORDER BY flush_at LIMIT $2
                 FOR UPDATE SKIP LOCKED",
                &[&now, &(FLUSH_BATCH as i64)],
            )
            .await
            .map_err(pg)?;
        let mut destinations = Vec::with_capacity(due.len());
        for row in due {
            let mut group = DueGroup {
                id: row.get(0),
                destination: row.get(1),
                key: row.get(2),
                labels: row.get(3),
                started_at: row.get(4),
                notifications: i64::from(row.get::<_, i32>(5)),
                members: Vec::new(),
            };
            group.members = tx
                .query(
                    "SELECT correlation, firing, summary, joined_at, changed_at, notified
                     FROM alert_group_members WHERE grp = $1",
                    &[&group.id],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|row| Member {
                    correlation: row.get(0),
                    firing: row.get(1),
                    summary: row.get(2),
                    joined_at: row.get(3),
                    changed_at: row.get(4),
                    notified: row.get(5),
                })
                .collect();
            let notification = build(&group, now);
            let number = group.notifications + 1;
            let phase = if number == 1 { "trigger" } else { "clear" };
            let event: i64 = tx
                .query_one(
                    "INSERT INTO events (event_id, received_at, body, normalized, correlation,
                         phase)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[
                        &format!("group:{}:{number}", group.id),
                        &now,
                        &notification.body,
                        &notification.normalized,
                        &format!("group:{}", group.id),
                        &phase,
                    ],
                )
                .await
                .map_err(pg)?
                .get(0);
            tx.execute(
                "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
                     updated_at, grp)
                 VALUES ($1, $2, 'pending', 0, $3, $3, $4)",
                &[&event, &group.destination, &now, &group.id],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "UPDATE alert_group_members SET notified = firing WHERE grp = $1",
                &[&group.id],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "UPDATE alert_groups SET flush_at = NULL, flushed_at = $2::BIGINT,
                     notifications = $3,
                     ended_at = CASE WHEN EXISTS (SELECT 1 FROM alert_group_members
                                                  WHERE grp = $1 AND firing)
                                     THEN NULL ELSE $2::BIGINT END
                 WHERE id = $1",
                &[&group.id, &now, &(number as i32)],
            )
            .await
            .map_err(pg)?;
            destinations.push(group.destination);
        }
        notify(
            &tx,
            &destinations.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await?;
        in_time("commit", tx.commit()).await?;
        for destination in &destinations {
            self.wakers.get(destination).notify_one();
        }
        Ok(destinations.len())
    }

    pub async fn backlog(
        &self,
        destinations: Vec<String>,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let conn = self.connection().await?;
        let statement = conn
            .prepare_cached(
                "SELECT state, COUNT(*) FROM deliveries
                 WHERE destination = $1 AND state IN ('pending', 'dead') GROUP BY state",
            )
            .await
            .map_err(pg)?;
        let mut counts = Vec::with_capacity(destinations.len());
        for name in destinations {
            let (mut pending, mut dead) = (0, 0);
            for row in conn.query(&statement, &[&name]).await.map_err(pg)? {
                let state: &str = row.get(0);
                match state {
                    "pending" => pending = row.get(1),
                    "dead" => dead = row.get(1),
                    _ => {}
                }
            }
            counts.push((name, pending, dead));
        }
        Ok(counts)
    }

    pub async fn alert_event(&self, correlation: &str) -> Result<Option<String>, StoreError> {
        let conn = self.connection().await?;
        let row = conn
            .query_opt(
                "SELECT normalized FROM events WHERE correlation = $1 ORDER BY id DESC LIMIT 1",
                &[&correlation],
            )
            .await
            .map_err(pg)?;
        Ok(row.and_then(|row| row.get(0)))
    }

    pub async fn actions(&self, correlation: &str) -> Result<Vec<ActionRow>, StoreError> {
        let conn = self.connection().await?;
        let rows = conn
            .query(
                "SELECT a.correlation, a.destination, a.action, a.user_id, a.user_name, a.at,
                     a.silence, a.until_cleared, s.ends_at
                 FROM alert_actions a LEFT JOIN silences s ON s.id = a.silence
                 WHERE a.correlation = $1 ORDER BY a.at, a.key",
                &[&correlation],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| ActionRow {
                correlation: row.get(0),
                destination: row.get(1),
                action: row.get(2),
                user_id: row.get(3),
                user_name: row.get(4),
                at: row.get(5),
                silence: row.get(6),
                until_cleared: row.get(7),
                silence_ends_at: row.get(8),
            })
            .collect())
    }

    pub async fn open_groups(&self) -> Result<i64, StoreError> {
        let conn = self.connection().await?;
        let row = conn
            .query_one(
                "SELECT COUNT(*) FROM alert_groups WHERE ended_at IS NULL",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    pub async fn recent_events(&self, limit: usize) -> Result<Vec<RecentEvent>, StoreError> {
        let conn = self.connection().await?;
        let rows = conn
            .query(
                "SELECT id, event_id, received_at, normalized FROM events ORDER BY id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| RecentEvent {
                id: row.get(0),
                event_id: display_id(row.get(1)),
                received_at: row.get(2),
                normalized: row.get(3),
            })
            .collect())
    }

    pub async fn event_body(&self, id: i64) -> Result<Option<StoredBody>, StoreError> {
        let conn = self.connection().await?;
        let row = conn
            .query_opt("SELECT body, normalized FROM events WHERE id = $1", &[&id])
            .await
            .map_err(pg)?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    pub fn reader(&self) -> Reader {
        Reader {
            pool: self.pool.clone(),
            lease: self.lease,
            own: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn changed(&self, destination: &str) {
        self.wakers.get(destination).notified().await;
    }

    async fn connection(&self) -> Result<deadpool_postgres::Object, StoreError> {
        connection(&self.pool).await
    }
}

/// The connection settings `url` names, and the TLS it asks for: with `sslmode=require`,
/// verified against the platform's roots; without `sslmode`, plain TCP (libpq would try TLS first
/// and accept any certificate, which verifies nothing).
fn client_config(
    url: &Secret,
) -> Result<
    (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    StoreError,
> {
    let mut config: tokio_postgres::Config = url
        .expose()
        .parse()
        .map_err(|e| StoreError::Postgres(format!("storage.url is not a PostgreSQL URL: {e}")))?;
    if !url.expose().contains("sslmode=") {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::tls::client_config());
    Ok((config, tls))
}

/// Makes the pool's connections on the runtime that opened the store (the server's), whoever
/// asks for one: a connection that a delivery worker happened to open would otherwise live on the
/// delivery threads, whose priority is lower, and slow the accepts that use it after.
struct OnRuntime {
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    runtime: tokio::runtime::Handle,
}

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        (tokio_postgres::Client, tokio::task::JoinHandle<()>),
                        tokio_postgres::Error,
                    >,
                > + Send
                + '_,
        >,
    > {
        let (config, tls, runtime) = (config.clone(), self.tls.clone(), self.runtime.clone());
        Box::pin(async move {
            let there = (config.clone(), tls.clone());
            let connected = runtime
                .spawn(async move { there.0.connect(there.1).await })
                .await;
            let (client, connection) = match connected {
                Ok(connected) => connected?,
                // That runtime is shutting down: connect here.
                Err(_) => config.connect(tls).await?,
            };
            let task = runtime.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "a PostgreSQL connection failed");
                }
            });
            Ok((client, task))
        })
    }
}

/// One connection for a command (`deliveries`, `retry`), without a pool.
async fn connect_once(url: &Secret) -> Result<tokio_postgres::Client, StoreError> {
    let (config, tls) = client_config(url)?;
    let (client, connection) = in_time("answer", config.connect(tls)).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// See [`crate::outbox::list`].
pub async fn list(
    url: &Secret,
    state: Option<DeliveryState>,
    limit: usize,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let client = connect_once(url).await?;
    let state = state.map(DeliveryState::as_str);
    let rows = client
        .query(
            "SELECT d.id, e.event_id, d.destination, d.state, d.attempts, d.next_attempt_at, d.last_error
             FROM deliveries d JOIN events e ON e.id = d.event
             WHERE $1::TEXT IS NULL OR d.state = $1
             ORDER BY d.id DESC LIMIT $2",
            &[&state, &(limit as i64)],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryRow {
                id: row.get(0),
                event_id: display_id(row.get(1)),
                destination: row.get(2),
                state: row
                    .get::<_, &str>(3)
                    .parse()
                    .map_err(StoreError::Postgres)?,
                attempts: row.get::<_, i32>(4) as u32,
                next_attempt_at: row.get(5),
                last_error: row.get(6),
            })
        })
        .collect()
}

/// See [`crate::outbox::requeue`].
pub async fn requeue(url: &Secret, which: Requeue) -> Result<usize, StoreError> {
    let client = connect_once(url).await?;
    let now = now_ms();
    let changed =
        match which {
            Requeue::One(id) => client
                .execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1,
                     updated_at = $1, lease_until = NULL WHERE id = $2 AND state != 'pending'",
                    &[&now, &id],
                )
                .await,
            Requeue::AllDead => client
                .execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1,
                     updated_at = $1, lease_until = NULL WHERE state = 'dead'",
                    &[&now],
                )
                .await,
        }
        .map_err(pg)?;
    Ok(changed as usize)
}

async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))
}

/// The error as PostgreSQL said it: its SQLSTATE and message, not only "db error".
fn pg(error: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    match error.as_db_error() {
        Some(db) => {
            let said = format!("{} ({})", db.message(), db.code().code());
            match *db.code() {
                SqlState::T_R_DEADLOCK_DETECTED | SqlState::T_R_SERIALIZATION_FAILURE => {
                    StoreError::Conflict(said)
                }
                _ => StoreError::Postgres(said),
            }
        }
        None => StoreError::Postgres(error.to_string()),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        pg(error)
    }
}

/// `work`, or [`StoreError::Unavailable`] when PostgreSQL has not answered (`what`: "answer",
/// "commit") within [`WAIT`].
async fn in_time<T, E>(
    what: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreError>
where
    StoreError: From<E>,
{
    match tokio::time::timeout(WAIT, work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(StoreError::Unavailable(format!(
            "PostgreSQL did not {what} in time"
        ))),
    }
}

/// A connection taken out of the pool for one task of its own (a worker's claims, the outcome
/// writer): its commits do not wait for the disk, which no other user of the pool may inherit,
/// and its statements are planned once (each is written for one use).
async fn own_connection(pool: &Pool) -> Result<deadpool_postgres::ClientWrapper, StoreError> {
    let client = deadpool_postgres::Object::take(connection(pool).await?);
    in_time(
        "answer",
        client.batch_execute(
            "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan",
        ),
    )
    .await?;
    Ok(client)
}

async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut conn = connection(pool).await?;
    let tx = conn.transaction().await.map_err(pg)?;
    // Held until the commit: replicas starting together migrate one after the other.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS alert_relay_schema (version BIGINT NOT NULL);
         INSERT INTO alert_relay_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM alert_relay_schema);",
    )
    .await
    .map_err(pg)?;
    let version: i64 = tx
        .query_one("SELECT version FROM alert_relay_schema", &[])
        .await
        .map_err(pg)?
        .get(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::Postgres(format!(
            "the database has schema version {version}, newer than this alert-relay understands ({SCHEMA_VERSION})"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "UPDATE alert_relay_schema SET version = $1",
            &[&(from as i64 + 1)],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

/// The writer task: takes every write waiting, applies them in one transaction, commits, then
/// answers each caller and wakes this replica's workers concerned.
async fn write_loop(pool: Pool, mut queue: mpsc::Receiver<Write>, wakers: Arc<Wakers>) {
    while let Some(first) = queue.recv().await {
        let batch = take_batch(first, &mut queue);
        // Two replicas' batches may want the same groups' rows in turn: PostgreSQL then gives
        // one up, which goes again.
        let mut applied = apply(&pool, &batch).await;
        for _ in 0..CONFLICT_RETRIES {
            match &applied {
                Err(StoreError::Conflict(why)) => {
                    tracing::debug!(error = %why, "a write batch met another replica's; again");
                    applied = apply(&pool, &batch).await;
                }
                _ => break,
            }
        }
        answer(batch, applied, &wakers);
    }
}

/// `first` and every write waiting behind it, up to [`MAX_BATCH`].
fn take_batch(first: Write, queue: &mut mpsc::Receiver<Write>) -> Vec<Write> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(write) => batch.push(write),
            Err(_) => break,
        }
    }
    batch
}

/// The channel on which a commit that gives a destination new work says so to every replica
/// (`NOTIFY`, delivered on commit), so that another replica's worker for that destination looks
/// at once instead of at its next `storage.poll`. The payload: the destinations, comma-separated
/// (their names have no comma).
const WAKE_CHANNEL: &str = "alert_relay_work";

/// Says to every replica, in `tx` (sent when it commits), that `destinations` have new work.
async fn notify(tx: &Transaction<'_>, destinations: &[&str]) -> Result<(), StoreError> {
    let mut names: Vec<&str> = destinations.to_vec();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached("SELECT pg_notify($1, $2)")
        .await
        .map_err(pg)?;
    tx.execute(&statement, &[&WAKE_CHANNEL, &names.join(",")])
        .await
        .map_err(pg)?;
    Ok(())
}

/// While the store is open (`wakers` alive): listens on [`WAKE_CHANNEL`] on a connection of its
/// own and wakes this replica's workers of the destinations named; connects again after a second
/// when the connection fails (meanwhile `storage.poll` still finds the work).
async fn listen(url: Secret, wakers: std::sync::Weak<Wakers>) {
    use futures_util::StreamExt;
    loop {
        let connected = async {
            let (config, tls) = client_config(&url)?;
            let (client, mut connection) = in_time("answer", config.connect(tls)).await?;
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            let statement = format!("LISTEN {WAKE_CHANNEL}");
            {
                let listening = client.batch_execute(&statement);
                // The connection must be polled for the LISTEN to be answered.
                tokio::pin!(listening);
                loop {
                    tokio::select! {
                        done = &mut listening => { done.map_err(pg)?; break; }
                        message = messages.next() => match message {
                            Some(Ok(_)) => {}
                            Some(Err(e)) => return Err(pg(e)),
                            None => return Err(StoreError::Unavailable("the connection closed".into())),
                        },
                    }
                }
            }
            while let Some(message) = messages.next().await {
                let Some(wakers) = wakers.upgrade() else {
                    return Ok(());
                };
                if let Ok(tokio_postgres::AsyncMessage::Notification(note)) = message {
                    for name in note.payload().split(',') {
                        wakers.get(name).notify_one();
                    }
                }
            }
            drop(client);
            Err(StoreError::Unavailable("the connection closed".into()))
        };
        match connected.await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "not listening for other replicas' work; again in a second")
            }
        }
        if wakers.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How many times a write batch that met another's is tried again.
const CONFLICT_RETRIES: usize = 3;

/// Applies a batch in one transaction; what each write did. (Pruning does not come this way:
/// it takes its own lock and transactions, see [`Postgres::prune`]; nor does closing, which
/// PostgreSQL does not need.)
async fn apply(pool: &Pool, batch: &[Write]) -> Result<Vec<Applied>, StoreError> {
    let mut conn = connection(pool).await?;
    let now = now_ms();
    let events: Vec<&NewEvent> = (batch.iter())
        .filter_map(|write| match write {
            Write::Accept { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    // A batch of accepts alone whose deliveries need nothing from the store (the usual batch):
    // one statement, its own transaction, one round trip.
    if events.len() == batch.len() && events.iter().all(|new| decided_alone(new)) {
        let statement = conn.prepare_cached(ACCEPT).await.map_err(pg)?;
        let accepted = in_time("commit", accept_alone(&**conn, &statement, &events, now)).await?;
        return Ok(accepted.into_iter().map(Applied::Accepted).collect());
    }
    let tx = conn.transaction().await.map_err(pg)?;
    // The accepts together; the rest one by one.
    let mut accepted = accept_all(&tx, &events, now).await?.into_iter();
    let mut results = Vec::with_capacity(batch.len());
    for write in batch {
        results.push(match write {
            Write::Accept { .. } => Applied::Accepted(
                accepted
                    .next()
                    .ok_or_else(|| StoreError::Write("an accept without its outcome".into()))?,
            ),
            Write::Finish { .. } => {
                return Err(StoreError::Write(
                    "outcomes go to the outcome writer".into(),
                ));
            }
            Write::Probe { .. } => {
                tx.execute("SELECT 1", &[]).await.map_err(pg)?;
                Applied::Done
            }
            Write::Prune { .. } => Applied::Pruned(0),
            // PostgreSQL flushes in transactions of its own (`Postgres::flush_groups`).
            Write::Flush { .. } => Applied::Queued(Vec::new()),
            Write::Unsilence { open_windows, .. } => {
                Applied::Queued(unsilence(&tx, open_windows, now).await?)
            }
            Write::Act { action, .. } => act(&tx, action, now).await?,
            Write::Close { .. } => Applied::Done,
        });
    }
    // What this batch gave new work to, for the other replicas' workers.
    let mut woken: Vec<&str> = Vec::new();
    for (write, applied) in batch.iter().zip(&results) {
        match (write, applied) {
            // (Those decided alone said so in their statement.)
            (Write::Accept { event, .. }, Applied::Accepted(Accepted::New { .. }))
                if !decided_alone(event) =>
            {
                woken.extend(event.to.iter().map(|to| to.destination.as_str()));
            }
            (_, Applied::Queued(names) | Applied::Acted(_, names)) => {
                woken.extend(names.iter().map(String::as_str));
            }
            _ => {}
        }
    }
    notify(&tx, &woken).await?;
    in_time("commit", tx.commit()).await?;
    Ok(results)
}

/// See the SQLite store's `act`.
async fn act(tx: &Transaction<'_>, action: &NewAction, now: i64) -> Result<Applied, StoreError> {
    let row = &action.row;
    let kept = tx
        .execute(
            "INSERT INTO alert_actions
                 (key, correlation, destination, action, user_id, user_name, at, silence,
                  until_cleared)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING",
            &[
                &action.key,
                &row.correlation,
                &row.destination,
                &row.action,
                &row.user_id,
                &row.user_name,
                &row.at,
                &row.silence,
                &row.until_cleared,
            ],
        )
        .await
        .map_err(pg)?;
    if kept == 0 {
        return Ok(Applied::Acted(false, Vec::new()));
    }
    if let Some(silence) = &action.add_silence {
        silences::insert(&**tx, silence).await?;
    }
    if let Some(id) = &action.expire_silence {
        silences::expire(&**tx, id).await?;
    }
    let latest = tx
        .query_opt(
            "SELECT e.id FROM events e JOIN deliveries d ON d.event = e.id
             WHERE e.correlation = $1 AND d.destination = $2
               AND d.state IN ('done', 'pending')
             ORDER BY e.id DESC LIMIT 1",
            &[&row.correlation, &row.destination],
        )
        .await
        .map_err(pg)?;
    let Some(latest) = latest else {
        return Ok(Applied::Acted(true, Vec::new()));
    };
    let event: i64 = latest.get(0);
    tx.execute(
        "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
             updated_at, refresh)
         VALUES ($1, $2, 'pending', 0, $3, $3, true)",
        &[&event, &row.destination, &now],
    )
    .await
    .map_err(pg)?;
    Ok(Applied::Acted(true, vec![row.destination.clone()]))
}

/// The batch's accepts in few statements (duplicates left out by the unique key, a key twice in
/// the batch new only the first time). What became of each, in order.
async fn accept_all(
    tx: &Transaction<'_>,
    events: &[&NewEvent],
    now: i64,
) -> Result<Vec<Accepted>, StoreError> {
    // Those whose deliveries need nothing from the store go first, in one statement; a clear
    // among the rest then finds its trigger even when both came in this batch.
    type Placed<'a> = Vec<(usize, &'a NewEvent)>;
    let (alone, together): (Placed, Placed) = (events.iter())
        .copied()
        .enumerate()
        .partition(|(_, new)| decided_alone(new));
    let mut accepted = vec![Accepted::Duplicate; events.len()];
    if !alone.is_empty() {
        let statement = tx.prepare_cached(ACCEPT).await.map_err(pg)?;
        let new: Vec<&NewEvent> = alone.iter().map(|(_, new)| *new).collect();
        for ((at, _), result) in alone
            .iter()
            .zip(accept_alone(&**tx, &statement, &new, now).await?)
        {
            accepted[*at] = result;
        }
    }
    let events: Vec<&NewEvent> = together.iter().map(|(_, new)| *new).collect();
    for ((at, _), result) in together
        .iter()
        .zip(accept_together(tx, &events, now).await?)
    {
        accepted[*at] = result;
    }
    Ok(accepted)
}

/// Whether the deliveries of `new` are decided without reading the store: it is not a clear
/// (which follows its trigger), and no route groups it.
fn decided_alone(new: &NewEvent) -> bool {
    new.lifecycle().1 != Some("clear") && new.to.iter().all(|to| to.group.is_none())
}

/// Stores events `$1`–`$6` (keys, received at, bodies, normalized forms, alerts, phases), a
/// key already stored left out, and the deliveries `$7`–`$13` (event keys, destinations,
/// states, due times, silences, unsilence, held) of those stored, updated at `$14`; tells every
/// replica (on `$15`) the destinations given work. One statement; what it stored.
const ACCEPT: &str = "WITH ev AS (
         INSERT INTO events (event_id, received_at, body, normalized, correlation, phase)
         SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BYTEA[], $4::TEXT[], $5::TEXT[],
                              $6::TEXT[])
         ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id),
     made AS (
         INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
             updated_at, silenced_by, unsilence, held)
         SELECT ev.id, u.destination, u.state, 0, u.due, $14, u.silenced_by, u.unsilence, u.held
         FROM UNNEST($7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[], $11::TEXT[],
                     $12::BOOLEAN[], $13::BOOLEAN[])
             AS u(key, destination, state, due, silenced_by, unsilence, held)
         JOIN ev ON ev.event_id = u.key
         RETURNING destination, state),
     woken AS (
         SELECT pg_notify($15, names)
         FROM (SELECT string_agg(DISTINCT destination, ',') AS names FROM made
               WHERE state = 'pending') pending
         WHERE names IS NOT NULL)
     SELECT ev.id, ev.event_id FROM ev WHERE (SELECT count(*) FROM woken) >= 0";

/// The columns of the events table, one array each, for `UNNEST`.
struct EventColumns<'a> {
    keys: Vec<&'a str>,
    received: Vec<i64>,
    bodies: Vec<&'a [u8]>,
    normalized: Vec<Option<&'a str>>,
    correlations: Vec<Option<&'a str>>,
    phases: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    /// The columns in the table's order, as a statement's first six parameters.
    fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        vec![
            &self.keys,
            &self.received,
            &self.bodies,
            &self.normalized,
            &self.correlations,
            &self.phases,
        ]
    }

    fn of(events: &[&'a NewEvent]) -> Self {
        Self {
            keys: events.iter().map(|e| e.key.as_str()).collect(),
            received: events.iter().map(|e| e.received_at).collect(),
            bodies: events.iter().map(|e| e.body.as_slice()).collect(),
            normalized: events.iter().map(|e| e.normalized.as_deref()).collect(),
            correlations: events.iter().map(|e| e.lifecycle().0).collect(),
            phases: events.iter().map(|e| e.lifecycle().1).collect(),
        }
    }
}

/// Accepts `events`, each [`decided_alone`], with [`ACCEPT`] (`statement`): a key already
/// stored, or earlier in `events`, is a duplicate.
async fn accept_alone(
    client: &impl tokio_postgres::GenericClient,
    statement: &tokio_postgres::Statement,
    events: &[&NewEvent],
    now: i64,
) -> Result<Vec<Accepted>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let first: Vec<&NewEvent> = (events.iter())
        .copied()
        .filter(|new| seen.insert(new.key.as_str()))
        .collect();
    let columns = EventColumns::of(&first);
    let mut rows = NewRows::default();
    for new in &first {
        for to in &new.to {
            let row = match disposition(new, to, None, now) {
                Disposition::Pending { due, held } => Row::pending(due, held, now),
                Disposition::Silenced { by, unsilence, .. } => Row::silenced(by, unsilence, now),
                _ => {
                    return Err(StoreError::Write(
                        "a delivery that needs the store, among those decided alone".into(),
                    ));
                }
            };
            rows.push(new.key.as_str(), &to.destination, row);
        }
    }
    let mut params = columns.params();
    params.extend_from_slice(&[
        &rows.events,
        &rows.destinations,
        &rows.states,
        &rows.due,
        &rows.silenced_by,
        &rows.unsilence,
        &rows.held,
        &now,
        &WAKE_CHANNEL,
    ]);
    let stored: std::collections::HashSet<String> = client
        .query(statement, &params)
        .await
        .map_err(pg)?
        .iter()
        .map(|row| row.get::<_, String>(1))
        .collect();
    let mut taken = std::collections::HashSet::new();
    Ok(events
        .iter()
        .map(|new| {
            if stored.contains(&new.key) && taken.insert(new.key.as_str()) {
                Accepted::New {
                    deliveries: new.to.len(),
                    flapped: false,
                }
            } else {
                Accepted::Duplicate
            }
        })
        .collect())
}

/// The accepts that need the store to decide their deliveries: their events in one statement,
/// then each new event's deliveries decided (reading and writing the store only for a clear, a
/// group, a silenced trigger's clear or a flap) and inserted all in one more.
async fn accept_together(
    tx: &Transaction<'_>,
    events: &[&NewEvent],
    now: i64,
) -> Result<Vec<Accepted>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (event_id, received_at, body, normalized, correlation, phase)
             SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BYTEA[], $4::TEXT[], $5::TEXT[],
                                  $6::TEXT[])
             ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id",
        )
        .await
        .map_err(pg)?;
    let columns = EventColumns::of(events);
    let mut ids: std::collections::HashMap<String, i64> = tx
        .query(&insert, &columns.params())
        .await
        .map_err(pg)?
        .iter()
        .map(|row| (row.get::<_, String>(1), row.get::<_, i64>(0)))
        .collect();
    let mut rows = NewRows::default();
    let mut accepted = Vec::with_capacity(events.len());
    for new in events {
        // The first of a key in the batch takes its id; any later one is a duplicate.
        let Some(event) = ids.remove(&new.key) else {
            accepted.push(Accepted::Duplicate);
            continue;
        };
        let flapped = deliveries(tx, new, event, now, &mut rows).await?;
        accepted.push(Accepted::New {
            deliveries: new.to.len(),
            flapped,
        });
    }
    rows.insert(tx, now).await?;
    Ok(accepted)
}

/// New deliveries' rows, inserted together; their events by id (`i64`), or by key where the
/// ids are made in the same statement ([`ACCEPT`]).
#[derive(Default)]
struct NewRows<E> {
    events: Vec<E>,
    destinations: Vec<String>,
    states: Vec<&'static str>,
    due: Vec<i64>,
    silenced_by: Vec<Option<String>>,
    unsilence: Vec<bool>,
    held: Vec<bool>,
    groups: Vec<Option<i64>>,
}

impl<E> NewRows<E> {
    fn push(&mut self, event: E, destination: &str, row: Row) {
        self.events.push(event);
        self.destinations.push(destination.to_owned());
        self.states.push(row.state.as_str());
        self.due.push(row.due);
        self.silenced_by.push(row.silenced_by);
        self.unsilence.push(row.unsilence);
        self.held.push(row.held);
        self.groups.push(row.group);
    }
}

impl NewRows<i64> {
    async fn insert(self, tx: &Transaction<'_>, now: i64) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Ok(());
        }
        let statement = tx
            .prepare_cached(
                "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at,
                     updated_at, silenced_by, unsilence, held, grp)
                 SELECT u.event, u.destination, u.state, 0, u.due, $9, u.silenced_by,
                     u.unsilence, u.held, u.grp
                 FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[],
                             $6::BOOLEAN[], $7::BOOLEAN[], $8::BIGINT[])
                     AS u(event, destination, state, due, silenced_by, unsilence, held, grp)",
            )
            .await
            .map_err(pg)?;
        tx.execute(
            &statement,
            &[
                &self.events,
                &self.destinations,
                &self.states,
                &self.due,
                &self.silenced_by,
                &self.unsilence,
                &self.held,
                &self.groups,
                &now,
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }
}

/// Decides the deliveries of the new event `event` (see `outbox/disposition.rs`) into `rows`,
/// doing in the store what a disposition asks there; whether a flap was found.
async fn deliveries(
    tx: &Transaction<'_>,
    new: &NewEvent,
    event: i64,
    now: i64,
    rows: &mut NewRows<i64>,
) -> Result<bool, StoreError> {
    let (correlation, phase) = new.lifecycle();
    let mut flapped = false;
    for to in &new.to {
        let destination = to.destination.as_str();
        let trigger = match (correlation, phase) {
            (Some(correlation), Some("clear")) => {
                trigger_there(tx, correlation, destination, now).await?
            }
            _ => None,
        };
        let correlation = correlation.unwrap_or_default();
        let row = match disposition(new, to, trigger, now) {
            Disposition::Pending { due, held } => Row::pending(due, held, now),
            Disposition::Silenced {
                by,
                unsilence,
                trigger,
            } => {
                if let Some(trigger) = trigger {
                    tx.execute(
                        "UPDATE deliveries SET unsilence = false WHERE id = $1",
                        &[&trigger],
                    )
                    .await
                    .map_err(pg)?;
                }
                Row::silenced(by, unsilence, now)
            }
            Disposition::Flapped { trigger } => {
                tx.execute(
                    "UPDATE deliveries SET state = 'flapped', updated_at = $2 WHERE id = $1",
                    &[&trigger, &now],
                )
                .await
                .map_err(pg)?;
                flapped = true;
                Row::flapped(now)
            }
            Disposition::Join(joining) => Row::grouped(
                join_group(tx, destination, correlation, joining, now).await?,
                now,
            ),
            Disposition::Leave { group } => {
                leave_group(tx, group, correlation, now).await?;
                Row::grouped(group, now)
            }
        };
        rows.push(event, destination, row);
    }
    Ok(flapped)
}

/// What became of the latest trigger of the alert `correlation` at `destination`, if there is
/// one.
async fn trigger_there(
    tx: &Transaction<'_>,
    correlation: &str,
    destination: &str,
    now: i64,
) -> Result<Option<Trigger>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT d.id, d.state, d.silenced_by, d.held, d.attempts, d.next_attempt_at, d.grp
             FROM deliveries d JOIN events e ON e.id = d.event
             WHERE e.correlation = $1 AND e.phase = 'trigger' AND d.destination = $2
               AND NOT d.refresh
             ORDER BY e.id DESC LIMIT 1",
            &[&correlation, &destination],
        )
        .await
        .map_err(pg)?;
    Ok(row.map(|row| {
        Trigger::read(
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            i64::from(row.get::<_, i32>(4)),
            row.get(5),
            row.get(6),
            now,
        )
    }))
}

/// See the SQLite store's `join_group`. The group's row is locked first, so that a replica
/// flushing it at the same time sends this change at its next notification.
async fn join_group(
    tx: &Transaction<'_>,
    destination: &str,
    correlation: &str,
    joining: &Joining,
    now: i64,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO alert_groups (destination, key, labels, started_at, interval_ms, flush_at)
         VALUES ($1, $2, $3, $4, $5, $4::BIGINT + $6::BIGINT)
         ON CONFLICT (destination, key) WHERE ended_at IS NULL DO NOTHING",
        &[
            &destination,
            &joining.key,
            &joining.labels,
            &now,
            &joining.interval_ms,
            &joining.wait_ms,
        ],
    )
    .await
    .map_err(pg)?;
    let group: i64 = tx
        .query_one(
            "SELECT id FROM alert_groups WHERE destination = $1 AND key = $2 AND ended_at IS NULL
             FOR UPDATE",
            &[&destination, &joining.key],
        )
        .await
        .map_err(pg)?
        .get(0);
    tx.execute(
        "UPDATE alert_groups SET flush_at = GREATEST($2, COALESCE(flushed_at + interval_ms, $2))
         WHERE id = $1 AND flush_at IS NULL",
        &[&group, &now],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "INSERT INTO alert_group_members (grp, correlation, firing, summary, joined_at, changed_at)
         VALUES ($1, $2, true, $3, $4, $4)
         ON CONFLICT (grp, correlation) DO UPDATE
             SET firing = true, summary = EXCLUDED.summary, changed_at = EXCLUDED.changed_at",
        &[&group, &correlation, &joining.member, &now],
    )
    .await
    .map_err(pg)?;
    Ok(group)
}

/// See the SQLite store's `leave_group`; the group's row is locked first, as in `join_group`.
async fn leave_group(
    tx: &Transaction<'_>,
    group: i64,
    correlation: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "SELECT 1 FROM alert_groups WHERE id = $1 FOR UPDATE",
        &[&group],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE alert_group_members SET firing = false, changed_at = $3
         WHERE grp = $1 AND correlation = $2",
        &[&group, &correlation, &now],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE alert_groups SET flush_at = CASE
             WHEN NOT EXISTS (SELECT 1 FROM alert_group_members WHERE grp = $1 AND firing)
                 THEN $2
             ELSE COALESCE(flush_at, GREATEST($2, COALESCE(flushed_at + interval_ms, $2))) END
         WHERE id = $1 AND ended_at IS NULL",
        &[&group, &now],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// See `Outbox::unsilence`.
async fn unsilence(
    tx: &Transaction<'_>,
    open_windows: &[String],
    now: i64,
) -> Result<Vec<String>, StoreError> {
    // A silence made from a message "until cleared" ends once its alert has cleared.
    tx.execute(
        "UPDATE silences SET ends_at = $1 WHERE ends_at > $1 AND id IN (
             SELECT a.silence FROM alert_actions a
             WHERE a.until_cleared AND EXISTS (
                 SELECT 1 FROM events e
                 WHERE e.correlation = a.correlation AND e.phase = 'clear'
                   AND e.received_at >= a.at))",
        &[&now],
    )
    .await
    .map_err(pg)?;
    let rows = tx
        .query(
            "UPDATE deliveries d SET state = 'pending', unsilence = false, next_attempt_at = $1,
                 updated_at = $1
             WHERE unsilence AND state = 'silenced' AND NOT (silenced_by = ANY($2))
               AND NOT EXISTS (SELECT 1 FROM silences s
                               WHERE d.silenced_by = 'silence:' || s.id AND s.ends_at > $1)
             RETURNING destination",
            &[&now, &open_windows],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Records outcomes `$1`–`$5` (delivery ids, states, attempts, next due times, errors) at `$6`,
/// keeps the threads of the triggers delivered (`$7`–`$10`: destinations, alerts, threads,
/// trigger summaries), and tells every replica (on `$11`) which destinations may have new work
/// (a retry, or a clear that waited for its trigger): one statement.
const FINISH: &str = "WITH kept AS (
         INSERT INTO threads (destination, correlation, thread, trigger_summary, created_at)
         SELECT t.destination, t.correlation, t.thread, t.summary, $6
         FROM UNNEST($7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[])
             AS t(destination, correlation, thread, summary)
         ON CONFLICT (destination, correlation) DO UPDATE SET thread = EXCLUDED.thread,
             trigger_summary = EXCLUDED.trigger_summary, created_at = EXCLUDED.created_at),
     finished AS (
         UPDATE deliveries d SET state = u.state, attempts = u.attempts,
             next_attempt_at = u.due, last_error = COALESCE(u.error, d.last_error),
             updated_at = $6, lease_until = NULL
         FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::INTEGER[], $4::BIGINT[], $5::TEXT[])
             AS u(id, state, attempts, due, error)
         WHERE d.id = u.id
         RETURNING d.destination)
     SELECT pg_notify($11, names)
     FROM (SELECT string_agg(DISTINCT destination, ',') AS names FROM finished) woken
     WHERE names IS NOT NULL";

/// The outcomes of attempts, in one statement ([`FINISH`]), which also says so to the other
/// replicas.
async fn record_finishes(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    finishes: &[(i64, &str, &Finish)],
    now: i64,
) -> Result<(), StoreError> {
    if finishes.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(finishes.len());
    let mut states = Vec::with_capacity(finishes.len());
    let mut attempts = Vec::with_capacity(finishes.len());
    let mut due = Vec::with_capacity(finishes.len());
    let mut errors = Vec::with_capacity(finishes.len());
    // One thread per alert and destination: the last kept wins, as one statement may not
    // write a row twice.
    let mut threads: std::collections::HashMap<(&str, &str), (&str, &str)> =
        std::collections::HashMap::new();
    for (id, destination, finish) in finishes {
        let (state, tries, next, error) = finish.row(now);
        ids.push(*id);
        states.push(state.as_str());
        attempts.push(tries as i32);
        due.push(next);
        errors.push(error);
        if let Finish::Done {
            thread: Some(thread),
            ..
        } = finish
        {
            threads.insert(
                (destination, &thread.correlation),
                (&thread.thread, &thread.trigger_summary),
            );
        }
    }
    let mut thread_destinations = Vec::with_capacity(threads.len());
    let mut thread_alerts = Vec::with_capacity(threads.len());
    let mut thread_ids = Vec::with_capacity(threads.len());
    let mut summaries = Vec::with_capacity(threads.len());
    for ((destination, alert), (thread, summary)) in threads {
        thread_destinations.push(destination);
        thread_alerts.push(alert);
        thread_ids.push(thread);
        summaries.push(summary);
    }
    client
        .execute(
            statement,
            &[
                &ids,
                &states,
                &attempts,
                &due,
                &errors,
                &now,
                &thread_destinations,
                &thread_alerts,
                &thread_ids,
                &summaries,
                &WAKE_CHANNEL,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(())
}

/// The outcome writer: takes every outcome waiting and records them with one statement
/// ([`FINISH`], no transaction around it) on a connection of its own, which commits without
/// waiting for the disk (a database crash may lose the last few outcomes, whose deliveries are
/// then made again: at least once, as the SQLite store's promise is). Apart from the accepts'
/// writer, so that an outcome never waits for an accept batch's commit, nor an accept for it.
async fn outcome_loop(pool: Pool, mut queue: mpsc::Receiver<Write>, wakers: Arc<Wakers>) {
    let mut own: Option<Outcomes> = None;
    while let Some(first) = queue.recv().await {
        let batch = take_batch(first, &mut queue);
        let mut recorded = record_outcomes(&pool, &mut own, &batch).await;
        for _ in 0..CONFLICT_RETRIES {
            match &recorded {
                Err(StoreError::Conflict(why)) => {
                    tracing::debug!(error = %why, "outcomes met another replica's writes; again");
                    recorded = record_outcomes(&pool, &mut own, &batch).await;
                }
                _ => break,
            }
        }
        if own.as_ref().is_some_and(|own| own.client.is_closed()) {
            own = None;
        }
        answer(batch, recorded, &wakers);
    }
}

/// The outcome writer's connection (see [`own_connection`]) and its statement.
struct Outcomes {
    client: deadpool_postgres::ClientWrapper,
    finish: tokio_postgres::Statement,
}

/// The outcomes in `batch` (only outcomes come to the outcome writer), on the outcome writer's
/// connection `own`, made now if there is none.
async fn record_outcomes(
    pool: &Pool,
    own: &mut Option<Outcomes>,
    batch: &[Write],
) -> Result<Vec<Applied>, StoreError> {
    let own = match own {
        Some(own) => own,
        None => {
            let client = own_connection(pool).await?;
            let finish = in_time("answer", client.prepare(FINISH)).await?;
            own.insert(Outcomes { client, finish })
        }
    };
    let mut finishes = Vec::with_capacity(batch.len());
    for write in batch {
        let Write::Finish {
            id,
            destination,
            finish,
            ..
        } = write
        else {
            return Err(StoreError::Write(
                "only outcomes go to the outcome writer".into(),
            ));
        };
        finishes.push((*id, destination.as_str(), finish));
    }
    in_time(
        "answer",
        record_finishes(&own.client, &own.finish, &finishes, now_ms()),
    )
    .await?;
    Ok(vec![Applied::Done; batch.len()])
}

/// A worker's claims: each due delivery is leased so that no other replica takes it meanwhile,
/// and only while this replica drives the destination.
pub struct Reader {
    pool: Pool,
    lease: Duration,
    own: tokio::sync::Mutex<Option<Own>>,
}

/// A worker's own connection (see [`own_connection`]): it holds (or tries for) the destination's
/// advisory lock, which lives as long as the connection, and makes the claims, each one
/// statement that commits by itself without waiting for the disk (a lease lost in a database
/// crash only makes the delivery claimable again, which at-least-once allows).
struct Own {
    client: deadpool_postgres::ClientWrapper,
    holds: bool,
    /// [`CLAIM`] for each limit asked so far.
    claims: std::collections::HashMap<usize, tokio_postgres::Statement>,
}

/// Claims up to `{limit}` due deliveries of `$1` at `$2` not leased and not in `$4`, leasing
/// them until `$3`; a clear or a refresh waits while anything queued before it for its alert
/// waits. The limit is written in, one statement per limit: knowing it, the plan made once for
/// any destination and time (a generic plan, which saves planning each claim again: two thirds
/// of a claim's time) walks the destination's due index to the limit and no further, where with
/// the limit a parameter it can read every delivery to lease the few found.
const CLAIM: &str = "WITH due AS (
         SELECT d.id, d.lease_until IS NOT NULL AS was_leased
         FROM deliveries d JOIN events e ON e.id = d.event
         WHERE d.destination = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2
           AND (d.lease_until IS NULL OR d.lease_until <= $2)
           AND d.id <> ALL($4)
           AND NOT ((e.phase IS NOT DISTINCT FROM 'clear' OR d.refresh) AND EXISTS (
               SELECT 1 FROM events te JOIN deliveries t ON t.event = te.id
               WHERE te.correlation = e.correlation
                 AND te.id <= e.id AND t.id < d.id
                 AND t.destination = d.destination
                 AND t.state = 'pending'))
         ORDER BY d.next_attempt_at, d.id LIMIT {limit}
         FOR UPDATE OF d SKIP LOCKED),
     leased AS (
         UPDATE deliveries SET lease_until = $3 FROM due WHERE deliveries.id = due.id
         RETURNING deliveries.id, deliveries.attempts, deliveries.event,
             deliveries.next_attempt_at, due.was_leased, deliveries.silenced_by,
             deliveries.refresh)
     SELECT l.id, l.attempts, e.event_id, e.received_at, e.body, th.thread,
         th.trigger_summary, e.normalized, l.was_leased, l.silenced_by, l.refresh
     FROM leased l JOIN events e ON e.id = l.event
     LEFT JOIN threads th ON (e.phase = 'clear' OR l.refresh)
         AND th.destination = $1 AND th.correlation = e.correlation
     ORDER BY l.next_attempt_at, l.id";

impl Reader {
    /// This worker's own connection (see [`own_connection`]), made now if it has none (or lost
    /// it).
    async fn own<'a>(&self, own: &'a mut Option<Own>) -> Result<&'a mut Own, StoreError> {
        if own.as_ref().is_some_and(|o| o.client.is_closed()) {
            *own = None;
        }
        Ok(match own {
            Some(own) => own,
            None => own.insert(Own {
                client: own_connection(&self.pool).await?,
                holds: false,
                claims: std::collections::HashMap::new(),
            }),
        })
    }

    /// Whether this replica drives `destination`: it holds the destination's advisory lock, or
    /// takes it now because no other replica does.
    async fn drives(&self, own: &mut Own, destination: &str) -> Result<bool, StoreError> {
        if !own.holds {
            own.holds = in_time(
                "answer",
                own.client.query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&DRIVE_CLASS, &destination],
                ),
            )
            .await?
            .get(0);
            if own.holds {
                tracing::info!(destination, "this replica now drives the destination");
            }
        }
        Ok(own.holds)
    }

    /// Claims up to `limit` deliveries for `destination` due at `now`, the first due first, not
    /// leased by anyone and not in `in_flight` here, and leases them for the lease time, if this
    /// replica drives the destination or it is not `exclusive` (else none); each with its event
    /// and, for a clear or a refresh, what was kept of its trigger's message (see [`CLAIM`]).
    pub async fn due(
        &self,
        destination: &str,
        now: i64,
        in_flight: Vec<i64>,
        limit: usize,
        exclusive: bool,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut own = self.own.lock().await;
        let own = self.own(&mut own).await?;
        if exclusive && !self.drives(own, destination).await? {
            return Ok(Vec::new());
        }
        let until = now + self.lease.as_millis() as i64;
        let claim = match own.claims.get(&limit) {
            Some(claim) => claim.clone(),
            None => {
                let claim = CLAIM.replace("{limit}", &limit.max(1).to_string());
                let claim = in_time("answer", own.client.prepare(&claim)).await?;
                own.claims.insert(limit, claim.clone());
                claim
            }
        };
        let rows = in_time(
            "answer",
            own.client
                .query(&claim, &[&destination, &now, &until, &in_flight]),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Claim {
                id: row.get(0),
                attempts: row.get::<_, i32>(1) as u32,
                // A lease left behind: the replica that claimed it died during the attempt.
                unsure: row.get::<_, i32>(1) > 0 || row.get::<_, bool>(8),
                event_id: display_id(row.get(2)),
                received_at: row.get(3),
                body: row.get(4),
                normalized: row.get(7),
                thread: match (row.get(5), row.get(6)) {
                    (Some(thread), Some(trigger)) => Some((thread, trigger)),
                    _ => None,
                },
                silenced_by: row.get(9),
                refresh: row.get(10),
            })
            .collect())
    }

    /// When the next pending delivery for `destination` is due, a lease counting as due then.
    pub async fn next_due_at(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        let conn = connection(&self.pool).await?;
        let row = conn
            .query_one(
                "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0))) FROM deliveries
                 WHERE destination = $1 AND state = 'pending'",
                &[&destination],
            )
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }
}
