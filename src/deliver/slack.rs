//! Slack, two ways: an incoming webhook (`url`), where the rendered Block Kit message is POSTed as
//! it is; or the Web API with a bot token (`token` and `channel`), which can also turn a trigger's
//! message into its clear (`chat.update`) and reply in its thread, since `chat.postMessage`
//! answers with the message's `ts`.

use crate::acted::Offer;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use super::escape::{Escape, slack_entities};
use super::target::Answer;
use super::{
    AnyDestination, DeliveryError, Destination, Doubt, Facts, HttpTarget, Kind, Message, Options,
    Outgoing, Pace, Part, Place, Receipt, Sent, Step,
};
use crate::error::ConfigError;
use crate::event::{Event, EventKind, Phase};
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (`https://hooks.slack.com/services/…`); a secret.
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    /// A bot token (`xoxb-…`) for the Web API, instead of `url`; a secret.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// With `token`: the channel id (`C0123…`) or `#name` posted to.
    pub channel: Option<String>,
    /// With `token`: where the Web API is.
    pub api_url: Option<String>,
    /// With `token`: what a clear does to its trigger's message.
    pub on_clear: Option<Vec<OnClear>>,
    /// With `token`: a reply in a thread also shows in the channel.
    #[serde(default)]
    pub reply_broadcast: bool,
    /// With `token`: each group notification also says what changed in its message's thread.
    pub group_thread: Option<bool>,
    /// With `token`: the buttons an alert's message offers (`ack`, `silence`); clicks arrive
    /// through `[slack_app]`.
    pub actions: Option<Vec<Offer>>,
}

pub static KIND: Kind = Kind::new::<SlackConfig>("slack", &FACTS);

impl Options for SlackConfig {
    fn build(&self, at: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError> {
        Ok(Box::new(Slack::new(self, at)?))
    }
}

/// What a clear does to its trigger's message, in the Web API mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnClear {
    /// `chat.update` the trigger's message with the clear.
    Update,
    /// Post the clear in the trigger's thread.
    Reply,
}

/// Slack's Web API, unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

pub struct Slack {
    mode: Mode,
}

enum Mode {
    Webhook(HttpTarget),
    Api(Box<Api>),
}

impl Slack {
    pub fn new(config: &SlackConfig, at: &Place<'_>) -> Result<Self, ConfigError> {
        let (key, base_dir, http) = (at.key.as_str(), at.base_dir, at.http);
        let has_token = config.token.is_some() || config.token_file.is_some();
        let has_url = config.url.is_some() || config.url_file.is_some();
        if has_token && has_url {
            return Err(ConfigError::new(
                format!("{key}.token"),
                "set url (an incoming webhook) or token and channel (the Web API), not both",
            ));
        }
        if !has_token {
            let api_only = [
                ("channel", config.channel.is_some()),
                ("api_url", config.api_url.is_some()),
                ("on_clear", config.on_clear.is_some()),
                ("reply_broadcast", config.reply_broadcast),
                ("group_thread", config.group_thread.is_some()),
                ("actions", config.actions.is_some()),
            ];
            if let Some((name, _)) = api_only.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    format!("{key}.{name}"),
                    "needs token: an incoming webhook (url) cannot choose a channel, update a message or reply in a thread",
                ));
            }
            let target = HttpTarget::new(
                key,
                config.url.as_ref(),
                config.url_file.as_deref(),
                base_dir,
                http,
            )?;
            return Ok(Self {
                mode: Mode::Webhook(target),
            });
        }
        Ok(Self {
            mode: Mode::Api(Box::new(Api::new(key, config, base_dir, http)?)),
        })
    }
}

