//! What the last attempts said about a destination and the store, and how long to wait before
//! the next attempt.

use std::time::Duration;

use tokio::time::Instant;

/// First retry delay; doubled at each attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Shortest wait before trying a destination again, whatever its `Retry-After` says: a peer that
/// answers `Retry-After: 0` (or a date in the past) must not turn retries into a flood.
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts, `Retry-After` included, so that a peer asking for an hour
/// cannot park an alert past its usefulness.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the last attempts said about the destination and the store. A failing destination is
/// paused as a whole and then probed with one attempt at a time, so that a backlog does not turn
/// into one retry per waiting delivery; an outcome the store cannot record pauses the worker too.
#[derive(Debug, Default)]
pub struct Health {
    /// No attempt starts before this: the peer asked to wait (`Retry-After`), an attempt failed,
    /// or the store could not record an outcome.
    paused_until: Option<Instant>,
    /// Probes that failed in a row; while above 0, one attempt at a time is made.
    failures: u32,
    /// Bumped at every failure that counts: attempts started before it were already in flight
    /// when the destination failed, and their failures do not lengthen the pause again.
    round: u64,
    /// Outcomes waiting for the store to take them.
    pub unrecorded: usize,
}

impl Health {
    /// The round attempts that start now belong to.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// When attempts may start again.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    pub fn pause(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Whether attempts should go one at a time until one succeeds.
    pub fn probing(&self) -> bool {
        self.failures > 0 || self.unrecorded > 0
    }

    /// An attempt succeeded: the destination takes messages again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// An attempt started in `round` failed in a way that may pass later: the whole destination
    /// pauses, for what the peer asked (`Retry-After`, at least [`MIN_BACKOFF`]) or for a backoff
    /// that grows with each probe that fails. Attempts that were already in flight when the first
    /// failure came keep the pause as it is (or lengthen it to their `Retry-After`). Returns the
    /// new pause when this failure started one.
    pub fn failed(&mut self, round: u64, retry_after: Option<Duration>) -> Option<Duration> {
        if round != self.round {
            if let Some(wait) = retry_after {
                self.pause(backoff(1, Some(wait)));
            }
            return None;
        }
        self.round += 1;
        self.failures += 1;
        let delay = backoff(self.failures, retry_after);
        self.pause(delay);
        Some(delay)
    }
}

/// How long to wait before attempt `attempt + 1`: what the peer asked for (`Retry-After`, never
/// less than [`MIN_BACKOFF`]), else exponential from [`INITIAL_BACKOFF`] with jitter (half to all
/// of the step, so that deliveries failing together do not retry together), never more than
/// [`MAX_BACKOFF`].
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.clamp(MIN_BACKOFF, MAX_BACKOFF);
    }
    let step = INITIAL_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF);
    let half = step / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..=20 {
            let step = INITIAL_BACKOFF * 2u32.pow((attempt - 1).min(20));
            let d = backoff(attempt, None);
            assert!(d <= step.min(MAX_BACKOFF), "attempt {attempt}: {d:?}");
            assert!(d >= step.min(MAX_BACKOFF) / 2, "attempt {attempt}: {d:?}");
        }
        assert_eq!(backoff(1, Some(Duration::ZERO)), MIN_BACKOFF);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(1, Some(Duration::from_secs(7200))), MAX_BACKOFF);
    }

    #[test]
    fn failures_already_in_flight_do_not_lengthen_the_pause() {
        let mut health = Health::default();
        let round = health.round();
        let first = health
            .failed(round, None)
            .expect("the first failure pauses");
        assert!(first <= INITIAL_BACKOFF && health.probing());
        assert_eq!(health.failed(round, None), None, "in flight with the first");
        let probe = health.failed(health.round(), None).expect("a probe failed");
        assert!(
            probe >= INITIAL_BACKOFF,
            "the second pause is longer: {probe:?}"
        );
        health.succeeded();
        assert!(!health.probing());
        assert_eq!(
            health.failed(health.round(), Some(Duration::ZERO)),
            Some(MIN_BACKOFF),
            "Retry-After: 0 still waits"
        );
    }
}
