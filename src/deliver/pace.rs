//! How fast a destination may be sent to: `rate_limit` and `burst`, each kind's default (one of
//! its facts), and the token bucket the worker waits on.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

use super::DestinationKind;

/// Options every destination kind accepts.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonOptions {
    /// A template tree of this destination's own, searched before the main one.
    pub templates: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
    pub burst: Option<u32>,
}

/// How fast a destination may be sent to: `"N/s"`, `"N/m"` or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum RateLimit {
    Unlimited,
    PerPeriod { count: u32, period: Duration },
}

impl TryFrom<String> for RateLimit {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "unlimited" {
            return Ok(Self::Unlimited);
        }
        let invalid = || format!("rate_limit {text:?} is not \"N/s\", \"N/m\" or \"unlimited\"");
        let (count, unit) = text.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            _ => return Err(invalid()),
        };
        if count == 0 {
            return Err(format!("rate_limit {text:?}: the count must be at least 1"));
        }
        Ok(Self::PerPeriod { count, period })
    }
}

/// A kind's pace unless `rate_limit` and `burst` say otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub rate: RateLimit,
    /// The bucket size; the per-period count when `None`.
    pub burst: Option<u32>,
}

impl Pace {
    pub const UNLIMITED: Pace = Pace {
        rate: RateLimit::Unlimited,
        burst: None,
    };

    /// `count` messages a second, bursts of `burst`.
    pub const fn per_second(count: u32, burst: Option<u32>) -> Pace {
        Pace {
            rate: RateLimit::PerPeriod {
                count,
                period: Duration::from_secs(1),
            },
            burst,
        }
    }
}

/// The token bucket for a destination of `kind`, or `None` when it is unlimited: `rate_limit`
/// and `burst` when set, else the kind's default pace.
pub fn limiter(kind: DestinationKind, options: &CommonOptions) -> Option<DefaultDirectRateLimiter> {
    let default = kind.facts().pace();
    let rate = options.rate_limit.unwrap_or(default.rate);
    let RateLimit::PerPeriod { count, period } = rate else {
        return None;
    };
    let default_burst = match options.rate_limit {
        None => default.burst.unwrap_or(count),
        Some(_) => count,
    };
    let count = NonZeroU32::new(count)?;
    let burst = NonZeroU32::new(options.burst.unwrap_or(default_burst)).unwrap_or(count);
    let quota = Quota::with_period(period / count.get())?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            RateLimit::try_from("unlimited".to_string()),
            Ok(RateLimit::Unlimited)
        );
        assert_eq!(
            RateLimit::try_from("2/s".to_string()),
            Ok(RateLimit::PerPeriod {
                count: 2,
                period: Duration::from_secs(1)
            })
        );
        assert!(RateLimit::try_from("0/s".to_string()).is_err());
        assert!(RateLimit::try_from("5/h".to_string()).is_err());
        assert!(RateLimit::try_from("fast".to_string()).is_err());
    }
    fn kind(name: &str) -> DestinationKind {
        DestinationKind::named(name).unwrap()
    }

    #[test]
    fn paces_by_kind_unless_configured() {
        let options = CommonOptions::default();
        assert!(limiter(kind("webhook"), &options).is_none());
        let slack = limiter(kind("slack"), &options).expect("slack is paced");
        // A burst of 3, then the bucket is empty.
        assert!((0..3).all(|_| slack.check().is_ok()));
        assert!(slack.check().is_err());
        let unlimited = CommonOptions {
            rate_limit: Some(RateLimit::Unlimited),
            ..options
        };
        assert!(limiter(kind("slack"), &unlimited).is_none());
    }
}