impl Destination for Slack {
    fn steps(&self, event: &Event, thread: Option<&Value>) -> Vec<Step> {
        let Mode::Api(api) = &self.mode else {
            return vec![Step::New];
        };
        if event.kind == EventKind::Group {
            // The group's one message: posted, then updated; each notification's changes in
            // its thread.
            let parent = match thread {
                Some(_) => Step::Update,
                None => Step::New,
            };
            return match api.group_thread {
                true => vec![parent, Step::Reply],
                false => vec![parent],
            };
        }
        match (event.lifecycle(), thread) {
            (Some((_, Phase::Clear)), Some(_)) if !api.on_clear.is_empty() => {
                let mut steps = Vec::new();
                if api.on_clear.contains(&OnClear::Update) {
                    steps.push(Step::Update);
                }
                if api.on_clear.contains(&OnClear::Reply) {
                    steps.push(Step::Reply);
                }
                steps
            }
            _ => vec![Step::New],
        }
    }

    fn offers(&self) -> &[Offer] {
        match &self.mode {
            Mode::Webhook(_) => &[],
            Mode::Api(api) => &api.offers,
        }
    }

    /// The bot token's `auth.test` (`check --online`): the bot and team it names, or why not.
    /// `None` for an incoming webhook, which has nothing to ask.
    async fn check_online(&self) -> Option<Result<String, DeliveryError>> {
        match &self.mode {
            Mode::Webhook(_) => None,
            Mode::Api(api) => Some(
                api.auth_test()
                    .await
                    .map(|who| format!("Slack token is {who}")),
            ),
        }
    }

    /// A webhook answers `200 ok`; errors come as 4xx with a reason in the body
    /// (`invalid_payload`, `channel_not_found`, …) and are permanent, 429 asks us to slow down.
    /// The Web API: see `Api::deliver`.
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        match &self.mode {
            Mode::Webhook(target) => {
                let Message::Json(body) = outgoing.first()? else {
                    return Err(DeliveryError::Rejected("Slack takes a JSON message".into()));
                };
                Ok(target.post_json(body.to_string()).await?.into())
            }
            Mode::Api(api) => api.deliver(outgoing).await,
        }
    }
}

/// The Web API with a bot token, posting to one channel.
struct Api {
    post_message: HttpTarget,
    update: HttpTarget,
    /// Read only to find a message an attempt may have posted (see [`Api::find_posted`]).
    history: HttpTarget,
    /// The channel's marked messages as they were at the first look after a restart.
    before_start: tokio::sync::OnceCell<Option<Vec<(Value, String)>>>,
    auth_test: HttpTarget,
    channel: String,
    on_clear: Vec<OnClear>,
    reply_broadcast: bool,
    group_thread: bool,
    offers: Vec<Offer>,
}

/// Slack's answers (`chat.postMessage` echoes the whole message) are read this far: the fields
/// the relay needs (`ok`, `channel`, `ts`, `error`) come first, and are read from the part that
/// was read whatever the echo's size (see [`top_level_fields`]).
const MAX_API_ANSWER_BYTES: usize = 64 * 1024;

