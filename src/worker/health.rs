//! What the last attempts said about a destination and the store, and how long to wait before
//! the next attempt.

use std::time::Duration;

use tokio::time::Instant;

/// How long to wait before trying again (`delivery.backoff_min`, `delivery.backoff_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first step, doubled at each attempt; and the shortest wait whatever a `Retry-After`
    /// says, since a peer that answers `Retry-After: 0` (or a date in the past) must not turn
    /// retries into a flood.
    pub min: Duration,
    /// The longest wait, `Retry-After` included, so that a peer asking for an hour cannot park an
    /// alert past its usefulness.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// How long to wait before attempt `attempt + 1`: what the peer asked for (`Retry-After`,
    /// never less than `min`), else exponential from `min` with jitter (half to all of the step,
    /// so that deliveries failing together do not retry together), never more than `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.clamp(self.min, self.max.max(self.min));
        }
        let step = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

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

    /// When attempts may start again, if a pause is still running at `now`.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
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
    /// pauses, for what the peer asked (`Retry-After`, at least `backoff.min`) or for a backoff
    /// that grows with each probe that fails. Attempts that were already in flight when the first
    /// failure came keep the pause as it is (or lengthen it to their `Retry-After`). Returns the
    /// new pause when this failure started one.
    pub fn failed(
        &mut self,
        backoff: &Backoff,
        round: u64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if round != self.round {
            if let Some(wait) = retry_after {
                self.pause(backoff.delay(1, Some(wait)));
            }
            return None;
        }
        self.round += 1;
        self.failures += 1;
        let delay = backoff.delay(self.failures, retry_after);
        self.pause(delay);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let backoff = Backoff::default();
        for attempt in 1..=20 {
            let step = backoff.min * 2u32.pow((attempt - 1).min(20));
            let d = backoff.delay(attempt, None);
            assert!(d <= step.min(backoff.max), "attempt {attempt}: {d:?}");
            assert!(d >= step.min(backoff.max) / 2, "attempt {attempt}: {d:?}");
        }
        assert_eq!(backoff.delay(1, Some(Duration::ZERO)), backoff.min);
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(7200))),
            backoff.max
        );
    }

    #[test]
    fn failures_already_in_flight_do_not_lengthen_the_pause() {
        let backoff = Backoff::default();
        let mut health = Health::default();
        let round = health.round();
        let first = health
            .failed(&backoff, round, None)
            .expect("the first failure pauses");
        assert!(first <= backoff.min && health.probing());
        assert_eq!(
            health.failed(&backoff, round, None),
            None,
            "in flight with the first"
        );
        let probe = health
            .failed(&backoff, health.round(), None)
            .expect("a probe failed");
        assert!(
            probe >= backoff.min,
            "the second pause is longer: {probe:?}"
        );
        health.succeeded();
        assert!(!health.probing());
        assert_eq!(
            health.failed(&backoff, health.round(), Some(Duration::ZERO)),
            Some(backoff.min),
            "Retry-After: 0 still waits"
        );
    }
}
