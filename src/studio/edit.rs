//! What the page asks the relay to render, save or send: the template being edited, its text,
//! and the event it is tried on; and what every destination kind makes of it, each event
//! rendered with the file the relay would choose for it.

use std::path::Path;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::Refused;
use super::templates::{TemplateId, shown};
use crate::deliver::{DestinationKind, Message};
use crate::event::{Event, EventKind, SourceKind, Sources};
use crate::render::{self, Situation, TemplateFailure};

/// A render, save or send request.
pub(super) struct Edit {
    pub id: TemplateId,
    pub text: String,
    /// The event's JSON, as edited on the page.
    pub event: String,
    /// What reads it: a configured source's name, or a source kind.
    pub source: String,
}

/// One kind's preview of the event.
pub(super) struct Preview {
    pub kind: DestinationKind,
    /// The templates it was rendered with, as the page names them.
    pub templates: Vec<String>,
    /// The message, with what it is on the wire when the kind wraps it; or why the templates
    /// failed (with the rendered output around a JSON error) and what the relay sends instead.
    pub rendered: Result<(Message, Option<Value>), (Value, Message)>,
    /// Said when the event is not rendered with the file being edited.
    pub note: Option<String>,
}

impl Edit {
    pub fn from_request(request: &Value) -> Result<Self, Refused> {
        let id = request["template"]
            .as_str()
            .and_then(TemplateId::parse)
            .ok_or(Refused(
                StatusCode::BAD_REQUEST,
                "template names no template file",
            ))?;
        let text = request["text"]
            .as_str()
            .ok_or(Refused(StatusCode::BAD_REQUEST, "text is missing"))?
            .to_owned();
        Ok(Self {
            id,
            text,
            event: request["event"].as_str().unwrap_or_default().to_owned(),
            source: request["source"]
                .as_str()
                .unwrap_or(SourceKind::Thousandeyes.as_str())
                .to_owned(),
        })
    }

    /// The event the edited JSON is, read as `source` reads it: a configured source by name, or
    /// a source kind (the bundled samples); the first event of a body holding several.
    pub fn event(&self, sources: &Sources) -> Result<Event, String> {
        sources
            .read(&self.source, self.event.as_bytes(), chrono::Utc::now())
            .map_err(|e| match &e.reader {
                Some(reader) => format!(
                    "{e}. It reads as a body of the {reader} source: pick {reader} as the Source."
                ),
                None => format!("{e}. If another sender sent it, pick its Source."),
            })?
            .into_iter()
            .next()
            .ok_or_else(|| "the body holds no event".to_owned())
    }

    /// What every destination kind would receive for the event, each named as `destination`
    /// says, and the context of the edited template's kind; or why the event cannot be read.
    pub fn render_every_kind(
        &self,
        sources: &Sources,
        dir: &Path,
        destination: impl Fn(DestinationKind) -> String,
    ) -> Result<(Vec<Preview>, Value), String> {
        let event = self.event(sources)?;
        let previews = DestinationKind::all()
            .map(|kind| self.preview(kind, &event, &destination(kind), dir))
            .collect();
        let context = render::context(
            &event,
            &destination(self.id.kind),
            self.id.kind,
            Situation::default(),
        );
        Ok((previews, context))
    }

    fn preview(
        &self,
        kind: DestinationKind,
        event: &Event,
        destination: &str,
        dir: &Path,
    ) -> Preview {
        let texts = self.texts(kind, event.kind, dir);
        let rendered =
            match render::render_parts(kind, event, destination, &texts, Situation::default()) {
                Err(failure) => Err((failure_json(&failure, None), kind.facts().fallback(event))),
                Ok(parts) => {
                    let output = parts.join("\n");
                    match render::message_of(kind, &texts, parts) {
                        Ok(message) => {
                            let sent = kind.facts().sent(&message, event);
                            Ok((message, sent))
                        }
                        Err(failure) => Err((
                            failure_json(&failure, Some(&output)),
                            kind.facts().fallback(event),
                        )),
                    }
                }
            };
        let note = (kind == self.id.kind && !self.id.governs(event.kind, dir)).then(|| {
            let chosen = &texts[self.part_index()].0;
            format!(
                "This {} event is rendered with {chosen}, not with {} (the file being edited).",
                event.kind.as_str(),
                self.id.name()
            )
        });
        Preview {
            kind,
            templates: texts.into_iter().map(|(name, _)| name).collect(),
            rendered,
            note,
        }
    }

    fn part_index(&self) -> usize {
        let parts = self.id.kind.facts().parts();
        parts.iter().position(|p| *p == self.id.part).unwrap_or(0)
    }

    /// The templates a destination of `kind` renders an `event_kind` event with, named as the
    /// page names them: the edited text where the edited file is the one the relay would choose
    /// for this event once saved, the relay's lookup everywhere else.
    pub fn texts(
        &self,
        kind: DestinationKind,
        event_kind: EventKind,
        dir: &Path,
    ) -> Vec<(String, String)> {
        kind.facts()
            .parts()
            .iter()
            .map(|&part| {
                if kind == self.id.kind && part == self.id.part && self.id.governs(event_kind, dir)
                {
                    (self.id.name(), self.text.clone())
                } else {
                    let source = render::source(dir, kind, event_kind, part, None);
                    (shown(&source.name, dir), source.text)
                }
            })
            .collect()
    }
}

/// A template failure as the page shows it; with, for a message the destination would refuse
/// (JSON that does not parse), the lines of the rendered `output` around the error.
pub(super) fn failure_json(failure: &TemplateFailure, output: Option<&str>) -> Value {
    let excerpt = output.and_then(|output| excerpt(output, &failure.reason));
    json!({
        "template": failure.template,
        "line": failure.line,
        "column": failure.column,
        "reason": failure.reason,
        "text": failure.to_string(),
        "output": excerpt,
    })
}

/// The lines of `output` around the `line N column M` that `reason` names, the column marked.
fn excerpt(output: &str, reason: &str) -> Option<String> {
    let at = reason.rfind("line ")?;
    let mut words = reason[at..].split_whitespace();
    let line: usize = words.nth(1)?.parse().ok()?;
    let column: usize = words.nth(1).and_then(|c| c.parse().ok()).unwrap_or(1);
    let lines: Vec<&str> = output.lines().collect();
    let first = line.saturating_sub(3);
    let mut shown = String::new();
    for (index, text) in lines
        .iter()
        .enumerate()
        .take(line.min(lines.len()))
        .skip(first)
    {
        shown.push_str(&format!("{:>4} | {text}\n", index + 1));
    }
    shown.push_str(&format!(
        "     | {}^\n",
        " ".repeat(column.saturating_sub(1))
    ));
    Some(shown)
}

/// A message as the page shows it (an email's HTML goes to its frame apart; see `Studio`).
pub(super) fn message_json(message: &Message) -> Value {
    match message {
        Message::Json(value) => json!({ "json": value }),
        // Checked to be JSON when it was rendered.
        Message::JsonText(text) => json!({
            "json": serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!(text))
        }),
        Message::Email(email) => {
            json!({ "subject": email.subject, "text": email.text, "html": email.html })
        }
        Message::Text(text) => json!({ "text": text }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_json_error_shows_the_rendered_lines_before_it() {
        let output = "{\n  \"text\": \"a\",\n  \"x\": oops\n}";
        let shown =
            super::excerpt(output, "not valid JSON: expected value at line 3 column 8").unwrap();
        assert_eq!(
            shown,
            "   1 | {\n   2 |   \"text\": \"a\",\n   3 |   \"x\": oops\n     |        ^\n"
        );
    }
}