impl Api {
    fn new(
        key: &str,
        config: &SlackConfig,
        base_dir: &std::path::Path,
        http: &reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let file = config.token_file.as_ref().map(|f| base_dir.join(f));
        let token =
            crate::secret::from_value_or_file("token", config.token.as_ref(), file.as_deref())
                .map_err(|reason| ConfigError::new(key, reason))?;
        let channel = config
            .channel
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{key}.channel"),
                    "is required with token: a channel id (C0123…) or #name",
                )
            })?;
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(
                |_| {
                    ConfigError::new(
                        format!("{key}.token"),
                        "has characters a header cannot carry",
                    )
                },
            )?;
        authorization.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, authorization);
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let base = config.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let base = url::Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ConfigError::new(format!("{key}.api_url"), "is not an http(s) URL"))?;
        let endpoint = |method: &str| -> Result<HttpTarget, ConfigError> {
            // `https://slack.com/api` and `https://slack.com/api/` both mean the folder.
            let mut folder = base.clone();
            if !folder.path().ends_with('/') {
                folder.set_path(&format!("{}/", folder.path()));
            }
            let url = folder
                .join(method)
                .map_err(|_| ConfigError::new(format!("{key}.api_url"), "is not a base URL"))?;
            Ok(HttpTarget::at(url, http).with_headers(headers.clone()))
        };
        Ok(Self {
            post_message: endpoint("chat.postMessage")?,
            update: endpoint("chat.update")?,
            history: endpoint("conversations.history")?,
            before_start: tokio::sync::OnceCell::new(),
            auth_test: endpoint("auth.test")?,
            channel: channel.to_owned(),
            on_clear: config
                .on_clear
                .clone()
                .unwrap_or_else(|| vec![OnClear::Update, OnClear::Reply]),
            reply_broadcast: config.reply_broadcast,
            group_thread: config.group_thread.unwrap_or(true),
            offers: config.actions.clone().unwrap_or_default(),
        })
    }

    /// Sends each message for its step: a new one with `chat.postMessage`, an update of the
    /// trigger's with `chat.update`, a reply with `chat.postMessage` and `thread_ts`. A message
    /// Slack refuses for its content (`invalid_blocks`, `msg_too_long`, …) is sent again as the
    /// fallback message; an update of a message that can no longer be edited is given up, and
    /// the reply goes alone. Each step can be repeated safely when a later one fails and the
    /// whole delivery is retried: an update writes the same message again.
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        let known = outgoing.thread.as_ref().and_then(Kept::from_value);
        let mut receipts = Vec::new();
        let mut kept: Option<Kept> = None;
        let marker = marker(outgoing.event);
        for (step, message) in &outgoing.messages {
            let Message::Json(body) = message else {
                return Err(DeliveryError::Rejected("Slack takes a JSON message".into()));
            };
            // A reply goes under the message it follows: kept from before, or posted just now.
            let thread = known.as_ref().or(kept.as_ref());
            let call = match (step, thread) {
                (Step::Update, Some(thread)) => Call::Update(thread),
                (Step::Reply, Some(thread)) => Call::Reply(thread),
                _ => Call::New(&marker),
            };
            // An earlier attempt may have posted it before the relay could keep its answer.
            if matches!(call, Call::New(_))
                && outgoing.doubt != Doubt::None
                && let Some(found) = self.find_posted(&marker, outgoing).await
            {
                receipts.push(format!(
                    "found the message an earlier attempt posted, ts={}",
                    found.ts
                ));
                kept = Some(found);
                continue;
            }
            let posted = match self.call(&call, body).await {
                Err(e) if e.class() == Class::Content => {
                    let fallback = match FACTS.fallback(outgoing.event) {
                        Message::Json(fallback) => fallback,
                        _ => unreachable!("the Slack fallback is JSON"),
                    };
                    tracing::warn!(method = call.method(), error = %e, "Slack refused the message; sending the fallback message instead");
                    self.call(&call, &fallback).await
                }
                Err(e) if matches!(call, Call::Update(_)) && e.class() == Class::Gone => {
                    tracing::warn!(error = %e, "the trigger's message can no longer be updated; the clear goes as a reply only");
                    receipts.push(format!("update skipped: {e}"));
                    continue;
                }
                other => other,
            }?;
            receipts.push(format!("{} ts={}", call.method(), posted.ts));
            if *step == Step::New {
                kept = Some(posted);
            }
        }
        Ok(Sent {
            receipt: Receipt(receipts.join(", ")),
            thread: kept.map(|k| json!({ "channel": k.channel, "ts": k.ts })),
        })
    }

    async fn call(&self, call: &Call<'_>, message: &Value) -> Result<Kept, DeliveryError> {
        let mut body = message.clone();
        let Some(fields) = body.as_object_mut() else {
            return Err(DeliveryError::Rejected(
                "a Slack message must be a JSON object".into(),
            ));
        };
        let target = match call {
            Call::New(marker) => {
                fields.insert("channel".into(), json!(self.channel));
                fields.insert("metadata".into(), (*marker).clone());
                &self.post_message
            }
            Call::Reply(thread) => {
                fields.insert("channel".into(), json!(thread.channel));
                fields.insert("thread_ts".into(), json!(thread.ts));
                if self.reply_broadcast {
                    fields.insert("reply_broadcast".into(), json!(true));
                }
                &self.post_message
            }
            Call::Update(thread) => {
                fields.insert("channel".into(), json!(thread.channel));
                fields.insert("ts".into(), json!(thread.ts));
                &self.update
            }
        };
        let answer = target
            .exchange(body.to_string(), MAX_API_ANSWER_BYTES)
            .await?;
        let ok = api_answer(call.method(), target, &answer)?;
        Ok(Kept {
            channel: ok
                .get("channel")
                .and_then(Value::as_str)
                .unwrap_or(&self.channel)
                .to_owned(),
            ts: ok
                .get("ts")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        })
    }

    /// The message carrying `marker` that an earlier attempt posted before the relay lost its
    /// answer (see [`Doubt`]): looked for in the channel's history since the event arrived, or,
    /// for the deliveries a restart left in doubt, in the history as it was at the first look
    /// after the start (one look serves them all). `None` when there is none, or when the history
    /// cannot be read (a `#name` channel, the `channels:history` scope missing): then it is
    /// posted, as it would be without looking.
    async fn find_posted(&self, marker: &Value, outgoing: &Outgoing<'_>) -> Option<Kept> {
        if self.channel.starts_with('#') {
            tracing::debug!("looking for an earlier post needs a channel id, not a #name");
            return None;
        }
        let ts = match outgoing.doubt {
            Doubt::None => return None,
            Doubt::Attempted => {
                let oldest = outgoing.event.received_at.timestamp() - 1;
                let posted = self.history(Some(oldest)).await?;
                find(&posted, marker)
            }
            Doubt::Restarted => {
                let posted = self.before_start.get_or_init(|| self.history(None)).await;
                find(posted.as_deref()?, marker)
            }
        }?;
        Some(Kept {
            channel: self.channel.clone(),
            ts,
        })
    }

    /// The marked messages of the channel, newest first, since `oldest` (Unix seconds) or as far
    /// as [`HISTORY_PAGES`] go: each one's metadata and `ts`. `None` when the history cannot be
    /// read.
    async fn history(&self, oldest: Option<i64>) -> Option<Vec<(Value, String)>> {
        let oldest = oldest.map(|o| o.to_string());
        let mut cursor = String::new();
        let mut posted = Vec::new();
        for _ in 0..HISTORY_PAGES {
            let mut query = vec![
                ("channel", self.channel.as_str()),
                ("include_all_metadata", "true"),
                ("limit", "100"),
            ];
            if let Some(oldest) = &oldest {
                query.push(("oldest", oldest.as_str()));
            }
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let page = match self.history.get(&query, MAX_HISTORY_BYTES).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    serde_json::from_str::<Value>(&answer.text).unwrap_or_default()
                }
                Ok(answer) => {
                    tracing::warn!(
                        status = answer.status,
                        "cannot read the channel's history to look for an earlier post; posting"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the channel's history to look for an earlier post; posting");
                    return None;
                }
            };
            if page["ok"] != true {
                tracing::warn!(error = %page["error"], "cannot read the channel's history to look for an earlier post (the app needs channels:history, or groups:history for a private channel); posting");
                return None;
            }
            for message in page["messages"].as_array().into_iter().flatten() {
                if message["metadata"]["event_type"] == METADATA_TYPE
                    && let Some(ts) = message["ts"].as_str()
                {
                    posted.push((message["metadata"].clone(), ts.to_owned()));
                }
            }
            match page["response_metadata"]["next_cursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = next.to_owned(),
                _ => break,
            }
        }
        Some(posted)
    }

    async fn auth_test(&self) -> Result<String, DeliveryError> {
        let answer = self
            .auth_test
            .exchange("{}".to_owned(), MAX_API_ANSWER_BYTES)
            .await?;
        let ok = api_answer("auth.test", &self.auth_test, &answer)?;
        let field = |name: &str| {
            ok.get(name)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        Ok(format!(
            "bot {} ({}) in team {} ({}), posting to {}",
            field("user"),
            field("user_id"),
            field("team"),
            field("team_id"),
            self.channel
        ))
    }
}

