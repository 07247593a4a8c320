//! One server per store: a lock file beside the store, held while the server runs, naming its
//! holder. Two relays on one SQLite store would both claim and deliver the same deliveries.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::outbox::StoreError;

/// Held while the server runs; dropping it lets another server open the store.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock of the store at `store`, writing `holder` (who and where) into the lock
    /// file; fails with [`StoreError::InUse`], naming the other holder, when another server has it.
    /// `alert-relay deliveries` and `retry` do not take it: they work beside a running server.
    pub fn acquire(store: &Path, holder: &str) -> Result<Self, StoreError> {
        let path = lock_path(store);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: store.to_owned(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let open_error = |e: std::io::Error| StoreError::Open {
            path: store.to_owned(),
            reason: format!("cannot open the lock file {}: {e}", path.display()),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let by = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(StoreError::InUse {
                    path: store.to_owned(),
                    by: by.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(open_error(e)),
        }
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(open_error)?;
        Ok(Self { _file: file })
    }
}

/// The lock file of the store at `store`, beside the file it really is: a symbolic link to the
/// store (or to its folder) names the same lock as the store itself.
fn lock_path(store: &Path) -> PathBuf {
    let resolved = std::fs::canonicalize(store).unwrap_or_else(|_| {
        // No store yet: its folder resolved, and its name.
        let dir = store.parent().filter(|d| !d.as_os_str().is_empty());
        match (dir.map(std::fs::canonicalize), store.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => store.to_owned(),
        }
    });
    let mut name = resolved.into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("relay.db");
        let first = StoreLock::acquire(&store, "pid 1, listening on 127.0.0.1:8080").unwrap();
        let error = StoreLock::acquire(&store, "pid 2").unwrap_err().to_string();
        assert!(
            error.contains("pid 1, listening on 127.0.0.1:8080"),
            "{error}"
        );
        // Through a symbolic link to the store, or to its folder: the same store, refused.
        std::fs::write(&store, b"a store").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&store, &link).unwrap();
        assert!(StoreLock::acquire(&link, "pid 3").is_err());
        let folder = tempfile::tempdir().unwrap();
        let linked_folder = folder.path().join("data");
        std::os::unix::fs::symlink(dir.path(), &linked_folder).unwrap();
        assert!(StoreLock::acquire(&linked_folder.join("relay.db"), "pid 4").is_err());
        drop(first);
        StoreLock::acquire(&link, "pid 2").expect("free again");
    }
}
