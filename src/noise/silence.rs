//! Silences: matchers over an event's fields, for a while. An event that an active silence
//! matches is accepted and stored, and not sent; a trigger it held that is still firing when the
//! silence ends is sent then. Silences live in the store, so that they outlast a restart and
//! every relay on a shared store applies them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::event::Event;
use crate::outbox::SilenceRow;
use crate::route::matcher::{Matcher, all_match};

/// One silence.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    /// Unix milliseconds, as the other times.
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// What a new silence is made of, as `silence add` and the HTTP API take it.
pub struct NewSilence {
    pub matchers: Vec<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: Option<String>,
}

impl Silence {
    /// A silence from `new`, with an id of its own, made at `now`; or why it cannot be one.
    pub fn new(new: NewSilence, now: i64) -> Result<Silence, String> {
        let matchers = (new.matchers.iter())
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()?;
        if matchers.is_empty() {
            return Err("a silence needs at least one matcher (--match field=value)".into());
        }
        if new.comment.trim().is_empty() {
            return Err("a silence needs a comment saying why (--comment)".into());
        }
        if new.ends_at <= new.starts_at {
            return Err("a silence must end after it starts".into());
        }
        if new.ends_at <= now {
            return Err("a silence must end in the future".into());
        }
        Ok(Silence {
            id: new_id(),
            matchers,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            comment: new.comment.trim().to_owned(),
            created_by: new.created_by.filter(|by| !by.trim().is_empty()),
            created_at: now,
        })
    }

    /// The silence the store kept; `None` if its matchers no longer read (written by a newer
    /// version, say).
    pub fn from_row(row: &SilenceRow) -> Result<Silence, String> {
        let texts: Vec<String> = serde_json::from_str(&row.matchers)
            .map_err(|e| format!("silence {}: its matchers do not read: {e}", row.id))?;
        let matchers = (texts.iter())
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("silence {}: {e}", row.id))?;
        Ok(Silence {
            id: row.id.clone(),
            matchers,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            comment: row.comment.clone(),
            created_by: row.created_by.clone(),
            created_at: row.created_at,
        })
    }

    pub fn row(&self) -> SilenceRow {
        let texts: Vec<String> = self.matchers.iter().map(Matcher::to_string).collect();
        SilenceRow {
            id: self.id.clone(),
            matchers: serde_json::to_string(&texts).unwrap_or_else(|_| "[]".into()),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
        }
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    pub fn matches(&self, event: &Event) -> bool {
        all_match(&self.matchers, event)
    }

    /// `pending` (not started), `active` or `expired`.
    pub fn state(&self, now: i64) -> &'static str {
        match (self.starts_at <= now, now < self.ends_at) {
            (false, _) => "pending",
            (true, true) => "active",
            (true, false) => "expired",
        }
    }

    /// What it holds deliveries as: `silence:ID`.
    pub fn silencer(&self) -> String {
        format!("silence:{}", self.id)
    }

    /// The silence as the HTTP API and `silence list --json` show it.
    pub fn json(&self, now: i64) -> Value {
        json!({
            "id": self.id,
            "matchers": self.matchers.iter().map(Matcher::to_string).collect::<Vec<_>>(),
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": rfc3339(self.created_at),
            "state": self.state(now),
        })
    }
}

/// Unix milliseconds as RFC 3339, to the second.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Twelve random hex digits: short enough to type in `silence expire`.
fn new_id() -> String {
    let mut bytes = [0u8; 6];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Without the system's randomness, the clock's nanoseconds still tell silences apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&nanos.to_le_bytes()[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