/// One Web API call of a delivery.
enum Call<'a> {
    /// A message of its own, with the metadata that tells it is this delivery's.
    New(&'a Value),
    Update(&'a Kept),
    Reply(&'a Kept),
}

impl Call<'_> {
    fn method(&self) -> &'static str {
        match self {
            Self::New(_) | Self::Reply(_) => "chat.postMessage",
            Self::Update(_) => "chat.update",
        }
    }
}

/// The `event_type` of the metadata every message the relay posts carries.
const METADATA_TYPE: &str = "alert_relay_event";

/// The metadata (<https://docs.slack.dev/messaging/message-metadata>) that tells a message posted
/// for `event`: its source and id, whatever the template wrote.
fn marker(event: &Event) -> Value {
    json!({
        "event_type": METADATA_TYPE,
        "event_payload": { "source": event.source.name, "event": event.id },
    })
}

/// The channel's history is read at most this many pages back, looking for a message.
const HISTORY_PAGES: usize = 5;
/// A page of `conversations.history` (100 messages with their blocks) is read this far.
const MAX_HISTORY_BYTES: usize = 1024 * 1024;

/// The `ts` of the message among `posted` that carries `marker`.
fn find(posted: &[(Value, String)], marker: &Value) -> Option<String> {
    posted
        .iter()
        .find(|(metadata, _)| metadata == marker)
        .map(|(_, ts)| ts.clone())
}

