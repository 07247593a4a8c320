//! `[[maintenance]]`: windows that recur on a schedule in a time zone, and act as a silence of
//! their matchers while open. A window opens on each of its days at `start` (local time) and
//! closes at `end`, the same day or, when `end` is not after `start`, the next one: it may cross
//! midnight. Local times are read in the window's IANA zone, across daylight-saving changes: a
//! time that a change skips (02:30 on the night clocks go forward) is the first instant after
//! it; a time that happens twice (01:30 on the night they go back) is the first of the two.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::event::Event;
use crate::route::matcher::{Matcher, all_match};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub name: String,
    /// Matchers, as a silence's (`"test=~^db-"`); every one must hold.
    #[serde(rename = "match")]
    pub matchers: Vec<String>,
    pub schedule: ScheduleConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `mon` … `sun`; every day when left out.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM`, local time.
    pub start: String,
    pub end: String,
    /// An IANA name (`Europe/Paris`); UTC when left out.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// One maintenance window.
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    matchers: Vec<Matcher>,
    /// Monday first.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
    zone: Tz,
}

impl Window {
    /// The window `config` describes, the `index`th of `[[maintenance]]`.
    pub fn new(index: usize, config: &WindowConfig) -> Result<Window, ConfigError> {
        let key = |field: &str| format!("maintenance[{index}].{field}");
        let name_ok = !config.name.is_empty()
            && (config.name.chars()).all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !name_ok {
            return Err(ConfigError::new(
                key("name"),
                "is required: letters, digits, _, - and . only",
            ));
        }
        let matchers = (config.matchers.iter())
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(key("match"), e))?;
        if matchers.is_empty() {
            return Err(ConfigError::new(
                key("match"),
                "needs at least one matcher: a window over every alert would hide them all",
            ));
        }
        let schedule = &config.schedule;
        let mut days = [schedule.days.is_empty(); 7];
        for day in &schedule.days {
            let weekday: Weekday = day.parse().map_err(|_| {
                ConfigError::new(
                    key("schedule.days"),
                    format!("{day:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"),
                )
            })?;
            days[weekday.num_days_from_monday() as usize] = true;
        }
        let time = |field: &str, text: &str| {
            NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
                ConfigError::new(
                    key(&format!("schedule.{field}")),
                    format!("{text:?} is not a time of day as HH:MM"),
                )
            })
        };
        let (start, end) = (time("start", &schedule.start)?, time("end", &schedule.end)?);
        if start == end {
            return Err(ConfigError::new(
                key("schedule.end"),
                "equals start: a window needs a length",
            ));
        }
        let zone: Tz = schedule.timezone.parse().map_err(|_| {
            ConfigError::new(
                key("schedule.timezone"),
                format!(
                    "{:?} is not an IANA time zone (such as Europe/Paris)",
                    schedule.timezone
                ),
            )
        })?;
        Ok(Window {
            name: config.name.clone(),
            matchers,
            days,
            start,
            end,
            zone,
        })
    }

    /// What it holds deliveries as: `maintenance:NAME`.
    pub fn silencer(&self) -> String {
        format!("maintenance:{}", self.name)
    }

    pub fn matches(&self, event: &Event) -> bool {
        all_match(&self.matchers, event)
    }

    /// Whether the window is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.open_until(at).is_some()
    }

    /// When the window open at `at` closes; `None` when it is closed.
    pub fn open_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = at.with_timezone(&self.zone).date_naive();
        // A window that crosses midnight may have opened yesterday.
        [today.pred_opt()?, today]
            .into_iter()
            .filter_map(|day| self.occurrence(day))
            .find(|(opens, closes)| *opens <= at && at < *closes)
            .map(|(_, closes)| closes)
    }

    /// When the window next opens after `after`.
    pub fn next_open(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = after.with_timezone(&self.zone).date_naive();
        (0..9)
            .filter_map(|offset| today.checked_add_signed(Duration::days(offset - 1)))
            .filter_map(|day| self.occurrence(day))
            .map(|(opens, _)| opens)
            .find(|opens| *opens > after)
    }

    /// When the window opens and closes if it opens on `day`.
    fn occurrence(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days[day.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let end_day = match self.end > self.start {
            true => day,
            false => day.succ_opt()?,
        };
        Some((
            self.instant(day, self.start)?,
            self.instant(end_day, self.end)?,
        ))
    }

    /// `time` on `day` in the window's zone: the first of two instants, or the first instant
    /// after a skipped time.
    fn instant(&self, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let mut local = day.and_time(time);
        // Daylight-saving changes skip at most a few hours.
        for _ in 0..(4 * 60) {
            if let Some(at) = self.zone.from_local_datetime(&local).earliest() {
                return Some(at.with_timezone(&Utc));
            }
            local += Duration::minutes(1);
        }
        None
    }

    /// A local time as the window's zone shows it, for `check`.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

/// The windows `configs` describe, with unique names.
pub fn windows(configs: &[WindowConfig]) -> Result<Vec<Window>, ConfigError> {
    let mut windows: Vec<Window> = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        let window = Window::new(index, config)?;
        if windows.iter().any(|w| w.name == window.name) {
            return Err(ConfigError::new(
                format!("maintenance[{index}].name"),
                format!("{:?} names another window too", window.name),
            ));
        }
        windows.push(window);
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window named `w` over `test=db` with this schedule.
    fn config(days: &[&str], start: &str, end: &str, zone: &str) -> WindowConfig {
        WindowConfig {
            name: "w".into(),
            matchers: vec!["test=db".into()],
            schedule: ScheduleConfig {
                days: days.iter().map(|d| d.to_string()).collect(),
                start: start.into(),
                end: end.into(),
                timezone: zone.into(),
            },
        }
    }

    fn window(days: &[&str], start: &str, end: &str, zone: &str) -> Window {
        Window::new(0, &config(days, start, end, zone)).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// Europe/Paris goes from UTC+1 to UTC+2 at 02:00 local on 2026-03-29 (a Sunday), and back at
    /// 03:00 local on 2026-10-25 (a Sunday).
    #[test]
    fn a_window_across_midnight_opens_and_closes_at_the_local_times_across_dst() {
        // Saturday 22:00 to Sunday 06:00, Paris time.
        let w = window(&["sat"], "22:00", "06:00", "Europe/Paris");
        // The night the clocks go forward: opens 22:00 UTC+1 (21:00Z), closes 06:00 UTC+2 (04:00Z).
        assert!(!w.is_open(at("2026-03-28T20:59:59Z")));
        assert!(w.is_open(at("2026-03-28T21:00:00Z")));
        assert!(w.is_open(at("2026-03-29T03:59:59Z")));
        assert!(!w.is_open(at("2026-03-29T04:00:00Z")));
        assert_eq!(
            w.open_until(at("2026-03-29T01:30:00Z")),
            Some(at("2026-03-29T04:00:00Z"))
        );
        // The night they go back: opens 22:00 UTC+2 (20:00Z), closes 06:00 UTC+1 (05:00Z): nine
        // hours.
        assert!(!w.is_open(at("2026-10-24T19:59:59Z")));
        assert!(w.is_open(at("2026-10-24T20:00:00Z")));
        assert!(w.is_open(at("2026-10-25T04:59:59Z")));
        assert!(!w.is_open(at("2026-10-25T05:00:00Z")));
        // Not on other days.
        assert!(!w.is_open(at("2026-10-27T23:00:00Z")));
        assert_eq!(
            w.next_open(at("2026-10-25T05:00:00Z")),
            Some(at("2026-10-31T21:00:00Z")),
            "the next Saturday, 22:00 UTC+1"
        );
    }

    #[test]
    fn skipped_and_repeated_local_times() {
        // 02:30 does not happen on 2026-03-29 in Paris: the window opens at 03:00 UTC+2 (01:00Z).
        let skipped = window(&["sun"], "02:30", "04:00", "Europe/Paris");
        assert!(!skipped.is_open(at("2026-03-29T00:59:59Z")));
        assert!(skipped.is_open(at("2026-03-29T01:00:00Z")));
        assert!(!skipped.is_open(at("2026-03-29T02:00:00Z")), "04:00 UTC+2");
        // 02:30 happens twice on 2026-10-25: the first (UTC+2, 00:30Z) opens it.
        let repeated = window(&["sun"], "02:30", "04:00", "Europe/Paris");
        assert!(!repeated.is_open(at("2026-10-25T00:29:59Z")));
        assert!(repeated.is_open(at("2026-10-25T00:30:00Z")));
        assert!(
            repeated.is_open(at("2026-10-25T02:59:59Z")),
            "04:00 UTC+1 is 03:00Z"
        );
        assert!(!repeated.is_open(at("2026-10-25T03:00:00Z")));
    }

    #[test]
    fn every_day_in_utc_by_default() {
        // No days: every day; the zone the config defaults to.
        let w = window(&[], "01:00", "02:00", &utc());
        for day in 1..=7 {
            assert!(w.is_open(at(&format!("2026-06-0{day}T01:30:00Z"))));
            assert!(!w.is_open(at(&format!("2026-06-0{day}T02:00:00Z"))));
        }
    }

    #[test]
    fn a_window_that_cannot_be_is_refused_with_its_key() {
        let bad = |days: &[&str], start: &str, end: &str, zone: &str| {
            Window::new(2, &config(days, start, end, zone))
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(&["someday"], "01:00", "02:00", "UTC").starts_with("maintenance[2].schedule.days")
        );
        assert!(bad(&[], "25:00", "02:00", "UTC").starts_with("maintenance[2].schedule.start"));
        assert!(bad(&[], "01:00", "01:00", "UTC").contains("a window needs a length"));
        assert!(bad(&[], "01:00", "02:00", "Mars/Olympus").contains("not an IANA time zone"));
    }
}
