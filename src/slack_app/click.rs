//! One click on a button of the relay's Slack messages, from Slack's `block_actions` payload
//! (<https://docs.slack.dev/reference/interaction-payloads/block_actions-payload>): who clicked
//! (`user.id`, `user.username`), which button (`actions[].action_id`, its `value` or the chosen
//! `selected_option.value`, `action_ts`) and where to answer the user alone (`response_url`).
//! Kept in the store once, with what it does there (see `Outbox::act`); the message is then
//! updated in place by a refresh delivery.

use std::sync::Arc;

use serde_json::{Value, json};
use tracing::{info, warn};

use super::SlackApp;
use crate::acted::{self, Acted, Offer, SILENCE_FOR, UNTIL_CLEARED_MAX};
use crate::event::{Event, EventKind};
use crate::metrics::Metrics;
use crate::noise::{NewSilence, Silence, Silences};
use crate::outbox::{ActionRow, NewAction, Outbox, now_ms};
use crate::relay::Live;

/// What handles clicks, however they arrive.
pub struct Clicks {
    pub app: SlackApp,
    pub live: Arc<Live>,
    pub outbox: Arc<Outbox>,
    pub silences: Arc<Silences>,
    pub metrics: Arc<Metrics>,
    /// For the answers to a user alone (`response_url`).
    pub http: reqwest::Client,
}

/// One button clicked.
struct Click<'a> {
    user_id: &'a str,
    user_name: &'a str,
    action_id: &'a str,
    /// A button's value, or the option chosen in a menu.
    value: &'a str,
    action_ts: &'a str,
    response_url: Option<&'a str>,
}

impl Clicks {
    /// Handles an interaction payload: each of its actions that is one of the relay's buttons.
    pub async fn handle(&self, payload: &Value) {
        if payload["type"] != "block_actions" {
            info!(kind = %payload["type"], "a Slack interaction that is not a button click; ignored");
            return;
        }
        let user = &payload["user"];
        let user_id = user["id"].as_str().unwrap_or_default();
        let user_name = (user["username"].as_str())
            .or(user["name"].as_str())
            .unwrap_or(user_id);
        for action in payload["actions"].as_array().into_iter().flatten() {
            let click = Click {
                user_id,
                user_name,
                action_id: action["action_id"].as_str().unwrap_or_default(),
                value: (action["value"].as_str())
                    .or(action["selected_option"]["value"].as_str())
                    .unwrap_or_default(),
                action_ts: action["action_ts"].as_str().unwrap_or_default(),
                response_url: payload["response_url"].as_str(),
            };
            let (name, outcome) = self.one(&click).await;
            self.metrics.slack_action(name, outcome);
        }
    }

    /// Handles one click: its action's name and the outcome.
    async fn one(&self, click: &Click<'_>) -> (&'static str, &'static str) {
        let (name, offer) = match click.action_id {
            acted::ACK => ("ack", Offer::Ack),
            acted::UNACK => ("unack", Offer::Ack),
            acted::SILENCE => ("silence", Offer::Silence),
            acted::UNSILENCE => ("unsilence", Offer::Silence),
            // A link button (Open in ThousandEyes): Slack opens the link itself.
            _ => return ("other", "ignored"),
        };
        if click.user_id.is_empty() || !self.app.allows(click.user_id) {
            info!(user = %click.user_id, action = name, "a Slack user not in allowed_users clicked; nothing done");
            self.answer_alone(
                click,
                "You cannot act on these alerts: your Slack user is not in the relay's allowed_users.",
            )
            .await;
            return (name, "refused");
        }
        let (length, rest) = match name {
            "silence" => match click.value.split_once('|') {
                Some((length, rest)) => (Some(length), rest),
                None => (None, click.value),
            },
            _ => (None, click.value),
        };
        let Some((destination, correlation)) = acted::parse_value(rest) else {
            warn!(
                action = name,
                "a Slack click whose value the relay did not write; ignored"
            );
            return (name, "ignored");
        };
        let offered = (self.live.current().destinations.get(destination))
            .is_some_and(|target| target.destination.offers().contains(&offer));
        if !offered {
            warn!(
                destination,
                action = name,
                "a Slack click for a destination that offers no such button (removed from the config?); ignored"
            );
            return (name, "ignored");
        }
        let now = now_ms();
        let mut action = NewAction {
            key: format!("{}:{}:{}", click.user_id, click.action_ts, click.action_id),
            row: ActionRow {
                correlation: correlation.to_owned(),
                destination: destination.to_owned(),
                action: name.to_owned(),
                user_id: click.user_id.to_owned(),
                user_name: click.user_name.to_owned(),
                at: now,
                silence: None,
                until_cleared: false,
                silence_ends_at: None,
            },
            add_silence: None,
            expire_silence: None,
        };
        match name {
            "silence" => match self.silence(click, correlation, length, now).await {
                Ok((silence, until_cleared)) => {
                    action.row.silence = Some(silence.id.clone());
                    action.row.until_cleared = until_cleared;
                    action.add_silence = Some(silence.row());
                }
                Err(why) => {
                    warn!(error = %why, "a Silence click cannot make a silence");
                    self.answer_alone(click, &format!("Not silenced: {why}"))
                        .await;
                    return (name, "failed");
                }
            },
            "unsilence" => match self.user_silence(correlation, now).await {
                Some(id) => {
                    action.row.silence = Some(id.clone());
                    action.expire_silence = Some(id);
                }
                None => info!(alert = %correlation, "Unsilence: the silence has ended already"),
            },
            _ => {}
        }
        match self.outbox.act(action).await {
            Ok(true) => {
                if let Err(e) = self.silences.refresh(&self.outbox).await {
                    warn!(error = %e, "cannot read the silences again; they apply within storage.poll");
                }
                info!(action = name, alert = %correlation, destination, user = %click.user_id, "done from Slack");
                (name, "done")
            }
            Ok(false) => (name, "duplicate"),
            Err(e) => {
                warn!(error = %e, action = name, "cannot keep a Slack click; Slack is not told, the message stays as it is");
                (name, "failed")
            }
        }
    }

