//! Noise control: what keeps a storm of alerts readable. Silences (`silence.rs`) hold back what
//! they match for a while; the relay applies those the store keeps, read again every
//! `storage.poll`, and sends the triggers they held that are still firing once they end.
//! Maintenance windows (`window.rs`, `[[maintenance]]`) are silences that recur on a schedule.

pub mod group;
pub mod silence;
pub mod window;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::event::Event;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, StoreError, now_ms};
pub use silence::{NewSilence, Silence};
pub use window::{Window, WindowConfig};

/// The silences that have not ended, as last read from the store (or made here since).
#[derive(Default)]
pub struct Silences {
    current: RwLock<Arc<Vec<Silence>>>,
}

impl Silences {
    /// Reads again the silences of the store that have not ended.
    pub async fn refresh(&self, outbox: &Outbox) -> Result<(), StoreError> {
        let rows = outbox.silences(now_ms()).await?;
        let silences = rows
            .iter()
            .filter_map(|row| {
                Silence::from_row(row)
                    .inspect_err(|e| warn!(error = %e, "a silence of the store is left out"))
                    .ok()
            })
            .collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(silences);
        Ok(())
    }

    fn current(&self) -> Arc<Vec<Silence>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What silences `event` at `now`: the first active silence that matches it, else the first
    /// of `windows` open and matching.
    pub fn silencer(&self, windows: &[Window], event: &Event, now: i64) -> Option<String> {
        let silence = (self.current().iter())
            .find(|s| s.is_active(now) && s.matches(event))
            .map(Silence::silencer);
        silence.or_else(|| {
            let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
            (windows.iter())
                .find(|w| w.matches(event) && w.is_open(at))
                .map(Window::silencer)
        })
    }

    /// How many are active at `now`.
    pub fn active(&self, now: i64) -> usize {
        self.current().iter().filter(|s| s.is_active(now)).count()
    }

    /// Stores `silence` and applies it here at once (other relays on the store, within
    /// `storage.poll`).
    pub async fn add(&self, outbox: &Outbox, silence: Silence) -> Result<(), StoreError> {
        outbox.add_silence(silence.row()).await?;
        info!(silence = %silence.id, matchers = %silence.row().matchers, comment = %silence.comment, "silence added");
        self.refresh(outbox).await
    }

    /// Ends the silence `id` now, here at once; whether it had not ended yet.
    pub async fn expire(&self, outbox: &Outbox, id: &str) -> Result<bool, StoreError> {
        let expired = outbox.expire_silence(id).await?;
        if expired {
            info!(silence = %id, "silence expired");
        }
        self.refresh(outbox).await?;
        Ok(expired)
    }
}

/// Until `stop`: every `poll`, makes the notifications of the groups whose time has come, reads
/// the silences of the store again and sends the triggers still firing that ended silences held,
/// or maintenance windows no longer in `open_windows`.
pub async fn run(
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    silences: Arc<Silences>,
    open_windows: impl Fn(i64) -> Vec<String>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = silences.refresh(&outbox).await {
            warn!(error = %e, "cannot read the silences of the store; the last ones read still apply");
        }
        loop {
            match outbox.flush_groups(group::notification).await {
                Ok(made) => {
                    if made > 0 {
                        info!(notifications = made, "group notifications made");
                        metrics.group_notifications(made);
                    }
                    if made < crate::outbox::FLUSH_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot make the groups' notifications; trying again");
                    break;
                }
            }
        }
        match outbox.unsilence(open_windows(now_ms())).await {
            Ok(0) => {}
            Ok(sent) => info!(
                deliveries = sent,
                "silences ended: the triggers they held that are still firing go out now"
            ),
            Err(e) => warn!(error = %e, "cannot send what ended silences held; trying again"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}
