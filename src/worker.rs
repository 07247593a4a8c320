//! One worker per destination: claims the next due delivery, renders it, delivers it, and
//! schedules what happens next. A slow or failing destination only ever holds its own worker.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::deliver::{AnyDestination, DeliveryError, Destination};
use crate::metrics::Metrics;
use crate::outbox::{Delivery, Outbox};
use crate::render::Renderer;

/// First retry delay; doubled at each attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts, `Retry-After` included, so that a peer asking for an hour
/// cannot park an alert past its usefulness.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct Worker {
    pub name: String,
    pub destination: Arc<AnyDestination>,
    pub renderer: Arc<Renderer>,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub timeout: Duration,
    pub max_age: Duration,
}

impl Worker {
    /// Runs until `shutdown` turns true; an attempt in flight is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let delivery = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                delivery = self.outbox.next_due(&self.name) => delivery,
            };
            self.attempt(delivery).await;
        }
    }

    async fn attempt(&self, mut delivery: Delivery) {
        let event = delivery.event.clone();
        let rendered = self.renderer.render(&event, &self.name);
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
        delivery.attempts += 1;
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.timeout,
            self.destination.deliver(&event, &rendered.message),
        )
        .await
        .unwrap_or(Err(DeliveryError::Timeout));
        let took_ms = started.elapsed().as_millis() as u64;
        let attempt = delivery.attempts;
        match result {
            Ok(receipt) => {
                info!(destination = %self.name, event = %event.id, attempt, took_ms, answer = %receipt.0, "delivered");
                self.metrics.delivery(&self.name, "delivered");
                self.outbox.finish(delivery);
            }
            Err(e) if e.is_retryable() => {
                let delay = backoff(attempt, e.retry_after());
                if delivery.accepted_at.elapsed() + delay > self.max_age {
                    error!(destination = %self.name, event = %event.id, attempt, error = %e, "giving up: retried for longer than delivery.max_age");
                    self.metrics.delivery(&self.name, "dead");
                    self.outbox.finish(delivery);
                } else {
                    warn!(destination = %self.name, event = %event.id, attempt, took_ms, error = %e, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry");
                    self.metrics.delivery(&self.name, "retry");
                    self.outbox.retry(delivery, Instant::now() + delay);
                }
            }
            Err(e) => {
                error!(destination = %self.name, event = %event.id, attempt, took_ms, error = %e, "delivery refused; not retrying");
                self.metrics.delivery(&self.name, "dead");
                self.outbox.finish(delivery);
            }
        }
    }
}

/// How long to wait before attempt `attempt + 1`: what the peer asked for (`Retry-After`), else
/// exponential from [`INITIAL_BACKOFF`] with jitter (half to all of the step, so that deliveries
/// failing together do not retry together), never more than [`MAX_BACKOFF`].
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_BACKOFF);
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
        assert_eq!(
            backoff(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(1, Some(Duration::from_secs(7200))), MAX_BACKOFF);
    }
}