/// What is kept of a posted message: where it is.
struct Kept {
    channel: String,
    ts: String,
}

impl Kept {
    fn from_value(value: &Value) -> Option<Self> {
        Some(Self {
            channel: value.get("channel")?.as_str()?.to_owned(),
            ts: value.get("ts")?.as_str()?.to_owned(),
        })
    }
}

/// The fields of an `ok: true` answer, or the error it carries: HTTP 429 and 5xx as statuses
/// (retried, `Retry-After` obeyed), `ok: false` by its error code.
fn api_answer(
    method: &'static str,
    target: &HttpTarget,
    answer: &Answer,
) -> Result<serde_json::Map<String, Value>, DeliveryError> {
    let text = || -> String {
        target
            .redact(answer.text.trim())
            .chars()
            .take(super::MAX_ANSWER_CHARS)
            .collect()
    };
    if !(200..300).contains(&answer.status) {
        return Err(DeliveryError::Status {
            status: answer.status,
            retry_after: answer.retry_after,
            answer: text(),
        });
    }
    let fields = top_level_fields(answer.text.as_bytes());
    if !fields.contains_key("ok") {
        return Err(DeliveryError::Io(format!(
            "{method}: the answer is not Slack's JSON: {}",
            text()
        )));
    }
    if fields.get("ok") == Some(&Value::Bool(true)) {
        return Ok(fields);
    }
    let code = fields
        .get("error")
        .and_then(Value::as_str)
        .map(|code| target.redact(code).chars().take(100).collect::<String>())
        .unwrap_or_else(|| "unknown_error".into());
    Err(api_error(method, &code))
}

/// The top-level texts, numbers and booleans of a JSON object, as far as `bytes` goes: an answer
/// that was not read to its end (a message echo larger than what is read) still gives every
/// field before the cut. Objects and arrays (the echo) are skipped, never held.
fn top_level_fields(bytes: &[u8]) -> serde_json::Map<String, Value> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

    struct Fields<'a>(&'a mut serde_json::Map<String, Value>);

    impl<'de> Visitor<'de> for Fields<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if let Some(value) = map.next_value::<Scalar>()?.0 {
                    self.0.insert(key, value);
                }
            }
            Ok(())
        }
    }

    /// A text, number or boolean; anything else is read past.
    struct Scalar(Option<Value>);

    impl<'de> serde::Deserialize<'de> for Scalar {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Kept;
            impl<'de> Visitor<'de> for Kept {
                type Value = Scalar;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                    Ok(Scalar(Some(Value::Bool(v))))
                }
                fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar(Some(Value::String(v.to_owned()))))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(Value::from(v))))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(Value::from(v))))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(Value::from(v))))
                }
                fn visit_unit<E>(self) -> Result<Scalar, E> {
                    Ok(Scalar(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Scalar(None))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Scalar, A::Error> {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Scalar(None))
                }
            }
            deserializer.deserialize_any(Kept)
        }
    }

    let mut fields = serde_json::Map::new();
    // A cut answer ends in an error; what was read before it stands.
    let _ = serde_json::Deserializer::from_slice(bytes).deserialize_map(Fields(&mut fields));
    fields
}

