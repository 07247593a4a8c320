//! Checkpoints off the writer's path. SQLite's own checkpoint runs inside the commit that grows
//! the write-ahead log past its limit: that commit, and every accept waiting behind it, waits
//! while a thousand pages are copied into the store and the store is synced. Here the writer
//! only asks, and a thread of its own, on a connection of its own, copies the log into the store
//! while the writer goes on committing (a passive checkpoint never holds up a writer).
//!
//! The log starts over from its beginning only once everything in it was copied, and the writer
//! adds to it while the thread copies. So once the thread is done, the writer copies, between two
//! commits, the little that came since; its next commit then starts the log over, and the log
//! stays about [`CHECKPOINT_PAGES`] long. Past [`WRITER_CHECKPOINT_PAGES`] (the thread cannot
//! keep up) the writer copies everything itself, as SQLite would.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;

use super::schema::connect;
use crate::outbox::StoreError;

/// Pages in the log past which the checkpoint thread is asked to copy them (SQLite's own
/// automatic checkpoint runs at the same size).
const CHECKPOINT_PAGES: i32 = 1000;
/// Pages in the log past which the writer copies them itself before its next commit.
const WRITER_CHECKPOINT_PAGES: i32 = 16 * CHECKPOINT_PAGES;

/// Starts the checkpoint thread for the store at `path` and has `writer`, the store's only
/// write connection, ask it for checkpoints. The thread ends when `writer` is dropped.
pub(super) fn start(writer: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let conn = connect(path, false)?;
    let (ask, asked) = mpsc::sync_channel::<()>(1);
    // Set by the thread when it has copied the log as it was when it started.
    let copied = Arc::new(AtomicBool::new(false));
    let failed = |reason: String| StoreError::Open {
        path: path.to_owned(),
        reason,
    };
    let done = copied.clone();
    std::thread::Builder::new()
        .name("outbox-checkpoint".into())
        .spawn(move || {
            while asked.recv().is_ok() {
                // Busy only while a close checkpoints the whole log; the next ask tries again.
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    Ok(()) => done.store(true, Ordering::Release),
                    Err(e) => tracing::debug!(error = %e, "checkpoint skipped"),
                }
            }
        })
        .map_err(|e| failed(format!("cannot start the checkpoint thread: {e}")))?;
    // Replaces SQLite's automatic checkpoint, which is a hook of the same kind.
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            // An error returned here would fail a commit that has happened: it is only logged.
            if pages >= WRITER_CHECKPOINT_PAGES || copied.swap(false, Ordering::Acquire) {
                if let Err(e) = wal.checkpoint() {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            } else if pages >= CHECKPOINT_PAGES {
                // Already asked: the thread is at it, or will be.
                let _ = ask.try_send(());
            }
            Ok(())
        }))
        .map_err(|e| failed(format!("cannot hook the write-ahead log: {e}")))
}
