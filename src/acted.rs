//! What people did from an alert's message (Acknowledge, Silence, and their undoing), as the
//! templates see it: the buttons a message offers (`actions`, with the `action_id`s and values
//! the relay recognises when they are clicked) and where the alert stands (`acted`: who
//! acknowledged it, who silenced it until when). Derived from the actions the store keeps; the
//! clicks themselves arrive through `slack_app`.

use serde::Serialize;
use serde_json::{Value, json};

use crate::outbox::ActionRow;

/// What a message may offer, as a destination's `actions` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Offer {
    Ack,
    Silence,
}

/// The `action_id`s the relay recognises.
pub const ACK: &str = "alert_relay_ack";
pub const UNACK: &str = "alert_relay_unack";
pub const SILENCE: &str = "alert_relay_silence";
pub const UNSILENCE: &str = "alert_relay_unsilence";

/// The choices of the Silence menu: a value and what it reads. `cleared`: until the alert clears
/// (at most [`UNTIL_CLEARED_MAX`]).
pub const SILENCE_FOR: [(&str, &str); 4] = [
    ("1h", "1 h"),
    ("4h", "4 h"),
    ("24h", "24 h"),
    ("cleared", "until cleared"),
];

/// How long "until cleared" lasts at most: a silence that ends when its alert clears, or then.
pub const UNTIL_CLEARED_MAX: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A button's value: the destination whose message it is on and the alert's correlation key,
/// which a click is checked against (the message must be that alert's there).
pub fn value(destination: &str, correlation: &str) -> String {
    format!("{destination}|{correlation}")
}

/// The destination and correlation key a button's value names.
pub fn parse_value(value: &str) -> Option<(&str, &str)> {
    value.split_once('|')
}

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ack {
    pub by: String,
    pub user_id: String,
    /// RFC 3339.
    pub at: String,
}

/// A silence someone made from the alert's message, while it lasts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSilence {
    pub id: String,
    pub by: String,
    pub user_id: String,
    /// RFC 3339.
    pub until: String,
}

/// Where an alert stands after what was done from its messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Acted {
    pub ack: Option<Ack>,
    pub silence: Option<UserSilence>,
}

impl Acted {
    /// From the actions kept for the alert, oldest first, at `now`.
    pub fn from_actions(actions: &[ActionRow], now: i64) -> Acted {
        let mut acted = Acted::default();
        for action in actions {
            let at = crate::noise::silence::rfc3339(action.at);
            match action.action.as_str() {
                "ack" => {
                    acted.ack = Some(Ack {
                        by: action.user_name.clone(),
                        user_id: action.user_id.clone(),
                        at,
                    });
                }
                "unack" => acted.ack = None,
                "silence" => {
                    acted.silence = (action.silence_ends_at)
                        .filter(|ends_at| *ends_at > now)
                        .zip(action.silence.clone())
                        .map(|(ends_at, id)| UserSilence {
                            id,
                            by: action.user_name.clone(),
                            user_id: action.user_id.clone(),
                            until: crate::noise::silence::rfc3339(ends_at),
                        });
                }
                "unsilence" => acted.silence = None,
                _ => {}
            }
        }
        acted
    }

    /// The buttons a message of the alert `correlation` at `destination` offers: `null` when it
    /// offers none (a destination without `actions`, a cleared alert, an event outside an
    /// alert's life).
    pub fn actions(
        &self,
        offers: &[Offer],
        destination: &str,
        correlation: Option<&str>,
        firing: bool,
    ) -> Value {
        let Some(correlation) = correlation.filter(|_| firing && !offers.is_empty()) else {
            return Value::Null;
        };
        let value = value(destination, correlation);
        let ack = offers.contains(&Offer::Ack).then(|| match &self.ack {
            None => json!({ "action_id": ACK, "value": value, "text": "Acknowledge" }),
            Some(_) => json!({ "action_id": UNACK, "value": value, "text": "Unacknowledge" }),
        });
        let silence = offers
            .contains(&Offer::Silence)
            .then(|| match &self.silence {
                None => json!({
                    "action_id": SILENCE,
                    "text": "Silence",
                    "options": SILENCE_FOR.map(|(length, text)| json!({
                        "text": text,
                        "value": format!("{length}|{value}"),
                    })),
                }),
                Some(_) => json!({ "action_id": UNSILENCE, "value": value, "text": "Unsilence" }),
            });
        json!({ "ack": ack, "silence": silence })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(action: &str, user: &str, at: i64, silence: Option<&str>) -> ActionRow {
        ActionRow {
            correlation: "35541".into(),
            destination: "ops".into(),
            action: action.into(),
            user_id: format!("U{user}"),
            user_name: user.into(),
            at,
            silence: silence.map(str::to_owned),
            until_cleared: false,
            silence_ends_at: silence.map(|_| 2_000),
        }
    }

    #[test]
    fn the_last_of_ack_and_unack_says() {
        let acted = Acted::from_actions(
            &[
                action("ack", "ana", 1_000, None),
                action("unack", "bo", 2_000, None),
            ],
            3_000,
        );
        assert_eq!(acted.ack, None);
        let acted = Acted::from_actions(
            &[
                action("ack", "ana", 1_000, None),
                action("unack", "bo", 2_000, None),
                action("ack", "cy", 2_500, None),
            ],
            3_000,
        );
        assert_eq!(acted.ack.map(|a| a.by), Some("cy".into()));
    }

    #[test]
    fn a_silence_shows_while_it_lasts() {
        let made = [action("silence", "ana", 1_000, Some("abc"))];
        let acted = Acted::from_actions(&made, 1_500);
        assert_eq!(acted.silence.map(|s| s.id), Some("abc".into()));
        assert_eq!(
            Acted::from_actions(&made, 3_000).silence,
            None,
            "it ended at 2,000"
        );
    }

    #[test]
    fn buttons_follow_the_state_and_a_cleared_alert_has_none() {
        let acted = Acted {
            ack: Some(Ack {
                by: "ana".into(),
                user_id: "UANA".into(),
                at: "2026-12-06T10:04:00Z".into(),
            }),
            silence: None,
        };
        let offers = [Offer::Ack, Offer::Silence];
        let actions = acted.actions(&offers, "ops", Some("35541"), true);
        assert_eq!(actions["ack"]["action_id"], UNACK);
        assert_eq!(actions["ack"]["value"], "ops|35541");
        assert_eq!(
            actions["silence"]["options"][3]["value"],
            "cleared|ops|35541"
        );
        assert_eq!(
            acted.actions(&offers, "ops", Some("35541"), false),
            Value::Null
        );
        assert_eq!(acted.actions(&[], "ops", Some("35541"), true), Value::Null);
        assert_eq!(acted.actions(&offers, "ops", None, true), Value::Null);
    }
}
