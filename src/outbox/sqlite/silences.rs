//! The silences SQLite keeps, for the relay (its HTTP API, and what it reads to apply them) and
//! for `alert-relay silence` from its own process. Rare writes, made on the read connection (the
//! busy timeout waits for the writer thread's transaction), as the OAuth server's are.

use std::path::Path;

use rusqlite::{Connection, Row, params};

use super::{Sqlite, admin::with_store, off_runtime};
use crate::outbox::{SilenceRow, StoreError, now_ms};

impl Sqlite {
    pub async fn silences(&self, after: i64) -> Result<Vec<SilenceRow>, StoreError> {
        off_runtime(&self.stats, move |conn| select(conn, after)).await
    }

    pub async fn add_silence(&self, silence: SilenceRow) -> Result<(), StoreError> {
        off_runtime(&self.stats, move |conn| Ok(insert(conn, &silence)?)).await
    }

    pub async fn expire_silence(&self, id: String) -> Result<bool, StoreError> {
        off_runtime(&self.stats, move |conn| Ok(expire(conn, &id)?)).await
    }
}

/// See [`crate::outbox::silences`].
pub fn silences(path: &Path) -> Result<Vec<SilenceRow>, StoreError> {
    with_store(path, |conn| select(conn, i64::MIN))
}

/// See [`crate::outbox::add_silence`].
pub fn add_silence(path: &Path, silence: SilenceRow) -> Result<(), StoreError> {
    with_store(path, |conn| Ok(insert(conn, &silence)?))
}

/// See [`crate::outbox::expire_silence`].
pub fn expire_silence(path: &Path, id: &str) -> Result<bool, StoreError> {
    with_store(path, |conn| Ok(expire(conn, id)?))
}

fn select(conn: &Connection, after: i64) -> Result<Vec<SilenceRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, matchers, starts_at, ends_at, comment, created_by, created_at FROM silences
         WHERE ends_at > ?1 ORDER BY created_at DESC, id",
    )?;
    let rows = statement.query_map(params![after], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn row(row: &Row) -> Result<SilenceRow, rusqlite::Error> {
    Ok(SilenceRow {
        id: row.get(0)?,
        matchers: row.get(1)?,
        starts_at: row.get(2)?,
        ends_at: row.get(3)?,
        comment: row.get(4)?,
        created_by: row.get(5)?,
        created_at: row.get(6)?,
    })
}

pub(super) fn insert(conn: &Connection, s: &SilenceRow) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.id,
            s.matchers,
            s.starts_at,
            s.ends_at,
            s.comment,
            s.created_by,
            s.created_at
        ],
    )?;
    Ok(())
}

pub(super) fn expire(conn: &Connection, id: &str) -> Result<bool, rusqlite::Error> {
    let now = now_ms();
    Ok(conn.execute(
        "UPDATE silences SET ends_at = ?1 WHERE id = ?2 AND ends_at > ?1",
        params![now, id],
    )? == 1)
}
