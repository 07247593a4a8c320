//! One worker per destination: claims due deliveries from the outbox, paces them to what the
//! destination accepts, renders and delivers each, and records what happens next. A slow,
//! paced or failing destination only ever holds its own worker.

mod health;

use crate::acted::Acted;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::deliver::{DeliveryError, Doubt, Message, Outgoing, Step};
use crate::error::ConfigError;
use crate::event::{Event, EventError, EventKind, Phase};
use crate::memory::{Memory, RENDER_COPIES, Reservation};
use crate::metrics::{AttemptOutcome, Metrics};
use crate::outbox::{self, Claim, Finish, Outbox, Reader};
use crate::relay::{Live, Relay};
use crate::render::Situation;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Upper bound on one attempt, so a hung peer cannot hold a destination.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a delivery is retried before it is dead; ThousandEyes itself gives up after an hour.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Attempts in flight at once for each destination (pacing still applies).
    pub concurrency: usize,
    /// On SIGTERM, how long attempts in flight may take to finish before the relay exits; what is
    /// left stays in the store for the next start.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The first retry delay (doubled at each attempt) and the shortest pause whatever a
    /// `Retry-After` says.
    #[serde(with = "humantime_serde")]
    pub backoff_min: Duration,
    /// The longest wait between two attempts, `Retry-After` included.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How much lower than the server's the delivery threads' CPU priority is (a nice value,
    /// 0 to 19; 0: deliveries compete with accepting as equals).
    pub niceness: i32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let backoff = Backoff::default();
        Self {
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
            concurrency: 8,
            shutdown_grace: Duration::from_secs(10),
            backoff_min: backoff.min,
            backoff_max: backoff.max,
            niceness: 10,
        }
    }
}

impl DeliveryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::new(
                "delivery.concurrency",
                "must be at least 1",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "delivery.timeout",
                "must be longer than 0s",
            ));
        }
        if !(0..=19).contains(&self.niceness) {
            return Err(ConfigError::new(
                "delivery.niceness",
                "must be from 0 (as the server) to 19 (yield the most)",
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(ConfigError::new(
                "delivery.backoff_min",
                "backoff_min must be longer than 0s and at most backoff_max",
            ));
        }
        Ok(())
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            min: self.backoff_min,
            max: self.backoff_max,
        }
    }
}

pub use health::{Backoff, Health};

/// Longest wait before trying again to record an outcome the store refused: a disk that has room
/// again should be noticed soon.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(10);

pub struct Worker {
    pub name: String,
    /// The relay in force: each attempt takes the current one, so a reload applies to the next
    /// attempt and never to one already running.
    pub live: Arc<Live>,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    /// Room for parsed events, shared with the server.
    pub memory: Arc<Memory>,
    /// Attempts in flight at once for this destination.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// How often to look at the store for what another process changed (`alert-relay retry`).
    pub poll: Duration,
    pub health: Mutex<Health>,
    /// Events accepted before this moment may have been in flight when the last relay on a store
    /// it left open stopped (Unix milliseconds; 0 when the store was closed cleanly).
    pub restarted_at: i64,
}

/// Threads for the workers' store reads.
const DELIVERY_BLOCKING_THREADS: usize = 4;

/// The runtime the delivery workers run on, apart from the server's. Its threads yield the
/// processor to the server's (by `delivery.niceness`): a sender waits for its answer and a
/// destination does not, so when a burst of alerts fills every core, accepting keeps its pace and
/// the deliveries, stored and safe, catch up as soon as the burst eases. With a core to spare,
/// nothing changes. Shut down when dropped, wherever that is.
pub struct DeliveryRuntime(Option<tokio::runtime::Runtime>);

