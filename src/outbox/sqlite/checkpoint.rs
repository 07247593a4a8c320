//! Checkpoints off the writer's path. SQLite's own checkpoint runs inside the commit that grows
//! the write-ahead log past its limit: that commit, and every accept waiting behind it, waits
//! while a thousand pages are copied into the store and the store is synced. Here the writer
//! only asks, and a thread of its own, on a connection of its own, copies the log into the store
//! while the writer goes on committing (a passive checkpoint never holds up a writer).
//!
//! The log restarts from its beginning only once everything in it was copied; under a load that
//! never pauses the thread may keep chasing the writer, so past [`WRITER_CHECKPOINT_FACTOR`]
//! times the usual size the writer checkpoints between two commits itself, as SQLite would, and
//! the log stays bounded.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

use super::schema::connect;
use crate::outbox::StoreError;

/// The log's size past which the checkpoint thread is asked to copy it into the store: SQLite's
/// own automatic checkpoint runs at 1,000 pages, 4 MiB with its default pages of 4 KiB.
const CHECKPOINT_BYTES: i64 = 4 * 1024 * 1024;
/// How many times that size the log may reach before the writer copies it itself.
const WRITER_CHECKPOINT_FACTOR: i32 = 16;

/// Starts the checkpoint thread for the store at `path` and has `writer`, the store's only
/// write connection, ask it for checkpoints. The thread ends when `writer` is dropped.
pub(super) fn start(writer: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let conn = connect(path, false)?;
    let failed_to_read = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let page_size: i64 = writer
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(failed_to_read)?;
    let checkpoint_pages = i32::try_from(CHECKPOINT_BYTES / page_size.max(512)).unwrap_or(1000);
    let writer_checkpoint_pages = checkpoint_pages.saturating_mul(WRITER_CHECKPOINT_FACTOR);
    let (ask, asked) = mpsc::sync_channel::<()>(1);
    let failed = |reason: String| StoreError::Open {
        path: path.to_owned(),
        reason,
    };
    std::thread::Builder::new()
        .name("outbox-checkpoint".into())
        .spawn(move || {
            while asked.recv().is_ok() {
                // Busy only while a close checkpoints the whole log; the next ask tries again.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
        })
        .map_err(|e| failed(format!("cannot start the checkpoint thread: {e}")))?;
    // Replaces SQLite's automatic checkpoint, which is a hook of the same kind.
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            // An error returned here would fail a commit that has happened: it is only logged.
            if pages >= writer_checkpoint_pages {
                if let Err(e) = wal.checkpoint() {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            } else if pages >= checkpoint_pages {
                // Already asked: the thread is at it, or will be.
                let _ = ask.try_send(());
            }
            Ok(())
        }))
        .map_err(|e| failed(format!("cannot hook the write-ahead log: {e}")))
}
