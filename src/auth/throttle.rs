//! Guessing is slowed: once one key (a client id, an operator's name, an address) has failed
//! [`MAX_FAILURES`] times within [`WINDOW`], it is refused until that window ends, whatever it
//! presents. In memory, per relay process: a replica counts its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures one key may have in a window: a person mistyping a password, a client whose secret
/// was rotated, not a guesser (who got about 2,000 tries a second without it).
pub const MAX_FAILURES: u32 = 10;
/// How long failures count, and how long a key that had too many waits at most.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys remembered at most; past that, the windows that ended are forgotten, and if none has,
/// everything (so that addresses cannot fill memory).
const MAX_KEYS: usize = 10_000;

/// Failures by key, each with when its window started.
#[derive(Default)]
pub struct Throttle(Mutex<HashMap<String, (u32, Instant)>>);

impl Throttle {
    /// How long until `keys` may try again, if one of them has failed too often.
    pub fn wait(&self, keys: &[String]) -> Option<Duration> {
        let failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|key| failures.get(key))
            .filter(|(count, since)| *count >= MAX_FAILURES && since.elapsed() < WINDOW)
            .map(|(_, since)| WINDOW.saturating_sub(since.elapsed()))
            .max()
    }

    /// Counts a failure against each of `keys`.
    pub fn failed(&self, keys: &[String]) {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if failures.len() >= MAX_KEYS {
                failures.clear();
            }
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_with_too_many_failures_waits_and_others_do_not() {
        let throttle = Throttle::default();
        let guesser = vec!["client:te".to_owned(), "address:192.0.2.1".to_owned()];
        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed(&guesser);
        }
        assert_eq!(throttle.wait(&guesser), None);
        throttle.failed(&guesser);
        assert!(throttle.wait(&guesser).is_some_and(|w| w <= WINDOW));
        // The same address with another client, or another address with the same client.
        assert!(throttle.wait(&["address:192.0.2.1".to_owned()]).is_some());
        assert_eq!(
            throttle.wait(&["client:other".to_owned(), "address:192.0.2.2".to_owned()]),
            None
        );
    }
}
