//! The last resort when both the user's template and the built-in one fail (for instance an
//! event so large that no template fits Slack's limits): a short message built in code that is
//! valid for its destination whatever the event holds.

use serde_json::{Value, json};

use super::escape::{Escape, slack_entities};
use super::{EmailMessage, Message};
use crate::deliver::DestinationKind;
use crate::event::Event;

/// Long enough for any rule and test name, short enough for every destination's limits.
const MAX_TITLE_CHARS: usize = 140;

pub fn message(kind: DestinationKind, event: &Event) -> Message {
    let s = &event.summary;
    let title: String = s.title.chars().take(MAX_TITLE_CHARS).collect();
    let headline = format!("[{}] {title}", s.state.to_uppercase());
    let link = s.link.as_deref();
    match kind {
        DestinationKind::Slack => {
            let mut text = slack_entities(&headline);
            if let Some(link) = link {
                text.push_str(&format!("\n<{link}|Open in ThousandEyes>"));
            }
            Message::Json(json!({ "text": text }))
        }
        DestinationKind::Teams => {
            let mut card = json!({
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{ "type": "TextBlock", "text": headline, "wrap": true, "weight": "Bolder" }]
            });
            if let Some(link) = link {
                card["actions"] = json!([{ "type": "Action.OpenUrl", "title": "Open in ThousandEyes", "url": link }]);
            }
            Message::Json(card)
        }
        DestinationKind::Webhook => Message::Json(json!({
            "event": { "id": event.id, "type": event.event_type, "kind": event.kind },
            "summary": s,
            "payload": Value::Object(event.raw.clone()),
        })),
        DestinationKind::Email => {
            let text = format!("{headline}\n{}\n", link.unwrap_or(""));
            let html = format!(
                "<p>{}</p>{}",
                Escape::Html.apply(&headline),
                link.map(|l| format!("<p><a href=\"{0}\">{0}</a></p>", Escape::Html.apply(l)))
                    .unwrap_or_default()
            );
            Message::Email(EmailMessage {
                subject: Escape::Line.apply(&headline),
                text,
                html,
            })
        }
        DestinationKind::Console => Message::Text(format!("{headline}\n{}", link.unwrap_or(""))),
    }
}
