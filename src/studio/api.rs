//! The studio's API under `/api/`: what the page offers (events, sources, template files,
//! destinations), one event or template, and rendering, saving and sending what is edited. Each
//! answer says what really happened: the file a preview used, the reload's outcome of a save.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::edit::{Edit, failure_json, message_json};
use super::templates::TemplateId;
use super::{SEND_WAIT, Studio, query_value, save};
use crate::deliver::{DestinationKind, Message, Outgoing};
use crate::event::{Event, SourceKind};
use crate::http::{HttpResponse, error, json_response};

/// How many of the events the store keeps the page offers.
const RECENT_EVENTS: usize = 50;

impl Studio {
    /// `GET /api/token`: the CSRF token, for a page opened before the relay restarted.
    pub(super) fn token(&self) -> HttpResponse {
        json_response(StatusCode::OK, &json!({ "csrf": self.csrf }))
    }

    /// What the page offers: events, sources, template files, destinations.
    pub(super) async fn catalog(&self) -> HttpResponse {
        let mut events: Vec<Value> = crate::samples::SAMPLES
            .iter()
            .map(|s| json!({ "id": format!("sample:{}", s.file), "label": format!("sample: {}", s.file) }))
            .collect();
        match self.outbox.recent_events(RECENT_EVENTS).await {
            Ok(recent) => events.extend(recent.iter().map(|e| {
                let at = chrono::DateTime::from_timestamp_millis(e.received_at)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                let what = e.normalized.as_deref().and_then(Event::stored_outline);
                let label = match what {
                    Some((kind, title)) => format!("received {at}: {} {title}", kind.as_str()),
                    None => format!("received {at}: {}", e.event_id),
                };
                json!({ "id": format!("recent:{}", e.id), "label": label })
            })),
            Err(e) => warn!(error = %e, "the studio cannot list the events the store keeps"),
        }
        let relay = self.live.current();
        let templates: Vec<Value> = TemplateId::all()
            .map(|id| {
                let file = id.path(&relay.templates_dir).is_file();
                json!({ "id": id.name(), "kind": id.kind.as_str(), "file": file })
            })
            .collect();
        let destinations: Vec<Value> = relay
            .destinations
            .iter()
            .map(|(name, target)| json!({ "name": name, "kind": target.kind.as_str() }))
            .collect();
        let mut sources: Vec<Value> = relay
            .sources
            .iter()
            .map(|s| json!({ "id": s.origin.name, "label": format!("{} ({})", s.origin.name, s.origin.kind.as_str()) }))
            .collect();
        // A pasted body may be read as any kind that needs no `[sources]` entry.
        for kind in crate::event::WITHOUT_MAP {
            if relay.sources.named(kind.as_str()).is_none() {
                sources.push(json!({ "id": kind.as_str(), "label": kind.as_str() }));
            }
        }
        let group = crate::event::group::SOURCE;
        sources.push(json!({ "id": group, "label": "group (a group notification)" }));
        json_response(
            StatusCode::OK,
            &json!({ "events": events, "sources": sources, "templates": templates, "destinations": destinations, "write": self.write }),
        )
    }