impl DeliveryRuntime {
    /// Delivery threads `niceness` below the starting thread's priority (0 to 19).
    pub fn start(niceness: i32) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("delivery")
            // For the workers' store reads, each a short query: a few threads serve any number
            // of destinations, where one each would hold memory for each.
            .max_blocking_threads(DELIVERY_BLOCKING_THREADS)
            .enable_all()
            .on_thread_start(move || {
                if niceness == 0 {
                    return;
                }
                // Raising one's own niceness needs no privilege; where it fails, deliveries
                // merely compete with the server as equals.
                let this_thread = Some(rustix::thread::gettid());
                let lower = rustix::process::getpriority_process(this_thread)
                    .map_or(niceness, |now| (now + niceness).min(19));
                if let Err(e) = rustix::process::setpriority_process(this_thread, lower) {
                    tracing::debug!(error = %e, "cannot lower the priority of a delivery thread");
                }
            })
            .build()?;
        Ok(Self(Some(runtime)))
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("present until dropped")
            .handle()
            .clone()
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which an async context may not do.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The delivery workers, one per destination, started for destinations that appear on reload.
pub struct Pool {
    /// Where the workers run (see [`DeliveryRuntime`]).
    pub runtime: tokio::runtime::Handle,
    pub live: Arc<Live>,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub memory: Arc<Memory>,
    /// Attempts in flight at once, per destination.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// How often workers look at the store for what another process changed.
    pub poll: Duration,
    /// How long attempts in flight may finish after `stop`.
    pub grace: Duration,
    pub stop: watch::Receiver<bool>,
    pub running: Mutex<HashMap<String, JoinHandle<()>>>,
    /// When this relay started (Unix milliseconds).
    pub started_at: i64,
}

impl Pool {
    /// Starts a worker for every destination of the current relay that has none running. A
    /// worker whose destination was removed stops by itself.
    pub fn start_missing(&self) {
        let relay = self.live.current();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for name in relay.destinations.keys() {
            if running.get(name).is_some_and(|task| !task.is_finished()) {
                continue;
            }
            let worker = Worker {
                name: name.clone(),
                live: self.live.clone(),
                outbox: self.outbox.clone(),
                metrics: self.metrics.clone(),
                memory: self.memory.clone(),
                concurrency: self.concurrency,
                backoff: self.backoff,
                poll: self.poll,
                health: Mutex::default(),
                restarted_at: match self.outbox.left_open() {
                    true => self.started_at,
                    false => 0,
                },
            };
            running.insert(
                name.clone(),
                self.runtime
                    .spawn(worker.run(self.stop.clone(), self.grace)),
            );
        }
    }

