//! Silences over HTTP, on the studio's listener (its auth applies), and the page that uses them:
//! `GET /api/silences` (`?all=true`: also those that ended, as long as the store keeps them),
//! `POST /api/silences`, `DELETE /api/silences/ID`, and `GET /api/silences/preview?match=…`:
//! which of the events the store keeps a silence with those matchers would have matched. The
//! same silences as `alert-relay silence`, kept in the store and applied by every relay on it.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::{Studio, query_value};
use crate::event::{Event, EventKind};
use crate::http::{HttpResponse, error, json_response};
use crate::noise::{NewSilence, Silence};
use crate::outbox::now_ms;
use crate::route::matcher::{Matcher, all_match};

/// How many of the latest events a preview looks through, and how many matches it lists.
const PREVIEW_EVENTS: usize = 500;
const PREVIEW_LISTED: usize = 50;

/// What `POST /api/silences` takes, as `silence add` does: `duration` (`"2h"`) or `ends_at`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilenceRequest {
    matchers: Vec<String>,
    comment: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
}

impl NewSilenceRequest {
    /// The silence it asks for at `now`, or why it cannot be.
    fn silence(self, now: i64) -> Result<Silence, String> {
        let time = |field: &str, text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis())
                .map_err(|_| format!("{field}: {text:?} is not an RFC 3339 time"))
        };
        let starts_at = match &self.starts_at {
            Some(text) => time("starts_at", text)?,
            None => now,
        };
        let ends_at = match (&self.duration, &self.ends_at) {
            (Some(duration), None) => {
                let length = humantime::parse_duration(duration)
                    .map_err(|e| format!("duration: {duration:?} is not a duration ({e})"))?;
                starts_at.saturating_add(i64::try_from(length.as_millis()).unwrap_or(i64::MAX))
            }
            (None, Some(text)) => time("ends_at", text)?,
            _ => return Err("give duration (\"2h\") or ends_at, one of them".into()),
        };
        let new = NewSilence {
            matchers: self.matchers,
            starts_at,
            ends_at,
            comment: self.comment,
            created_by: self.created_by,
        };
        Silence::new(new, now)
    }
}

impl Studio {
    /// `GET /api/silences`: newest first; those that ended only with `all=true`.
    pub(super) async fn list_silences(&self, query: &str) -> HttpResponse {
        let all = query_value(query, "all").as_deref() == Some("true");
        let now = now_ms();
        let after = if all { 0 } else { now };
        match self.outbox.silences(after).await {
            Ok(rows) => {
                let silences: Vec<Value> = (rows.iter())
                    .filter_map(|row| Silence::from_row(row).ok())
                    .map(|silence| silence.json(now))
                    .collect();
                json_response(StatusCode::OK, &json!({ "silences": silences }))
            }
            Err(e) => store_unreadable(&e),
        }
    }

    /// `POST /api/silences`: 201 with the silence, in force here at once (on other relays of
    /// the store within `storage.poll`); 422 with why when it cannot be one.
    pub(super) async fn add_silence(&self, body: Value) -> HttpResponse {
        let request: NewSilenceRequest = match serde_json::from_value(body) {
            Ok(request) => request,
            Err(e) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("not a silence: {e}"),
                );
            }
        };
        let now = now_ms();
        let silence = match request.silence(now) {
            Ok(silence) => silence,
            Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, &why),
        };
        let answer = silence.json(now);
        match self.silences.add(&self.outbox, silence).await {
            Ok(()) => json_response(StatusCode::CREATED, &answer),
            Err(e) => store_unreadable(&e),
        }
    }

    /// `DELETE /api/silences/ID`: ends it now; the triggers it held that still fire are sent.
    /// 404 when the store has no such silence that has not ended.
    pub(super) async fn expire_silence(&self, id: &str) -> HttpResponse {
        match self.silences.expire(&self.outbox, id).await {
            Ok(true) => json_response(StatusCode::OK, &json!({ "id": id, "state": "expired" })),
            Ok(false) => error(
                StatusCode::NOT_FOUND,
                "no silence with this id that has not ended",
            ),
            Err(e) => store_unreadable(&e),
        }
    }

    /// `GET /api/silences/preview?match=…&match=…`: which of the latest events the store keeps
    /// these matchers match (group notifications left out), newest first.
    pub(super) async fn preview_silence(&self, query: &str) -> HttpResponse {
        let texts: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == "match")
            .map(|(_, value)| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .collect();
        let matchers = match texts
            .iter()
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(matchers) if !matchers.is_empty() => matchers,
            Ok(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "no matcher given"),
            Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, &why),
        };
        let recent = match self.outbox.recent_events(PREVIEW_EVENTS).await {
            Ok(recent) => recent,
            Err(e) => return store_unreadable(&e),
        };
        let events: Vec<(Event, String)> = (recent.iter())
            .filter_map(|row| {
                let received = chrono::DateTime::from_timestamp_millis(row.received_at)?;
                let event = Event::from_normalized(row.normalized.as_deref()?, received).ok()?;
                Some((event, row.event_id.clone()))
            })
            .filter(|(event, _)| event.kind != EventKind::Group)
            .collect();
        let matched: Vec<&(Event, String)> = (events.iter())
            .filter(|(event, _)| all_match(&matchers, event))
            .collect();
        let listed: Vec<Value> = (matched.iter().take(PREVIEW_LISTED))
            .map(|(event, id)| {
                json!({
                    "id": id,
                    "received_at": crate::noise::silence::rfc3339(event.received_at.timestamp_millis()),
                    "source": event.source.name,
                    "kind": event.kind.as_str(),
                    "title": event.summary.title,
                })
            })
            .collect();
        json_response(
            StatusCode::OK,
            &json!({ "checked": events.len(), "matched": matched.len(), "events": listed }),
        )
    }
}

fn store_unreadable(e: &crate::outbox::StoreError) -> HttpResponse {
    warn!(error = %e, "the silences of the store cannot be read or written");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot be reached; try again",
    )
}