/// How the relay treats a Web API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Slack may take it later: retried with backoff.
    Retry,
    /// Will not change until the operator acts: the delivery is dead, the log says what to do.
    Permanent,
    /// Slack refuses this message's content: the fallback message goes instead.
    Content,
    /// The message to update is gone or too old: the update is given up.
    Gone,
}

/// Each error code Slack documents for `chat.postMessage` and `chat.update` that the relay acts
/// on, its class, and what the operator can do.
const ERRORS: &[(&str, Class, Option<&str>)] = &[
    ("ratelimited", Class::Retry, None),
    ("service_unavailable", Class::Retry, None),
    ("request_timeout", Class::Retry, None),
    ("internal_error", Class::Retry, None),
    ("fatal_error", Class::Retry, None),
    (
        "invalid_auth",
        Class::Permanent,
        Some("the token is not valid: set the app's Bot User OAuth Token (xoxb-…) as token"),
    ),
    (
        "not_authed",
        Class::Permanent,
        Some("no token reached Slack: set the app's Bot User OAuth Token (xoxb-…) as token"),
    ),
    (
        "token_revoked",
        Class::Permanent,
        Some("the token was revoked: reinstall the Slack app and set its new bot token"),
    ),
    (
        "token_expired",
        Class::Permanent,
        Some(
            "the token expired: reinstall the Slack app, or turn token rotation off, and set its new bot token",
        ),
    ),
    (
        "account_inactive",
        Class::Permanent,
        Some("the app's bot or workspace was deactivated: reinstall the app"),
    ),
    (
        "missing_scope",
        Class::Permanent,
        Some(
            "the app lacks the chat:write scope: add it under OAuth & Permissions, reinstall the app, and set the new token",
        ),
    ),
    (
        "channel_not_found",
        Class::Permanent,
        Some(
            "the token cannot see this channel: use its id (C0123…, in the channel's details), and invite the app there or give it chat:write.public",
        ),
    ),
    (
        "not_in_channel",
        Class::Permanent,
        Some(
            "the app is not in the channel: type /invite @<app name> in it, or give the app the chat:write.public scope (public channels only)",
        ),
    ),
    (
        "is_archived",
        Class::Permanent,
        Some("the channel is archived: unarchive it or set another channel"),
    ),
    ("msg_too_long", Class::Content, None),
    ("invalid_blocks", Class::Content, None),
    ("invalid_blocks_format", Class::Content, None),
    ("no_text", Class::Content, None),
    ("cant_update_message", Class::Gone, None),
    ("message_not_found", Class::Gone, None),
    ("edit_window_closed", Class::Gone, None),
];

/// The error for `code`; a code not in `ERRORS` is permanent, with no hint.
pub fn api_error(method: &'static str, code: &str) -> DeliveryError {
    let (retryable, hint) = match ERRORS.iter().find(|(c, _, _)| *c == code) {
        Some((_, class, hint)) => (*class == Class::Retry, *hint),
        None => (false, None),
    };
    DeliveryError::Api {
        method,
        code: code.to_owned(),
        retryable,
        hint,
    }
}

/// What to do about a Web API error (see `ERRORS`); `Retry` or `Permanent` for other errors as
/// [`DeliveryError::is_retryable`] says.
pub trait Classify {
    fn class(&self) -> Class;
}

impl Classify for DeliveryError {
    fn class(&self) -> Class {
        if let DeliveryError::Api { code, .. } = self
            && let Some((_, class, _)) = ERRORS.iter().find(|(c, _, _)| c == code)
        {
            return *class;
        }
        if self.is_retryable() {
            Class::Retry
        } else {
            Class::Permanent
        }
    }
}

