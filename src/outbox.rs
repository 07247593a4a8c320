//! The outbox: accepted events and one delivery per destination, until each is delivered or
//! dead. Deduplicates on `eventId`, because ThousandEyes re-posts any notification that did not
//! get a 200.
//!
//! This version keeps everything in memory: a restart loses what is waiting. Nothing outside this
//! module knows that, so a durable store can replace it behind the same calls.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::event::Event;

/// How many deliveries may wait at once; past it, new events get 503 and ThousandEyes retries.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// How many event ids are remembered for deduplication; ThousandEyes re-posts within an hour.
const REMEMBERED_IDS: usize = 100_000;

/// One event on its way to one destination.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: u64,
    pub event: Arc<Event>,
    pub destination: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub accepted_at: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    New { deliveries: usize },
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("too many deliveries waiting ({0}); try again later")]
    Full(usize),
}

pub struct Outbox {
    state: Mutex<State>,
    /// Wakes a destination's worker when a delivery for it arrives.
    wakers: HashMap<String, Notify>,
    capacity: usize,
}

#[derive(Default)]
struct State {
    seen: HashSet<String>,
    /// Oldest first, to forget ids beyond [`REMEMBERED_IDS`].
    seen_order: VecDeque<String>,
    /// Per destination, deliveries ordered by when they are due.
    queues: HashMap<String, BTreeMap<(Instant, u64), Delivery>>,
    waiting: usize,
    next_id: u64,
}

impl Outbox {
    pub fn new<'a>(destinations: impl IntoIterator<Item = &'a String>, capacity: usize) -> Self {
        let wakers = destinations
            .into_iter()
            .map(|name| (name.clone(), Notify::new()))
            .collect();
        Self {
            state: Mutex::new(State::default()),
            wakers,
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `event` with one delivery per destination in `to`, unless its id was seen before.
    pub fn accept(&self, event: Event, to: &[String]) -> Result<Accepted, OutboxError> {
        let mut state = self.lock();
        if state.seen.contains(&event.id) {
            return Ok(Accepted::Duplicate);
        }
        if state.waiting + to.len() > self.capacity {
            return Err(OutboxError::Full(state.waiting));
        }
        state.seen.insert(event.id.clone());
        state.seen_order.push_back(event.id.clone());
        if state.seen_order.len() > REMEMBERED_IDS
            && let Some(old) = state.seen_order.pop_front()
        {
            state.seen.remove(&old);
        }
        let event = Arc::new(event);
        let now = Instant::now();
        for destination in to {
            state.next_id += 1;
            let delivery = Delivery {
                id: state.next_id,
                event: event.clone(),
                destination: destination.clone(),
                attempts: 0,
                accepted_at: now,
            };
            state.enqueue(now, delivery);
        }
        drop(state);
        for destination in to {
            if let Some(waker) = self.wakers.get(destination) {
                waker.notify_one();
            }
        }
        Ok(Accepted::New {
            deliveries: to.len(),
        })
    }

    /// Waits until a delivery for `destination` is due and claims it.
    pub async fn next_due(&self, destination: &str) -> Delivery {
        let Some(waker) = self.wakers.get(destination) else {
            return std::future::pending().await;
        };
        loop {
            let notified = waker.notified();
            let next_due = {
                let mut state = self.lock();
                let queue = state.queues.entry(destination.to_owned()).or_default();
                match queue.first_key_value().map(|(key, _)| *key) {
                    Some(key) if key.0 <= Instant::now() => {
                        let delivery = queue.remove(&key).expect("the key was just seen");
                        return delivery;
                    }
                    Some((due, _)) => Some(due),
                    None => None,
                }
            };
            match next_due {
                Some(due) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Puts a claimed delivery back, due at `due`.
    pub fn retry(&self, delivery: Delivery, due: Instant) {
        let destination = delivery.destination.clone();
        self.lock().requeue(due, delivery);
        if let Some(waker) = self.wakers.get(&destination) {
            waker.notify_one();
        }
    }

    /// Forgets a claimed delivery: delivered, or dead.
    pub fn finish(&self, _delivery: Delivery) {
        let mut state = self.lock();
        state.waiting = state.waiting.saturating_sub(1);
    }

    /// Deliveries not yet delivered or dead, including those being attempted.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }
}

impl State {
    fn enqueue(&mut self, due: Instant, delivery: Delivery) {
        self.waiting += 1;
        self.requeue(due, delivery);
    }

    fn requeue(&mut self, due: Instant, delivery: Delivery) {
        self.queues
            .entry(delivery.destination.clone())
            .or_default()
            .insert((due, delivery.id), delivery);
    }
}
