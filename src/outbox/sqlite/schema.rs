//! Opening the store: pragmas, the schema version, migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::outbox::StoreError;

/// The schema this version writes; a store with a newer one is refused rather than damaged.
pub const SCHEMA_VERSION: i64 = 8;

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    "
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
",
    // Dedup keys become the JSON text of `eventId`, so that 123 and "123" are two events. Keys
    // stored before were the text alone; numbers among them are taken for strings.
    "UPDATE events SET event_id = json_quote(event_id) WHERE event_id NOT LIKE 'body-%';",
    // Alert lifecycles: an event's correlation key and phase (`trigger`, `clear`), and what each
    // destination kept of a trigger's message (a Slack channel and ts, an email's Message-ID and
    // subject) with the trigger's summary, so that its clear can update it or reply to it.
    "
    ALTER TABLE events ADD COLUMN correlation TEXT;
    ALTER TABLE events ADD COLUMN phase TEXT CHECK (phase IN ('trigger', 'clear'));
    CREATE INDEX events_correlation ON events (correlation);
    CREATE TABLE threads (
        destination TEXT NOT NULL,
        correlation TEXT NOT NULL,
        thread TEXT NOT NULL,
        trigger_summary TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (destination, correlation)
    );
    CREATE INDEX threads_created ON threads (created_at);
",
    // Sources: beside its body, an event keeps what its source made of it (kind, summary,
    // correlation), so that sending it needs neither that source's config nor its parser.
    // Events stored before are ThousandEyes classic bodies. The OAuth server: the tokens it issued
    // (their ids, never the tokens) and its one-use authorization codes (their SHA-256); its
    // signing key is kept in `meta`.
    "
    ALTER TABLE events ADD COLUMN normalized TEXT;
    CREATE TABLE oauth_tokens (
        id TEXT PRIMARY KEY,
        client TEXT NOT NULL,
        operator TEXT,
        grant_type TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE oauth_codes (
        hash TEXT PRIMARY KEY,
        client TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        operator TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
",
    // Dedup keys are per source: `<source name>:<key>`, so that the same eventId from two sources
    // is two events. An event's source is in its normalized form; events stored before sources
    // existed came from the one ThousandEyes source, `thousandeyes`.
    "UPDATE events SET event_id =
         COALESCE(json_extract(normalized, '$.source.name'), 'thousandeyes') || ':' || event_id;",
    // Noise control. A delivery may be silenced (`silenced_by` names the silence or maintenance
    // window; `unsilence` marks a trigger sent when that ends unless its clear came), flapped (a
    // `held` trigger cleared within its route's hold) or grouped (into the group `grp`, whose
    // notifications name it). SQLite changes a CHECK only by making the table again. Silences,
    // shared by every relay on the store; groups and their alerts.
    "
    CREATE TABLE deliveries_next (
        id INTEGER PRIMARY KEY,
        event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
        destination TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'done', 'dead', 'silenced', 'flapped', 'grouped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        updated_at INTEGER NOT NULL,
        silenced_by TEXT,
        unsilence INTEGER NOT NULL DEFAULT 0,
        held INTEGER NOT NULL DEFAULT 0,
        grp INTEGER
    );
    INSERT INTO deliveries_next
        (id, event, destination, state, attempts, next_attempt_at, last_error, updated_at)
        SELECT id, event, destination, state, attempts, next_attempt_at, last_error, updated_at
        FROM deliveries;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_next RENAME TO deliveries;
    CREATE INDEX deliveries_due ON deliveries (destination, state, next_attempt_at);
    CREATE INDEX deliveries_event ON deliveries (event);
    CREATE INDEX deliveries_unsilence ON deliveries (silenced_by) WHERE unsilence = 1;
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        comment TEXT NOT NULL,
        created_by TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    CREATE TABLE alert_groups (
        id INTEGER PRIMARY KEY,
        destination TEXT NOT NULL,
        key TEXT NOT NULL,
        labels TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        interval_ms INTEGER NOT NULL,
        flush_at INTEGER,
        flushed_at INTEGER,
        notifications INTEGER NOT NULL DEFAULT 0,
        ended_at INTEGER
    );
    CREATE UNIQUE INDEX alert_groups_open ON alert_groups (destination, key)
        WHERE ended_at IS NULL;
    CREATE INDEX alert_groups_flush ON alert_groups (flush_at) WHERE flush_at IS NOT NULL;
    CREATE INDEX alert_groups_ended ON alert_groups (ended_at) WHERE ended_at IS NOT NULL;
    CREATE TABLE alert_group_members (
        grp INTEGER NOT NULL REFERENCES alert_groups(id) ON DELETE CASCADE,
        correlation TEXT NOT NULL,
        firing INTEGER NOT NULL,
        summary TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        changed_at INTEGER NOT NULL,
        notified INTEGER,
        PRIMARY KEY (grp, correlation)
    );
",
    // What people did from a message (Acknowledge, Silence and their undoing), once per click
    // (`key`: Slack's user, action and its time); a delivery may be a `refresh`: its event's
    // message updated in place to show them.
    "
    CREATE TABLE alert_actions (
        key TEXT PRIMARY KEY,
        correlation TEXT NOT NULL,
        destination TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        at INTEGER NOT NULL,
        silence TEXT,
        until_cleared INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alert_actions_alert ON alert_actions (correlation, at);
    ALTER TABLE deliveries ADD COLUMN refresh INTEGER NOT NULL DEFAULT 0;
",
    // Events packed: body and normalized form compressed together in `body`, `packed` the
    // body's length within them (see `packed`). Rows stored before keep theirs, `packed` NULL.
    "ALTER TABLE events ADD COLUMN packed INTEGER;",
];

/// The page size of a new store (SQLite's default): a page holds three packed events of a few KB,
/// and each commit rewrites in the log every page it touched, a leaf of each index among them.
const PAGE_SIZE: i64 = 4096;

/// What the write-ahead log's file keeps of its size once the log starts over: above the 8 MiB at
/// which it is merged (a log cut back below its working size grows again at every turn), below
/// what a burst can make it.
const WAL_KEPT_BYTES: i64 = 16 * 1024 * 1024;

/// A command that finds the store locked by the server waits this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn open_existing(path: &Path) -> Result<Connection, StoreError> {
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

pub(super) fn connect(path: &Path, create: bool) -> Result<Connection, StoreError> {
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
    if create && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        // Fixed once the first table is made; stores made before keep theirs.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(not_a_store)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(not_a_store)?;
    // Once merged into the store, the log starts over from its beginning, its file cut back to
    // this size if a burst made it larger, so that the disk gets that room back.
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)
        .map_err(not_a_store)?;
    // FULL: a commit is on disk before the relay answers 200.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(not_a_store)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(not_a_store)?;
    // Each statement of a batch that may fail midway keeps the pages it changes in a statement
    // journal, so that its failure undoes it alone. In a temporary file (the default), every
    // commit opened, wrote and closed one: a third of the writer's writes under load.
    conn.pragma_update(None, "temp_store", "MEMORY")
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

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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

/// The write-ahead log beside the store at `path`.
pub(super) fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Whether a server had the store open and did not close it (a crash, `kill -9`).
pub(super) fn left_open(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'open'", [], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(value.as_deref() == Some("1"))
}

/// Records whether a server has the store open, in the store file itself and not only in its log
/// (a full checkpoint), so that the next start can tell a log that went missing after a crash
/// from one that was merged and removed on a clean close.
pub(super) fn mark_open(conn: &Connection, open: bool) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('open', ?1)",
        [if open { "1" } else { "0" }],
    )?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}