/// Slack refuses a message with more than 50 blocks.
const SLACK_MAX_BLOCKS: usize = 50;
/// Slack refuses section text over 3,000 characters.
const SLACK_MAX_SECTION_TEXT: usize = 3000;
/// Slack refuses a header over 150 characters.
const SLACK_MAX_HEADER_TEXT: usize = 150;
/// Slack refuses more than 10 fields in a section, each over 2,000 characters.
const SLACK_MAX_FIELDS: usize = 10;
const SLACK_MAX_FIELD_TEXT: usize = 2000;
/// Slack: Block Kit JSON, every `{{value}}` with Slack's entities (no mention, no link), about one
/// message a second per webhook with short bursts.
pub struct SlackFacts;

pub static FACTS: SlackFacts = SlackFacts;

impl Facts for SlackFacts {
    fn escape(&self, _: Part) -> Escape {
        Escape::Slack
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "default.hbs",
                include_str!("../../templates/slack/default.hbs"),
            ),
            ("group.hbs", include_str!("../../templates/slack/group.hbs")),
        ]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        let body = super::json_body(texts)?;
        validate(&body).map_err(|reason| format!("invalid: {reason}"))?;
        Ok(Message::Json(body))
    }

    fn fallback(&self, event: &Event) -> Message {
        let mut text = slack_entities(&super::headline(event));
        if let Some(link) = event.summary.link.as_deref() {
            text.push_str(&format!(
                "\n<{link}|Open in {}>",
                slack_entities(event.source.label())
            ));
        }
        Message::Json(json!({ "text": text }))
    }

    /// Slack accepts about one message per second per webhook, with short bursts.
    fn pace(&self) -> Pace {
        Pace::per_second(1, Some(3))
    }
}

