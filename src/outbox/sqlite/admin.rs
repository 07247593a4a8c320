//! What `alert-relay deliveries` and `alert-relay retry` do to the store, from their own process
//! while the server runs.

use std::path::Path;

use rusqlite::params;

use rusqlite::Connection;

use super::StoreLock;
use super::schema::{mark_open, open_existing};
use crate::outbox::{DeliveryRow, DeliveryState, Requeue, StoreError, display_id, now_ms};

/// Runs `work` on the store at `path`. When no server runs, the command holds the store's lock
/// meanwhile and marks the store closed before it lets go: closing the last connection merges and
/// removes the write-ahead log, and the next server start must not take that for a lost log.
pub(super) fn with_store<T>(
    path: &Path,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let conn = open_existing(path)?;
    let holder = format!("pid {}, an alert-relay command", std::process::id());
    let alone = StoreLock::acquire(path, &holder).ok();
    let result = work(&conn)?;
    if alone.is_some() {
        mark_open(&conn, false)?;
    }
    Ok(result)
}

/// Deliveries for `alert-relay deliveries`, newest first. Works while the server runs.
pub fn list(
    path: &Path,
    state: Option<DeliveryState>,
    limit: usize,
) -> Result<Vec<DeliveryRow>, StoreError> {
    with_store(path, |conn| list_in(conn, state, limit))
}

fn list_in(
    conn: &Connection,
    state: Option<DeliveryState>,
    limit: usize,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT d.id, e.event_id, d.destination, d.state, d.attempts, d.next_attempt_at, d.last_error
         FROM deliveries d JOIN events e ON e.id = d.event
         WHERE ?1 IS NULL OR d.state = ?1
         ORDER BY d.id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![state, limit as i64], |row| {
        Ok(DeliveryRow {
            id: row.get(0)?,
            event_id: display_id(row.get(1)?),
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
/// server picks them up within `storage.poll`.
pub fn requeue(path: &Path, which: Requeue) -> Result<usize, StoreError> {
    with_store(path, |conn| requeue_in(conn, which))
}

fn requeue_in(conn: &Connection, which: Requeue) -> Result<usize, StoreError> {
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
