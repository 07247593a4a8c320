//! The memory budget: how many bytes request bodies and parsed events may hold at once. A request
//! or an attempt reserves what it will need before it reads a body or parses an event, and waits
//! while the budget is spent: many large events at once make each other wait, never the relay run
//! out of memory. Waiting is bounded by `server.request_timeout` for requests (then 408, which
//! ThousandEyes retries) and costs a delivery only time.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Request bodies being read, at least: 32 connections posting 900 KB events fit.
pub const BODIES: usize = 8 * 1024 * 1024;
/// Parsed events (the JSON value, the template context and its copies): a few large events at
/// once, many small ones.
pub const EVENTS: usize = 24 * 1024 * 1024;
/// A rendering holds the parsed event, the template context with `raw` and `alert` (two more
/// copies of it), and the output (as large as the event for the built-in webhook body); measured
/// with a counting allocator on a 900 KB event with 3,000 agents: 3.5 MB parsed, 15 MB at the
/// peak of its webhook rendering.
pub const RENDER_COPIES: usize = 4;
/// What one parsed JSON value takes besides its text (`serde_json::Value`, its map entry and
/// index), and what a byte of text takes once allocated: the same 900 KB event, 24,000 values and
/// 790 KB of text, takes 3.5 MB parsed.
const BYTES_PER_VALUE: usize = 110;
const TEXT_OVERHEAD_PERCENT: usize = 125;

/// About how many bytes a JSON document of `values` values and `text_bytes` bytes of strings and
/// keys takes once parsed.
pub fn json_bytes(values: usize, text_bytes: usize) -> usize {
    values * BYTES_PER_VALUE + text_bytes * TEXT_OVERHEAD_PERCENT / 100
}

/// About how many bytes `value` takes in memory.
pub fn value_bytes(value: &serde_json::Value) -> usize {
    fn walk(value: &serde_json::Value, values: &mut usize, text: &mut usize) {
        *values += 1;
        match value {
            serde_json::Value::String(s) => *text += s.len(),
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, values, text)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
                *text += k.len();
                walk(v, values, text);
            }),
            _ => {}
        }
    }
    let (mut values, mut text) = (0, 0);
    walk(value, &mut values, &mut text);
    json_bytes(values, text)
}

/// The unit the budget counts in: a kibibyte, so that 4 GiB fit the semaphore's count.
const UNIT: usize = 1024;

/// Bytes that may be reserved at once.
pub struct Budget {
    units: Semaphore,
    capacity: u32,
}

/// Reserved bytes, given back when dropped.
pub struct Reservation<'a> {
    units: SemaphorePermit<'a>,
}

impl Reservation<'_> {
    /// Gives back all but `bytes` (when it holds more).
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT).max(1);
        if let Some(extra) = self.units.num_permits().checked_sub(keep) {
            drop(self.units.split(extra));
        }
    }
}

impl Budget {
    pub fn new(bytes: usize) -> Self {
        let capacity = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            units: Semaphore::new(capacity as usize),
            capacity,
        }
    }

    /// Waits until `bytes` are free and reserves them. More than the whole budget reserves the
    /// whole budget: that one waits until it runs alone.
    pub async fn reserve(&self, bytes: usize) -> Reservation<'_> {
        Reservation {
            units: self
                .units
                .acquire_many(self.units(bytes))
                .await
                .expect("the budget's semaphore is never closed"),
        }
    }

    /// Reserves `bytes` if they are free now, without waiting; never more than the whole budget.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation<'_>> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?.max(1);
        if units > self.capacity {
            return None;
        }
        let units = self.units.try_acquire_many(units).ok()?;
        Some(Reservation { units })
    }

    fn units(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity)
    }
}

/// The two budgets of one relay.
pub struct Memory {
    pub bodies: Budget,
    pub events: Budget,
    /// The largest body a request may bring (`server.max_body_bytes`); no stored event's body is
    /// larger.
    pub max_body_bytes: usize,
}

impl Memory {
    /// Budgets that hold at least two bodies of `max_body_bytes`.
    pub fn new(max_body_bytes: usize) -> Self {
        Self {
            bodies: Budget::new(BODIES.max(2 * max_body_bytes)),
            events: Budget::new(EVENTS),
            max_body_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_a_huge_one_runs_alone() {
        let budget = Budget::new(10 * UNIT);
        let first = budget.reserve(6 * UNIT).await;
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                budget.reserve(5 * UNIT)
            )
            .await
            .is_err(),
            "only 4 KiB were left"
        );
        drop(first);
        let mut second = budget.reserve(8 * UNIT).await;
        second.shrink_to(3 * UNIT);
        assert_eq!(budget.units.available_permits(), 7);
        drop(second);
        let huge = budget.reserve(100 * UNIT).await;
        assert_eq!(budget.units.available_permits(), 0);
        drop(huge);
        assert_eq!(budget.units.available_permits(), 10);
    }

    #[test]
    fn a_reservation_that_cannot_wait_is_taken_whole_or_not_at_all() {
        let budget = Budget::new(10 * UNIT);
        let first = budget.try_reserve(6 * UNIT).expect("room for 6 KiB");
        assert!(
            budget.try_reserve(5 * UNIT).is_none(),
            "only 4 KiB were left"
        );
        assert!(
            budget.try_reserve(100 * UNIT).is_none(),
            "more than the whole budget"
        );
        assert_eq!(budget.units.available_permits(), 4);
        drop(first);
        assert!(budget.try_reserve(10 * UNIT).is_some());
    }
}
