//! `alert-relay slack manifest`: a Slack app manifest
//! (<https://docs.slack.dev/reference/app-manifest>) to paste at app creation ("From an app
//! manifest"): a bot that posts and updates messages and reads its channel's history, with
//! interactivity through Socket Mode or the Request URL `[slack_app]` chose.

use serde_json::{Value, json};

use super::{Receiver, SlackApp};

/// The manifest for `app` (Socket Mode when there is none), its Request URL at `public_url`.
pub fn manifest(app: Option<&SlackApp>, public_url: Option<&str>) -> Value {
    let mut interactivity = json!({ "is_enabled": true });
    let socket = match app.map(|a| &a.receiver) {
        Some(Receiver::RequestUrl { path, .. }) => {
            let base = public_url.unwrap_or("https://alert-relay.example.com");
            interactivity["request_url"] = json!(format!("{}{path}", base.trim_end_matches('/')));
            false
        }
        _ => true,
    };
    json!({
        "display_information": {
            "name": "alert-relay",
            "description": "Alerts in the channel, acknowledged and silenced from the message",
        },
        "features": {
            "bot_user": { "display_name": "alert-relay", "always_online": true },
        },
        "oauth_config": {
            "scopes": {
                "bot": ["chat:write", "chat:write.public", "channels:history", "groups:history"],
            },
        },
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": false,
            "socket_mode_enabled": socket,
            "token_rotation_enabled": false,
        },
    })
}
