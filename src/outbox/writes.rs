//! What both stores share about writing: a store's writer (the SQLite thread, the PostgreSQL
//! task) takes every [`Write`] waiting, applies them in one transaction, commits, then answers
//! each caller with [`answer`]; callers go through [`Writer`].

use tokio::sync::{mpsc, oneshot};

use super::{Accepted, Finish, NewAction, NewEvent, StoreError, Wakers};

/// Writes waiting for the writer; past it, callers wait (back-pressure, not memory).
pub(super) const WRITE_QUEUE: usize = 4096;

/// One write, answered once its batch is committed.
pub(super) enum Write {
    Accept {
        event: NewEvent,
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
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// See `Outbox::flush_groups` (SQLite; PostgreSQL flushes in transactions of its own).
    Flush {
        build: super::BuildNotification,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// See `Outbox::unsilence`.
    Unsilence {
        open_windows: Vec<String>,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// See `Outbox::act`.
    Act {
        action: NewAction,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What one write in a batch did.
#[derive(Clone)]
pub(super) enum Applied {
    Accepted(Accepted),
    Pruned(usize),
    /// The destinations whose deliveries became pending (one per delivery).
    Queued(Vec<String>),
    /// An action kept (`false`: it was already), and the destinations of the refreshes it made.
    Acted(bool, Vec<String>),
    Done,
}

/// The callers' side of a store's writer.
pub(super) struct Writer(mpsc::Sender<Write>);

impl Writer {
    /// A writer and the queue its writer takes writes from.
    pub(super) fn new() -> (Self, mpsc::Receiver<Write>) {
        let (sender, queue) = mpsc::channel(WRITE_QUEUE);
        (Self(sender), queue)
    }

    pub(super) async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        self.submit(make)
            .await?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Queues a write; its answer comes once its batch is committed.
    pub(super) async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }

    pub(super) async fn finish(
        &self,
        id: i64,
        destination: &str,
        finish: Finish,
    ) -> Result<(), StoreError> {
        self.send(|reply| Write::Finish {
            id,
            destination: destination.to_owned(),
            finish,
            reply,
        })
        .await
    }

    pub(super) async fn probe(&self) -> Result<(), StoreError> {
        self.send(|reply| Write::Probe { reply }).await
    }
}

/// Answers each write of a committed (or failed) batch, then wakes the workers of the
/// destinations that have something new.
pub(super) fn answer(
    batch: Vec<Write>,
    applied: Result<Vec<Applied>, StoreError>,
    wakers: &Wakers,
) {
    let mut woken: Vec<String> = Vec::new();
    let mut results = applied.as_ref().ok().map(|r| r.iter().cloned());
    for write in batch {
        let result = match &mut results {
            Some(results) => results.next().ok_or(()),
            None => Err(()),
        };
        let error = || match &applied {
            Err(e) => e.again(),
            Ok(_) => StoreError::Closed,
        };
        let done = |result: Result<Applied, _>| result.map(|_| ()).map_err(|_| error());
        match write {
            Write::Accept { reply, event } => {
                let answer = match result {
                    Ok(Applied::Accepted(accepted)) => Ok(accepted),
                    _ => Err(error()),
                };
                if matches!(answer, Ok(Accepted::New { .. })) {
                    woken.extend(event.to.into_iter().map(|to| to.destination));
                }
                let _ = reply.send(answer);
            }
            Write::Finish {
                reply, destination, ..
            } => {
                woken.push(destination);
                let _ = reply.send(done(result));
            }
            Write::Prune { reply, .. } => {
                let _ = reply.send(match result {
                    Ok(Applied::Pruned(rows)) => Ok(rows),
                    _ => Err(error()),
                });
            }
            Write::Flush { reply, .. } | Write::Unsilence { reply, .. } => {
                let _ = reply.send(match result {
                    Ok(Applied::Queued(destinations)) => {
                        let count = destinations.len();
                        woken.extend(destinations);
                        Ok(count)
                    }
                    _ => Err(error()),
                });
            }
            Write::Act { reply, .. } => {
                let _ = reply.send(match result {
                    Ok(Applied::Acted(new, destinations)) => {
                        woken.extend(destinations);
                        Ok(new)
                    }
                    _ => Err(error()),
                });
            }
            Write::Probe { reply } | Write::Close { reply } => {
                let _ = reply.send(done(result));
            }
        }
    }
    woken.sort_unstable();
    woken.dedup();
    for name in woken {
        wakers.get(&name).notify_one();
    }
}