    /// One event's JSON and the source that reads it: a bundled sample or one the store keeps.
    pub(super) async fn event(&self, query: &str) -> HttpResponse {
        let id = query_value(query, "id").unwrap_or_default();
        let found = if let Some(file) = id.strip_prefix("sample:") {
            crate::samples::SAMPLES
                .iter()
                .find(|s| s.file == file)
                .map(|s| (s.body.as_bytes().to_vec(), s.source().to_owned()))
        } else if let Some(row) = id.strip_prefix("recent:").and_then(|n| n.parse().ok()) {
            match self.outbox.event_body(row).await {
                Ok(stored) => stored.map(|(body, normalized)| {
                    // The source that accepted it, as the store kept the event.
                    let source = Event::stored_origin(normalized.as_deref()).map_or_else(
                        |_| SourceKind::Thousandeyes.as_str().to_owned(),
                        |origin| origin.name,
                    );
                    (body, source)
                }),
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        } else {
            None
        };
        let Some((body, source)) = found else {
            return error(StatusCode::NOT_FOUND, "no such event");
        };
        let text = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        json_response(StatusCode::OK, &json!({ "json": text, "source": source }))
    }

    /// One template file's text, or what the relay renders in its place today.
    pub(super) fn template(&self, query: &str) -> HttpResponse {
        match query_value(query, "id").and_then(|id| TemplateId::parse(&id)) {
            Some(id) => json_response(
                StatusCode::OK,
                &id.answer(&self.live.current().templates_dir),
            ),
            None => error(StatusCode::NOT_FOUND, "no such template"),
        }
    }

    /// The name messages of `kind` go by in a preview: the first destination of that kind, or
    /// the kind.
    fn destination_of(&self, kind: DestinationKind) -> String {
        let relay = self.live.current();
        (relay.destinations.iter())
            .find(|(_, target)| target.kind == kind)
            .map_or_else(|| kind.as_str().to_owned(), |(name, _)| name.clone())
    }

    /// Every destination kind's message for the event, each event rendered with the file the
    /// relay would choose for it, the edited one where that is the edited file.
    pub(super) async fn render(&self, request: Value) -> HttpResponse {
        let edit = match Edit::from_request(&request) {
            Ok(edit) => edit,
            Err(refused) => return refused.response(),
        };
        // Under the memory budget the ingest path and the workers share, and off the threads
        // that serve requests: a large preview waits for room and never holds up an accept.
        let _room = self.reserve(&edit.event).await;
        let names: Vec<(DestinationKind, String)> = DestinationKind::all()
            .map(|kind| (kind, self.destination_of(kind)))
            .collect();
        let relay = self.live.current();
        let dir = relay.templates_dir.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let name = |kind| {
                (names.iter().find(|(k, _)| *k == kind))
                    .map_or_else(String::new, |(_, name)| name.clone())
            };
            edit.render_every_kind(&relay.sources, &dir, name)
        });
        let (previews, context) = match rendered.await {
            Ok(Ok(rendered)) => rendered,
            Ok(Err(reason)) => {
                return json_response(StatusCode::OK, &json!({ "event_error": reason }));
            }
            Err(e) => {
                warn!(error = %e, "a studio preview failed");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "the preview failed");
            }
        };
        let mut shown = serde_json::Map::new();
        for preview in previews {
            let mut json = json!({ "templates": preview.templates, "note": preview.note });
            match preview.rendered {
                Ok((message, sent)) => {
                    json["message"] = self.shown(&message);
                    if let Some(sent) = sent {
                        json["message"]["sent"] = sent;
                    }
                }
                Err((failure, fallback)) => {
                    json["failure"] = failure;
                    json["fallback"] = self.shown(&fallback);
                }
            }
            shown.insert(preview.kind.as_str().to_owned(), json);
        }
        json_response(
            StatusCode::OK,
            &json!({ "previews": shown, "context": context }),
        )
    }

    /// Room in the events budget for rendering the event `text` is: what it takes parsed, times
    /// the copies a rendering makes, and the messages.
    async fn reserve(&self, text: &str) -> Option<crate::memory::Reservation<'_>> {
        let shape = crate::event::measure(text.as_bytes()).ok()?.shape;
        let bytes = shape.parsed_bytes() * crate::memory::RENDER_COPIES
            + text.len() * DestinationKind::all().count();
        Some(self.memory.events.reserve(bytes).await)
    }

    /// A message as the page shows it; an email's HTML is kept for its frame, at `html_url`.
    fn shown(&self, message: &Message) -> Value {
        let mut shown = message_json(message);
        if let Message::Email(email) = message {
            shown["html_url"] = json!(format!("/preview/{}", self.frames.keep(&email.html)));
        }
        shown
    }

    /// Writes the edited template into the main tree, unless the relay would refuse it; then
    /// says what the reload made of it.
    pub(super) async fn save(&self, request: Value) -> HttpResponse {
        if !self.write {
            return error(
                StatusCode::FORBIDDEN,
                "saving is off: set [studio] write = true (and restart the relay) to let the studio write templates",
            );
        }
        let edit = match Edit::from_request(&request) {
            Ok(edit) => edit,
            Err(refused) => return refused.response(),
        };
        let dir = self.live.current().templates_dir.clone();
        if let Some(problem) = save::problem(&edit, &dir) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("the relay would refuse this template: {problem}"),
            );
        }
        match save::write(&edit, &dir, &self.live).await {
            Ok(saved) => json_response(StatusCode::OK, &saved),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    }

    /// Delivers the preview to one destination of the edited template's kind now, and says
    /// what it answered.
    pub(super) async fn send(&self, request: Value) -> HttpResponse {
        let edit = match Edit::from_request(&request) {
            Ok(edit) => edit,
            Err(refused) => return refused.response(),
        };
        let relay = self.live.current();
        let name = request["destination"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(target) = relay.destinations.get(&name) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no destination named {name:?}"),
            );
        };
        if target.kind != edit.id.kind {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{name} is a {} destination; the template being edited is for {}",
                    target.kind.as_str(),
                    edit.id.kind.as_str()
                ),
            );
        }
        // Read and rendered as a preview is: within the budget, off the serving threads.
        let _room = self.reserve(&edit.event).await;
        let (kind, dir, sources) = (target.kind, relay.templates_dir.clone(), relay.clone());
        let destination = name.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let event = edit.event(&sources.sources)?;
            let texts = edit.texts(kind, event.kind, &dir);
            let message = crate::render::render_texts(
                kind,
                &event,
                &destination,
                &texts,
                crate::render::Situation::default(),
            );
            Ok::<_, String>((event, message))
        })
        .await;
        let (event, message) = match rendered {
            Ok(Ok((event, Ok(message)))) => (event, message),
            Ok(Ok((_, Err(failure)))) => {
                return json_response(
                    StatusCode::OK,
                    &json!({ "ok": false, "answer": format!("not sent: template {failure}"), "failure": failure_json(&failure, None) }),
                );
            }
            Ok(Err(reason)) => return error(StatusCode::BAD_REQUEST, &reason),
            Err(e) => {
                warn!(error = %e, "a studio test message failed to render");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "the rendering failed");
            }
        };
        // Paced as any delivery to it: a test message takes a turn the workers would have used.
        if let Err(wait) = target.take_turn(SEND_WAIT).await {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "not sent: {name} is paced (rate_limit); the next message may go in {}",
                    humantime::format_duration(Duration::from_secs(wait.as_secs() + 1))
                ),
            );
        }
        let answer = tokio::time::timeout(
            relay.timeout,
            target.destination.deliver(&Outgoing::new(&event, message)),
        )
        .await
        .unwrap_or(Err(crate::deliver::DeliveryError::Timeout));
        info!(
            destination = name,
            ok = answer.is_ok(),
            "the studio sent a test message"
        );
        let (ok, answer) = match answer {
            Ok(sent) => (true, sent.receipt.0),
            Err(e) => (false, e.to_string()),
        };
        json_response(StatusCode::OK, &json!({ "ok": ok, "answer": answer }))
    }
}