/// What Slack refuses: no text at all, too many blocks, texts over Slack's limits.
fn validate(body: &Value) -> Result<(), String> {
    let body = body
        .as_object()
        .ok_or("a Slack message must be a JSON object")?;
    let has = |key: &str| match body.get(key) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    if !has("text") && !has("blocks") && !has("attachments") {
        return Err("a Slack message needs \"text\", \"blocks\" or \"attachments\"".into());
    }
    let Some(blocks) = body.get("blocks") else {
        return Ok(());
    };
    let blocks = blocks.as_array().ok_or("\"blocks\" must be a list")?;
    if blocks.len() > SLACK_MAX_BLOCKS {
        return Err(format!(
            "{} blocks; Slack accepts at most {SLACK_MAX_BLOCKS}",
            blocks.len()
        ));
    }
    for (i, block) in blocks.iter().enumerate() {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("blocks[{i}] has no \"type\""))?;
        let text_len = |v: Option<&Value>| {
            v.and_then(|t| t.get("text"))
                .and_then(Value::as_str)
                .map_or(0, |s| s.chars().count())
        };
        let limit = match kind {
            "section" => SLACK_MAX_SECTION_TEXT,
            "header" => SLACK_MAX_HEADER_TEXT,
            _ => continue,
        };
        let len = text_len(block.get("text"));
        if len > limit {
            return Err(format!(
                "blocks[{i}] ({kind}) text has {len} characters; Slack accepts at most {limit}"
            ));
        }
        if let Some(fields) = block.get("fields").and_then(Value::as_array) {
            if fields.len() > SLACK_MAX_FIELDS {
                return Err(format!(
                    "blocks[{i}] has more than {SLACK_MAX_FIELDS} fields"
                ));
            }
            if fields
                .iter()
                .any(|f| text_len(Some(f)) > SLACK_MAX_FIELD_TEXT)
            {
                return Err(format!(
                    "blocks[{i}] has a field over {SLACK_MAX_FIELD_TEXT} characters"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_web_api_error_lands_in_its_class() {
        use Class::*;
        let table = [
            ("ratelimited", Retry),
            ("service_unavailable", Retry),
            ("request_timeout", Retry),
            ("internal_error", Retry),
            ("invalid_auth", Permanent),
            ("not_authed", Permanent),
            ("token_revoked", Permanent),
            ("token_expired", Permanent),
            ("account_inactive", Permanent),
            ("missing_scope", Permanent),
            ("channel_not_found", Permanent),
            ("not_in_channel", Permanent),
            ("is_archived", Permanent),
            ("msg_too_long", Content),
            ("invalid_blocks", Content),
            ("invalid_blocks_format", Content),
            ("no_text", Content),
            ("cant_update_message", Gone),
            ("message_not_found", Gone),
            ("edit_window_closed", Gone),
            ("a_code_slack_adds_later", Permanent),
        ];
        for (code, class) in table {
            let error = api_error("chat.postMessage", code);
            assert_eq!(error.class(), class, "{code}");
            assert_eq!(error.is_retryable(), class == Retry, "{code}");
            // Every permanent error Slack documents says what the operator can do.
            if class == Permanent && code != "a_code_slack_adds_later" {
                assert!(error.to_string().contains(" ("), "{code}: {error}");
            }
        }
        let hint = api_error("chat.postMessage", "not_in_channel").to_string();
        assert!(hint.contains("/invite @<app name>"), "{hint}");
        assert!(hint.contains("chat:write.public"), "{hint}");
        // HTTP answers keep their classes: 429 and 5xx are retried.
        let status = |status| DeliveryError::Status {
            status,
            retry_after: None,
            answer: String::new(),
        };
        assert_eq!(status(429).class(), Retry);
        assert_eq!(status(503).class(), Retry);
        assert_eq!(status(404).class(), Permanent);
    }

    fn config(toml: &str) -> SlackConfig {
        toml::from_str(toml).expect("config")
    }

    #[test]
    fn an_answer_cut_short_still_gives_its_first_fields() {
        let cut = br#"{"ok":true,"channel":"C1","ts":"1.2","message":{"blocks":[{"text":"xxxx"#;
        let fields = top_level_fields(cut);
        assert_eq!(fields["ok"], true);
        assert_eq!(
            (fields["channel"].as_str(), fields["ts"].as_str()),
            (Some("C1"), Some("1.2"))
        );
        assert!(!fields.contains_key("message"));
        let refused = top_level_fields(br#"{"ok":false,"error":"channel_not_found"}"#);
        assert_eq!(refused["error"], "channel_not_found");
        assert!(top_level_fields(b"<html>Bad Gateway</html>").is_empty());
    }

    #[test]
    fn the_web_api_and_a_webhook_are_one_or_the_other() {
        let http = crate::http::client(std::time::Duration::from_secs(1));
        let at = Place {
            name: "ops",
            key: "destinations.ops".into(),
            base_dir: std::path::Path::new("."),
            http: &http,
        };
        let build = |toml: &str| Slack::new(&config(toml), &at);
        let refused = |toml: &str| build(toml).err().expect("refused").to_string();
        let both = refused(
            "url = \"https://hooks.slack.com/services/X\"\ntoken = \"xoxb-SECRET\"\nchannel = \"C1\"",
        );
        assert!(both.starts_with("destinations.ops.token: "), "{both}");
        assert!(!both.contains("SECRET"));
        let no_channel = refused("token = \"xoxb-SECRET\"");
        assert!(
            no_channel.starts_with("destinations.ops.channel: is required with token"),
            "{no_channel}"
        );
        let webhook_channel =
            refused("url = \"https://hooks.slack.com/services/X\"\nchannel = \"C1\"");
        assert!(
            webhook_channel.starts_with("destinations.ops.channel: needs token"),
            "{webhook_channel}"
        );
        let bad_api = refused("token = \"xoxb-1\"\nchannel = \"C1\"\napi_url = \"ftp://x\"");
        assert!(
            bad_api.starts_with("destinations.ops.api_url: "),
            "{bad_api}"
        );
        assert!(build("token = \"xoxb-1\"\nchannel = \"#alerts\"").is_ok());
        assert!(build("url = \"https://hooks.slack.com/services/X\"").is_ok());
    }
}