    /// Waits for every worker to stop (after `stop` turned true).
    pub async fn join(&self) {
        let tasks: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Worker {
    /// Runs until `shutdown` turns true or the destination leaves the config, then lets attempts
    /// in flight finish for up to `grace`; what is left stays pending in the store.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let reader = match self.outbox.reader() {
            Ok(reader) => reader,
            Err(e) => {
                error!(destination = %self.name, error = %e, "cannot read the store; this destination delivers nothing");
                return;
            }
        };
        let this = Arc::new(self);
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let slots = Arc::new(Semaphore::new(this.concurrency.max(1)));
        let mut ready = VecDeque::new();
        let mut ready_room = None;
        let mut attempts = JoinSet::new();
        loop {
            let stop = shutdown.wait_for(|stop| *stop);
            let claimed = tokio::select! {
                biased;
                _ = stop => break,
                claimed = this.claim(&reader, &slots, &in_flight, &mut ready, &mut ready_room) => claimed,
            };
            // Taken after the claim: a reload while the worker waited applies to this attempt.
            let relay = this.live.current();
            let (Some((permit, claim)), Some(target)) =
                (claimed, relay.destinations.get(&this.name))
            else {
                info!(destination = %this.name, "the destination left the config; its worker stops and what waits for it stays in the store");
                break;
            };
            let paused_until = lock(&this.health).paused_until(Instant::now());
            if let Some(until) = paused_until {
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep_until(until) => {}
                }
            }
            if let Some(pace) = &target.pace {
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = pace.until_ready() => {}
                }
            }
            let (round, probing) = {
                let health = lock(&this.health);
                (health.round(), health.probing())
            };
            lock(&in_flight).insert(claim.id);
            let (worker, in_flight) = (this.clone(), in_flight.clone());
            let attempt = attempts.spawn(async move {
                let id = claim.id;
                worker.attempt(&relay, claim, round).await;
                // The slot and the id are let go only once the outcome is committed: a crash
                // repeats at most `concurrency` attempts, and a delivery whose outcome is not yet
                // recorded is never claimed again.
                lock(&in_flight).remove(&id);
                drop(permit);
            });
            if probing {
                // The destination or the store failed: this attempt is a probe, and nothing else
                // starts until it has ended (attempts started before the failure may end first).
                let probe = attempt.id();
                let stopped = tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => true,
                    () = async {
                        while let Some(ended) = attempts.join_next_with_id().await {
                            let id = ended.map_or_else(|e| e.id(), |(id, ())| id);
                            if id == probe {
                                break;
                            }
                        }
                    } => false,
                };
                if stopped {
                    break;
                }
            }
            while attempts.try_join_next().is_some() {}
        }
        let drained = tokio::time::timeout(grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(destination = %this.name, left = attempts.len(), "attempts still running after the shutdown grace; they stay pending for the next start");
            attempts.abort_all();
        }
    }

    /// Waits for a free slot and a due delivery that is not already in flight; `None` once the
    /// destination is no longer configured. Where the destination is unpaced and healthy, one
    /// query claims a delivery for each free slot and `concurrency` more: the others wait in
    /// `ready`, counted in flight, and start as soon as they get their slots (claimed ahead of a
    /// pace, they would wait for it, and for PostgreSQL their leases would run meanwhile).
    /// What is claimed ahead is held within the memory budget by `ready_room`: claiming ahead
    /// first reserves room for `concurrency` of the largest events there can be, and is left out
    /// when that room is not free; once they are read, the room shrinks to what they take.
    async fn claim<'s>(
        &'s self,
        reader: &Reader,
        slots: &Arc<Semaphore>,
        in_flight: &Mutex<HashSet<i64>>,
        ready: &mut VecDeque<Claim>,
        ready_room: &mut Option<Reservation<'s>>,
    ) -> Option<(OwnedSemaphorePermit, Claim)> {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            let relay = self.live.current();
            // `None` once the destination is no longer configured.
            let target = relay.destinations.get(&self.name)?;
            if let Some(claim) = ready.pop_front() {
                if ready.is_empty() {
                    *ready_room = None;
                }
                return Some((permit, claim));
            }
            let healthy = {
                let health = lock(&self.health);
                !health.probing() && health.paused_until(Instant::now()).is_none()
            };
            // Unpaced and healthy: this slot, every free one, and `concurrency` more kept ready
            // for the slots that free next, so that an attempt rarely waits for a claim (on
            // PostgreSQL a round trip; those kept ready wait far less than their lease).
            let unpaced = target.pace.is_none() && healthy;
            let free = slots.available_permits();
            // Those for the free slots start at once, each reserving what its attempt needs; the
            // `concurrency` more wait in `ready`. A stored event's body is at most a request's,
            // its normalized form smaller.
            let room = unpaced
                .then(|| {
                    let largest = 2 * self.memory.max_body_bytes;
                    (self.memory.events).try_reserve(self.concurrency.saturating_mul(largest))
                })
                .flatten();
            let limit = match (unpaced, &room) {
                (false, _) => 1,
                (true, Some(_)) => 1 + free + self.concurrency,
                // No room to keep events waiting: only as many as start at once.
                (true, None) => 1 + free,
            };
            // Registered before looking, so that a change between the look and the wait counts.
            let changed = self.outbox.changed(&self.name);
            let now = outbox::now_ms();
            // A paced destination is driven by one replica (its pace is the destination's); an
            // unpaced one by every replica at once, each claim kept to one by its lease.
            let exclusive = target.pace.is_some();
            let mut due = self
                .due(reader, in_flight, now, limit, exclusive)
                .await
                .into_iter();
            if let Some(claim) = due.next() {
                let mut in_flight = lock(in_flight);
                for claim in due {
                    in_flight.insert(claim.id);
                    ready.push_back(claim);
                }
                if let Some(mut room) = room.filter(|_| !ready.is_empty()) {
                    room.shrink_to(ready.iter().map(Claim::memory_bytes).sum());
                    *ready_room = Some(room);
                }
                return Some((permit, claim));
            }
            // Nothing due: the room is not held while waiting.
            drop(room);
            let wait = match reader.next_due_at(&self.name).await {
                Ok(Some(at)) if at > now => Duration::from_millis((at - now) as u64),
                _ => self.poll,
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(wait.min(self.poll)) => {}
            }
        }
    }

    /// Up to `limit` due deliveries not in flight, the first due first. The set is copied before
    /// the query: an attempt leaves it only after its outcome is committed, so an id missing from
    /// the copy has its outcome committed before the query starts, and the query sees it.
    async fn due(
        &self,
        reader: &Reader,
        in_flight: &Mutex<HashSet<i64>>,
        now: i64,
        limit: usize,
        exclusive: bool,
    ) -> Vec<Claim> {
        let claimed: Vec<i64> = lock(in_flight).iter().copied().collect();
        match reader.due(&self.name, now, claimed, limit, exclusive).await {
            Ok(due) => due,
            Err(e) => {
                error!(destination = %self.name, error = %e, "cannot read due deliveries");
                Vec::new()
            }
        }
    }

    /// Makes one attempt and records its outcome. `round` is the health round the attempt
    /// started in.
    async fn attempt(&self, relay: &Relay, mut claim: Claim, round: u64) {
        let attempt = claim.attempts + 1;
        let body = std::mem::take(&mut claim.body);
        let (thread, trigger) = match claim.thread.take() {
            // Both were written by this relay; a row that does not parse is as good as none.
            Some((thread, trigger)) => (
                serde_json::from_str::<Value>(&thread).ok(),
                serde_json::from_str::<Value>(&trigger).ok(),
            ),
            None => (None, None),
        };
        if claim.refresh && thread.is_none() {
            // A click on a message this destination no longer knows (pruned with retention).
            info!(destination = %self.name, event = %claim.event_id, "nothing to update: the alert's message is no longer known here");
            let done = Finish::Done {
                attempts: attempt,
                thread: None,
            };
            self.record(&claim, done).await;
            return;
        }
        let finish = match self
            .render(relay, body, &claim, thread.as_ref(), trigger.as_ref())
            .await
        {
            Ok((event, messages, _room)) => {
                let doubt = if claim.unsure {
                    Doubt::Attempted
                } else if claim.received_at < self.restarted_at {
                    Doubt::Restarted
                } else {
                    Doubt::None
                };
                let outgoing = Outgoing {
                    event: &event,
                    messages,
                    thread,
                    doubt,
                };
                self.deliver(relay, &outgoing, claim.received_at, attempt, round)
                    .await
            }
            Err(error) => {
                error!(destination = %self.name, event = %claim.event_id, attempt, error = %error, "the stored event cannot be sent; it is dead");
                Finish::Dead {
                    attempts: attempt,
                    error,
                }
            }
        };
        self.record(&claim, finish).await;
    }

    /// Parses the stored event and renders each message the destination sends for it (for a
    /// clear, the update and the reply of its trigger's message), within the memory budget. The
    /// body and the parsed event are let go before sending; what stays reserved is the messages,
    /// which a slow peer keeps in memory until it answers.
    async fn render(
        &self,
        relay: &Relay,
        body: Vec<u8>,
        claim: &Claim,
        thread: Option<&Value>,
        trigger: Option<&Value>,
    ) -> Result<(Event, Vec<(Step, Message)>, Reservation<'_>), String> {
        let cannot = |e: EventError| format!("the stored event cannot be rendered: {e}");
        let measured = crate::event::measure(&body).map_err(cannot)?;
        let mut room = self
            .memory
            .events
            .reserve(measured.shape.parsed_bytes() * RENDER_COPIES)
            .await;
        let received_at =
            chrono::DateTime::from_timestamp_millis(claim.received_at).unwrap_or_default();
        let mut event = Event::from_store(measured, claim.normalized.as_deref(), received_at)
            .map_err(cannot)?;
        drop(body);
        let destination = &relay.destinations[&self.name].destination;
        let acted = self.acted(relay, &event).await;
        // A refresh updates the message in place to show what was done from it.
        let steps = match claim.refresh {
            true => vec![Step::Update],
            false => destination.steps(&event, thread),
        };
        let mut messages = Vec::new();
        for step in steps {
            let situation = Situation {
                silenced: claim.silenced_by.as_deref(),
                acted: acted.as_ref(),
                offers: destination.offers(),
                ..Situation::new(step, trigger)
            };
            let rendered = relay.renderer.render_as(&event, &self.name, situation);
            for failure in &rendered.failures {
                warn!(
                    destination = %self.name,
                    event = %event.id,
                    template = %failure.template,
                    line = failure.line,
                    error = %failure.reason,
                    "template failed; sending the fallback message"
                );
            }
            if let Some(first) = rendered.failures.first() {
                self.metrics.fallback(&self.name, &first.template);
            }
            messages.push((step, rendered.message));
        }
        event.raw = serde_json::Map::new();
        room.shrink_to(messages.iter().map(|(_, m)| m.memory_bytes()).sum());
        Ok((event, messages, room))
    }

    /// What was done from the messages of `event`'s alert, where the relay offers buttons
    /// anywhere; `None` otherwise, or when the store cannot say (the message then shows none).
    async fn acted(&self, relay: &Relay, event: &Event) -> Option<Acted> {
        let correlation = event.correlation()?;
        if !relay.takes_actions() {
            return None;
        }
        match self.outbox.actions(correlation.key).await {
            Ok(actions) => Some(Acted::from_actions(&actions, crate::outbox::now_ms())),
            Err(e) => {
                warn!(destination = %self.name, event = %event.id, error = %e, "cannot read what was done from the alert's messages; the message shows none of it");
                None
            }
        }
    }

    /// Commits `finish`. While the store refuses (a full disk), the worker pauses and tries
    /// again later, with the delivery still counted in flight: it is never sent again because
    /// its outcome could not be written.
    async fn record(&self, claim: &Claim, finish: Finish) {
        let mut failures = 0;
        loop {
            match self
                .outbox
                .finish(claim.id, &self.name, finish.clone())
                .await
            {
                Ok(()) => {
                    if failures > 0 {
                        lock(&self.health).unrecorded -= 1;
                        info!(destination = %self.name, event = %claim.event_id, "recorded the outcome once the store took it");
                    }
                    return;
                }
                Err(e) => {
                    failures += 1;
                    let delay = self.backoff.delay(failures, None).min(MAX_STORE_BACKOFF);
                    {
                        let mut health = lock(&self.health);
                        if failures == 1 {
                            health.unrecorded += 1;
                        }
                        health.pause(delay);
                    }
                    error!(destination = %self.name, event = %claim.event_id, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot record the outcome of an attempt; this destination pauses until the store takes it");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn deliver(
        &self,
        relay: &Relay,
        outgoing: &Outgoing<'_>,
        received_at: i64,
        attempt: u32,
        round: u64,
    ) -> Finish {
        let event = outgoing.event;
        let started = Instant::now();
        let destination = &relay.destinations[&self.name].destination;
        let result = tokio::time::timeout(relay.timeout, destination.deliver(outgoing))
            .await
            .unwrap_or(Err(DeliveryError::Timeout));
        let took_ms = started.elapsed().as_millis() as u64;
        let since_accepted = Duration::from_millis((outbox::now_ms() - received_at).max(0) as u64);
        let latency_ms = since_accepted.as_millis() as u64;
        match result {
            Ok(sent) => {
                info!(destination = %self.name, event = %event.id, attempt, took_ms, latency_ms, answer = %sent.receipt.0, "delivered");
                self.metrics
                    .attempt(&self.name, AttemptOutcome::Delivered, since_accepted);
                lock(&self.health).succeeded();
                Finish::Done {
                    attempts: attempt,
                    thread: kept_thread(event, sent.thread),
                }
            }
            Err(e) if e.is_retryable() => {
                let delay = self.backoff.delay(attempt, e.retry_after());
                let paused = lock(&self.health).failed(&self.backoff, round, e.retry_after());
                if let Some(pause) = paused {
                    warn!(destination = %self.name, pause_ms = pause.as_millis() as u64, "the destination failed; it is paused, then probed with one attempt at a time");
                }
                if since_accepted + delay > relay.max_age {
                    error!(destination = %self.name, event = %event.id, attempt, latency_ms, error = %e, "giving up: retried for longer than delivery.max_age");
                    self.metrics
                        .attempt(&self.name, AttemptOutcome::Dead, since_accepted);
                    Finish::Dead {
                        attempts: attempt,
                        error: format!("{e} (gave up after delivery.max_age)"),
                    }
                } else {
                    warn!(destination = %self.name, event = %event.id, attempt, took_ms, latency_ms, error = %e, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry");
                    self.metrics
                        .attempt(&self.name, AttemptOutcome::Retry, since_accepted);
                    Finish::Retry {
                        attempts: attempt,
                        due: outbox::now_ms() + delay.as_millis() as i64,
                        error: e.to_string(),
                    }
                }
            }
            Err(e) => {
                error!(destination = %self.name, event = %event.id, attempt, took_ms, latency_ms, error = %e, "delivery refused; not retrying");
                self.metrics
                    .attempt(&self.name, AttemptOutcome::Dead, since_accepted);
                Finish::Dead {
                    attempts: attempt,
                    error: e.to_string(),
                }
            }
        }
    }
}

/// What to keep of a delivered trigger's message for its clear, with the trigger's summary; of a
/// group's first notification, for the later ones.
fn kept_thread(event: &Event, thread: Option<Value>) -> Option<outbox::Thread> {
    let key = match (event.kind, event.lifecycle()) {
        (EventKind::Group, _) => event.summary.alert_id.as_deref()?,
        (_, Some((key, Phase::Trigger))) => key,
        _ => return None,
    };
    Some(outbox::Thread {
        correlation: key.to_owned(),
        thread: thread?.to_string(),
        trigger_summary: serde_json::to_string(&event.summary).ok()?,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The set holds plain ids; one panicking attempt must not stop the worker.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn niceness_is_from_0_to_19() {
        for (niceness, valid) in [(-1, false), (0, true), (19, true), (20, false)] {
            let config = DeliveryConfig {
                niceness,
                ..DeliveryConfig::default()
            };
            match config.validate() {
                Ok(()) => assert!(valid, "{niceness} accepted"),
                Err(e) => {
                    assert!(!valid, "{niceness} refused: {e}");
                    assert!(e.to_string().contains("delivery.niceness"), "{e}");
                }
            }
        }
    }

    #[test]
    fn delivery_threads_yield_to_the_server() {
        let server_niceness = rustix::process::getpriority_process(None).unwrap();
        let delivery = DeliveryRuntime::start(10).unwrap();
        let (niceness, name) = delivery.handle().block_on(async {
            tokio::spawn(async {
                (
                    rustix::process::getpriority_process(Some(rustix::thread::gettid())),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap()
        });
        assert_eq!(name.as_deref(), Some("delivery"));
        assert_eq!(niceness.unwrap(), (server_niceness + 10).min(19));
    }
}