    /// The silence a Silence click makes: the alert's source, rule and test (a group's fields),
    /// from now for the chosen time; and whether it lasts until the alert clears.
    async fn silence(
        &self,
        click: &Click<'_>,
        correlation: &str,
        length: Option<&str>,
        now: i64,
    ) -> Result<(Silence, bool), String> {
        let length = length.filter(|l| SILENCE_FOR.iter().any(|(v, _)| v == l));
        let (duration, until_cleared) = match length {
            Some("cleared") => (UNTIL_CLEARED_MAX, true),
            Some(length) => (
                humantime::parse_duration(length).map_err(|e| e.to_string())?,
                false,
            ),
            None => return Err(format!("{:?} is not a choice of the menu", click.value)),
        };
        let normalized = (self.outbox.alert_event(correlation).await)
            .map_err(|e| e.to_string())?
            .ok_or("the store no longer keeps this alert")?;
        let event =
            Event::from_normalized(&normalized, chrono::Utc::now()).map_err(|e| e.to_string())?;
        let quoted = |field: &str, value: &str| format!("{field}=\"{value}\"");
        let matchers: Vec<String> = match event.kind {
            // A group's fields and values, as its route's group_by named them.
            EventKind::Group => (event.summary.labels.iter())
                .filter_map(|label| label.split_once('='))
                .map(|(field, value)| quoted(field, value))
                .collect(),
            _ => {
                let s = &event.summary;
                let mut matchers = vec![quoted("source", &event.source.name)];
                matchers.extend(s.rule.as_deref().map(|rule| quoted("rule", rule)));
                matchers.extend(s.test.as_deref().map(|test| quoted("test", test)));
                if s.rule.is_none() && s.test.is_none() {
                    matchers.push(quoted("alert", correlation));
                }
                matchers
            }
        };
        let length = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let new = NewSilence {
            matchers,
            starts_at: now,
            ends_at: now.saturating_add(length),
            comment: format!("from Slack: {}", event.summary.title),
            created_by: Some(format!("{} (Slack {})", click.user_name, click.user_id)),
        };
        Ok((Silence::new(new, now)?, until_cleared))
    }

    /// The silence someone made from the alert's message that is still in force.
    async fn user_silence(&self, correlation: &str, now: i64) -> Option<String> {
        let actions = self.outbox.actions(correlation).await.ok()?;
        Acted::from_actions(&actions, now).silence.map(|s| s.id)
    }

    /// Tells the user who clicked, and no one else (an ephemeral message through the click's
    /// `response_url`).
    async fn answer_alone(&self, click: &Click<'_>, text: &str) {
        let Some(url) = click.response_url else {
            return;
        };
        let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
        let request = (self.http.post(url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Err(e) = request.send().await {
            warn!(error = %e.without_url(), "cannot answer the Slack user who clicked");
        }
    }
}
