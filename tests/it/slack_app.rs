//! Acknowledge and Silence from the Slack message itself: the buttons on a trigger's message,
//! clicks arriving by Socket Mode (a loopback fake of Slack's WebSocket, written from
//! <https://docs.slack.dev/apis/events-api/using-socket-mode>: `hello` when ready, envelopes
//! each acknowledged by its `envelope_id`, `disconnect` before Slack closes a connection) or at a
//! signed Request URL, and what each click does: kept, shown by updating the message, a silence
//! made and ended; refused for users outside `allowed_users` and for unsigned requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::common;
use common::{ChildRelay, Peer, Recorded, Reply, sample};

const BOT_TOKEN: &str = "xoxb-1111-2222-SeCrEtBoT";
const APP_TOKEN: &str = "xapp-1-A0APP-3333-SeCrEtApP";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99SeCrEtSiGn";

/// Slack's end of Socket Mode: each connection gets `hello`; what the relay sends back (the
/// envelopes' acknowledgements) is recorded; the test sends envelopes, `disconnect`, or drops the
/// socket.
struct SlackSocket {
    url: String,
    /// Connections made so far.
    connections: Arc<Mutex<usize>>,
    /// To the connections open: a message to send, or `None` to drop the socket.
    senders: Arc<Mutex<Vec<mpsc::UnboundedSender<Option<String>>>>>,
    acks: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl SlackSocket {
    async fn start() -> SlackSocket {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/link/?ticket=1", listener.local_addr().unwrap());
        let connections = Arc::new(Mutex::new(0));
        let senders: Arc<Mutex<Vec<mpsc::UnboundedSender<Option<String>>>>> = Arc::default();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (counted, open) = (connections.clone(), senders.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                *counted.lock().unwrap() += 1;
                let (tx, mut rx) = mpsc::unbounded_channel::<Option<String>>();
                open.lock().unwrap().push(tx);
                let ack_tx = ack_tx.clone();
                tokio::spawn(async move {
                    let hello = json!({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}});
                    if socket.send(Message::text(hello.to_string())).await.is_err() {
                        return;
                    }
                    loop {
                        tokio::select! {
                            out = rx.recv() => match out {
                                Some(Some(text)) => {
                                    if socket.send(Message::text(text)).await.is_err() {
                                        return;
                                    }
                                }
                                // Dropped: no close frame, the TCP connection just ends.
                                _ => return,
                            },
                            incoming = socket.next() => match incoming {
                                Some(Ok(Message::Text(text))) => {
                                    let _ = ack_tx.send(text.to_string());
                                }
                                Some(Ok(_)) => {}
                                _ => return,
                            },
                        }
                    }
                });
            }
        });
        SlackSocket {
            url,
            connections,
            senders,
            acks: tokio::sync::Mutex::new(acks),
        }
    }

    /// Waits until `count` connections have been made and the last one is open.
    async fn until_connections(&self, count: usize) {
        common::eventually("the relay connects to Slack's socket", async || match *self
            .connections
            .lock()
            .unwrap()
        {
            made if made >= count => Ok(()),
            made => Err(format!("{made} connections")),
        })
        .await;
    }

    /// Sends `text` on the latest connection.
    fn send(&self, text: String) {
        let senders = self.senders.lock().unwrap();
        senders
            .last()
            .expect("a connection")
            .send(Some(text))
            .unwrap();
    }

    /// Sends `text` on every connection open (Slack may give an envelope to any of them; here,
    /// to test that the store keeps a click once, to all).
    fn send_to_all(&self, text: String) {
        for sender in self.senders.lock().unwrap().iter() {
            let _ = sender.send(Some(text.clone()));
        }
    }

    /// Drops the latest connection without a word.
    fn drop_latest(&self) {
        let senders = self.senders.lock().unwrap();
        let _ = senders.last().expect("a connection").send(None);
    }

    /// Sends the click `payload` in the envelope `id`; returns once the relay acknowledged it.
    async fn click(&self, id: &str, payload: &Value) {
        self.send(envelope(id, payload));
        assert_eq!(self.next_ack().await, json!({ "envelope_id": id }));
    }

    /// The next message the relay sent on a socket.
    async fn next_ack(&self) -> Value {
        let mut acks = self.acks.lock().await;
        let text = tokio::time::timeout(Duration::from_secs(10), acks.recv())
            .await
            .expect("the relay acknowledged in time")
            .expect("socket open");
        serde_json::from_str(&text).unwrap()
    }
}

/// A Slack Web API destination offering both buttons, and `app` as `[slack_app]`.
fn config(peer: &Peer, app: &str) -> String {
    format!(
        r#"
[storage]
poll = "100ms"
[delivery]
backoff_min = "50ms"
backoff_max = "200ms"

[destinations.ops]
kind = "slack"
token = "{BOT_TOKEN}"
channel = "C0TEST"
api_url = "{api}"
rate_limit = "unlimited"
actions = ["ack", "silence"]

[slack_app]
allowed_users = ["U0ANA", "U0BO"]
{app}
"#,
        api = peer.url("/api")
    )
}

fn socket_mode(peer: &Peer) -> String {
    format!(
        "app_token = \"{APP_TOKEN}\"\napi_url = \"{}\"\n",
        peer.url("/api")
    )
}

/// A `block_actions` payload as Slack sends it when `user` clicks `action` (a button's
/// `value`, or a menu's chosen option) on the message `ts`.
fn click(user: &str, action_id: &str, value: &str, ts: &str, response_url: &str) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let action_ts = format!(
        "1765000000.{:06}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let action = match action_id {
        "alert_relay_silence" => json!({
            "type": "static_select", "action_id": action_id, "block_id": "b1",
            "selected_option": {"text": {"type": "plain_text", "text": "1 h"}, "value": value},
            "action_ts": action_ts,
        }),
        _ => json!({
            "type": "button", "action_id": action_id, "block_id": "b1", "value": value,
            "text": {"type": "plain_text", "text": "x"}, "action_ts": action_ts,
        }),
    };
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.trim_start_matches("U0").to_lowercase(), "team_id": "T0ACME"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": ts, "channel_id": "C0TEST"},
        "channel": {"id": "C0TEST", "name": "alerts"},
        "response_url": response_url,
        "actions": [action],
    })
}

/// The Socket Mode envelope of an interaction.
fn envelope(id: &str, payload: &Value) -> String {
    json!({"envelope_id": id, "type": "interactive", "accepts_response_payload": false, "payload": payload}).to_string()
}

/// The next call to the fake's Web API that is not a read of the channel's history.
async fn next_call(peer: &Peer) -> Recorded {
    loop {
        let call = peer.next().await;
        if !call.path.ends_with("/conversations.history")
            && !call.path.ends_with("/apps.connections.open")
        {
            return call;
        }
    }
}

fn method(call: &Recorded) -> &str {
    call.path.rsplit('/').next().unwrap_or("")
}

/// Every text of a message, one per line.
fn text(message: &Value) -> String {
    common::strings(message).join("\n")
}

/// The `action_id`s of a message's buttons and menus.
fn action_ids(message: &Value) -> Vec<String> {
    (message["blocks"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["action_id"].as_str().map(str::to_owned))
        .collect()
}

/// The next call, which must update the message `ts`: what it shows, and its buttons.
async fn update_of(peer: &Peer, ts: &str) -> (String, Vec<String>) {
    let call = next_call(peer).await;
    let body = call.json();
    assert_eq!(
        (method(&call), body["ts"].as_str()),
        ("chat.update", Some(ts)),
        "{body}"
    );
    (text(&body), action_ids(&body))
}

async fn metric(relay: &ChildRelay, line: &str) {
    common::eventually(line, async || {
        let metrics = relay.metrics(None).await;
        match metrics.lines().any(|l| l == line) {
            true => Ok(()),
            false => Err(metrics),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_and_silence_by_socket_mode() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let socket = SlackSocket::start().await;
    peer.slack_socket_at(&socket.url);
    let dir = common::config_dir(&config(&peer, &socket_mode(&peer)), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    socket.until_connections(1).await;
    metric(&relay, "alert_relay_slack_socket_connected 1").await;

    // The trigger's message offers both.
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let posted = next_call(&peer).await;
    assert_eq!(method(&posted), "chat.postMessage");
    let ts = posted.ts.clone().unwrap();
    assert_eq!(
        action_ids(&posted.json()),
        ["alert_relay_ack", "alert_relay_silence"]
    );
    let value = "ops|35541";
    let answers = peer.url("/respond");

    // Acknowledge: the envelope is acknowledged, the message says who and offers Unacknowledge.
    let ack = click("U0ANA", "alert_relay_ack", value, &ts, &answers);
    socket.click("e-1", &ack).await;
    let (shown, buttons) = update_of(&peer, &ts).await;
    assert!(shown.contains("Acknowledged by @ana at "), "{shown}");
    assert_eq!(buttons, ["alert_relay_unack", "alert_relay_silence"]);
    // The same click again (Slack retries an envelope it thinks was missed): kept once.
    socket.click("e-1b", &ack).await;
    metric(
        &relay,
        "alert_relay_slack_actions_total{action=\"ack\",outcome=\"duplicate\"} 1",
    )
    .await;

    // Unacknowledge reverts it.
    socket
        .click(
            "e-2",
            &click("U0BO", "alert_relay_unack", value, &ts, &answers),
        )
        .await;
    let (shown, buttons) = update_of(&peer, &ts).await;
    assert!(!shown.contains("Acknowledged by"), "{shown}");
    assert_eq!(buttons, ["alert_relay_ack", "alert_relay_silence"]);

    // Silence for an hour: a silence of the alert's source, rule and test, by the user.
    let silence = click(
        "U0ANA",
        "alert_relay_silence",
        &format!("1h|{value}"),
        &ts,
        &answers,
    );
    socket.click("e-3", &silence).await;
    let (shown, buttons) = update_of(&peer, &ts).await;
    assert!(shown.contains("Silenced by @ana until "), "{shown}");
    assert_eq!(buttons, ["alert_relay_ack", "alert_relay_unsilence"]);
    let (ok, listed) = crate::noise::run(dir.path(), &["silence", "list"]).await;
    assert!(ok, "{listed}");
    assert!(
        listed.contains("source=thousandeyes")
            && listed.contains("rule=Default Page Load Alert Rule")
            && listed.contains("ana (Slack U0ANA)"),
        "{listed}"
    );
    metric(&relay, "alert_relay_silences_active 1").await;
    // It mutes the next alert of that rule and test.
    let next = sample("alert_trigger.json")
        .replace("\"alertId\": 35541", "\"alertId\": 35599")
        .replace("\"49-35541\"", "\"49-35599\"");
    let (status, answer) = relay.post(next).await;
    assert_eq!(status, 200, "{answer}");
    metric(
        &relay,
        "alert_relay_events_silenced_total{by=\"silence\"} 1",
    )
    .await;

    // A user not in allowed_users: told alone, nothing changes.
    socket
        .click(
            "e-4",
            &click("U0EVE", "alert_relay_ack", value, &ts, &answers),
        )
        .await;
    let told = next_call(&peer).await;
    assert_eq!(told.path, "/respond");
    assert_eq!(told.json()["response_type"], "ephemeral");
    metric(
        &relay,
        "alert_relay_slack_actions_total{action=\"ack\",outcome=\"refused\"} 1",
    )
    .await;

    // Unsilence ends it: the message loses the line, and the alert it held goes out.
    socket
        .click(
            "e-5",
            &click("U0ANA", "alert_relay_unsilence", value, &ts, &answers),
        )
        .await;
    let mut calls = [next_call(&peer).await, next_call(&peer).await];
    calls.sort_by_key(|c| method(c).to_owned());
    assert_eq!(method(&calls[0]), "chat.postMessage", "the alert it held");
    assert_eq!(
        calls[0].json()["metadata"]["event_payload"]["event"],
        "49-35599"
    );
    assert_eq!(method(&calls[1]), "chat.update");
    assert!(!text(&calls[1].json()).contains("Silenced by"));
    metric(&relay, "alert_relay_silences_active 0").await;

    // Slack's disconnect: the relay connects again and clicks still work.
    socket.send(json!({"type": "disconnect", "reason": "refresh_requested"}).to_string());
    socket.until_connections(2).await;
    // A dropped socket: the relay connects again.
    socket.drop_latest();
    socket.until_connections(3).await;
    metric(&relay, "alert_relay_slack_socket_connected 1").await;
    socket
        .click(
            "e-6",
            &click("U0ANA", "alert_relay_ack", value, &ts, &answers),
        )
        .await;
    let (shown, _) = update_of(&peer, &ts).await;
    assert!(shown.contains("Acknowledged by @ana"), "{shown}");

    // The clear updates the message: the ack line stays, the buttons go.
    assert_eq!(relay.post(sample("alert_clear.json")).await.0, 200);
    let (shown, buttons) = update_of(&peer, &ts).await;
    assert!(
        shown.contains("Acknowledged by @ana") && shown.contains("cleared"),
        "{shown}"
    );
    assert!(buttons.is_empty(), "a cleared message has no buttons");

    // No secret in the logs.
    let logs = common::relay_logs(dir.path());
    for secret in ["SeCrEtApP", "SeCrEtBoT"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
    relay.kill_9();
}

/// Posts `payload` to the Request URL form-encoded, signed with `secret` at `timestamp` (Unix
/// seconds); `tamper` changes the body after signing. The status.
async fn post_signed(
    relay: &ChildRelay,
    payload: &Value,
    secret: &str,
    timestamp: i64,
    headers: bool,
    tamper: bool,
) -> u16 {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let signature =
        alert_relay::slack_app::signature::sign(secret, &timestamp.to_string(), body.as_bytes());
    let sent = match tamper {
        true => body.replace("U0ANA", "U0BO"),
        false => body,
    };
    let mut request = common::client()
        .post(format!("http://{}/slack/actions", relay.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(sent);
    if headers {
        request = request
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature);
    }
    request
        .send()
        .await
        .expect("the relay answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_url_acts_only_on_what_slack_signed() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let app = format!("signing_secret = \"{SIGNING_SECRET}\"\n");
    let dir = common::config_dir(&config(&peer, &app), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let ts = next_call(&peer).await.ts.unwrap();
    let ack = click(
        "U0ANA",
        "alert_relay_ack",
        "ops|35541",
        &ts,
        &peer.url("/respond"),
    );
    let now = chrono::Utc::now().timestamp();

    // Refused, each with 401 and nothing done.
    let refusals = [
        ("a wrong secret", "not-the-secret", now, true, false),
        ("a stale timestamp", SIGNING_SECRET, now - 301, true, false),
        ("no signature headers", SIGNING_SECRET, now, false, false),
        (
            "a body changed after signing",
            SIGNING_SECRET,
            now,
            true,
            true,
        ),
    ];
    for (what, secret, at, headers, tamper) in refusals {
        assert_eq!(
            post_signed(&relay, &ack, secret, at, headers, tamper).await,
            401,
            "{what}"
        );
    }
    metric(&relay, "alert_relay_slack_signatures_refused_total 4").await;
    // Signed: 200 at once, then the message is updated; the refused ones did nothing before it.
    assert_eq!(
        post_signed(&relay, &ack, SIGNING_SECRET, now, true, false).await,
        200
    );
    let (shown, _) = update_of(&peer, &ts).await;
    assert!(shown.contains("Acknowledged by @ana"), "{shown}");
    metric(
        &relay,
        "alert_relay_slack_actions_total{action=\"ack\",outcome=\"done\"} 1",
    )
    .await;
    let (_, answer) = relay.post(String::new()).await;
    assert!(answer.get("error").is_some(), "the server keeps serving");

    // The secrets appear nowhere: logs, metrics, check.
    let metrics = relay.metrics(None).await;
    let (_, checked) = common::command(dir.path(), &["check"]);
    let logs = common::relay_logs(dir.path());
    for place in [&metrics, &checked, &logs] {
        assert!(!place.contains("SeCrEtSiGn") && !place.contains("SeCrEtBoT"));
    }
    relay.kill_9();
}

/// What was done from a message outlives a `kill -9`: started again, the relay's clear still
/// shows the ack, and the silence still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_silences_outlive_a_kill_9() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let socket = SlackSocket::start().await;
    peer.slack_socket_at(&socket.url);
    let dir = common::config_dir(&config(&peer, &socket_mode(&peer)), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    socket.until_connections(1).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let ts = next_call(&peer).await.ts.unwrap();
    let answers = peer.url("/respond");
    for (id, action, value) in [
        ("k-1", "alert_relay_ack", "ops|35541"),
        ("k-2", "alert_relay_silence", "4h|ops|35541"),
    ] {
        socket
            .click(id, &click("U0ANA", action, value, &ts, &answers))
            .await;
        assert_eq!(method(&next_call(&peer).await), "chat.update");
    }
    relay.kill_9();

    let relay = ChildRelay::start(dir.path()).await;
    socket.until_connections(2).await;
    metric(&relay, "alert_relay_silences_active 1").await;
    assert_eq!(relay.post(sample("alert_clear.json")).await.0, 200);
    let (shown, _) = update_of(&peer, &ts).await;
    assert!(shown.contains("Acknowledged by @ana"), "{shown}");
    relay.kill_9();
}

/// Two relays on one PostgreSQL store, each with its own Socket Mode connection, both given the
/// same click: it is kept and shown once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn two_replicas_handle_a_click_once() {
    let url = alert_relay::testing::fresh_postgres_database()
        .await
        .expect("a PostgreSQL server (RELAY_TEST_POSTGRES)");
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let socket = SlackSocket::start().await;
    peer.slack_socket_at(&socket.url);
    let dir = common::config_dir(&config(&peer, &socket_mode(&peer)), &[]);
    let env = [("ALERT_RELAY_STORAGE__URL", url.expose().to_owned())];
    let relays = [
        ChildRelay::start_with_env(dir.path(), &env).await,
        ChildRelay::start_with_env(dir.path(), &env).await,
    ];
    socket.until_connections(2).await;
    assert_eq!(relays[0].post(sample("alert_trigger.json")).await.0, 200);
    let ts = next_call(&peer).await.ts.unwrap();
    let ack = click(
        "U0ANA",
        "alert_relay_ack",
        "ops|35541",
        &ts,
        &peer.url("/respond"),
    );
    socket.send_to_all(envelope("p-1", &ack));
    socket.next_ack().await;
    socket.next_ack().await;
    update_of(&peer, &ts).await;
    // One kept it, the other found it kept.
    for (outcome, relay) in [("done", 0), ("duplicate", 1)] {
        let line =
            format!("alert_relay_slack_actions_total{{action=\"ack\",outcome=\"{outcome}\"}} 1");
        common::eventually(&line, async || {
            let both = [relays[0].metrics(None).await, relays[1].metrics(None).await];
            match both.iter().any(|m| m.lines().any(|l| l == line)) {
                true => Ok(()),
                false => Err(format!("relay {relay}: {both:?}")),
            }
        })
        .await;
    }
    assert!(
        peer.next_within(Duration::from_millis(500)).await.is_none(),
        "the message is updated once"
    );
    for relay in relays {
        relay.kill_9();
    }
}

/// An ack shows beyond Slack: a webhook's later body of the alert says who had it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_hears_who_acknowledged_the_alert() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let hook = Peer::start().await;
    let app = format!(
        "signing_secret = \"{SIGNING_SECRET}\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        hook.url("/hook")
    );
    let dir = common::config_dir(&config(&peer, &app), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let ts = next_call(&peer).await.ts.unwrap();
    assert_eq!(
        hook.next().await.json()["correlation"]["state"],
        "triggered"
    );
    let ack = click(
        "U0ANA",
        "alert_relay_ack",
        "ops|35541",
        &ts,
        &peer.url("/respond"),
    );
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        post_signed(&relay, &ack, SIGNING_SECRET, now, true, false).await,
        200
    );
    assert_eq!(method(&next_call(&peer).await), "chat.update");
    assert_eq!(relay.post(sample("alert_clear.json")).await.0, 200);
    assert_eq!(
        hook.next().await.json()["correlation"],
        json!({"key": "35541", "state": "cleared", "by": "ana"})
    );
    relay.kill_9();
}

#[test]
fn buttons_without_a_way_for_their_clicks_are_refused() {
    let dir = common::config_dir(
        &format!(
            "[destinations.ops]\nkind = \"slack\"\ntoken = \"{BOT_TOKEN}\"\nchannel = \"C0TEST\"\nactions = [\"ack\"]\n"
        ),
        &[],
    );
    let (ok, out) = common::command(dir.path(), &["check"]);
    assert!(!ok);
    assert!(
        out.contains("destinations.ops.actions: needs [slack_app]"),
        "{out}"
    );
    for (app, problem) in [
        (
            "app_token = \"xoxb-not-an-app-token\"",
            "slack_app.app_token: is not an app-level token",
        ),
        (
            "allowed_users = [\"ana\"]\nsigning_secret = \"s\"",
            "slack_app.allowed_users: \"ana\" is not a Slack user id",
        ),
        ("path = \"/x\"", "slack_app: needs app_token"),
        (
            "signing_secret = \"s\"\npath = \"/\"",
            "slack_app.path: / is already the path of source thousandeyes",
        ),
    ] {
        let dir = common::config_dir(
            &format!("[destinations.out]\nkind = \"console\"\n[slack_app]\n{app}\n"),
            &[],
        );
        let (ok, out) = common::command(dir.path(), &["check"]);
        assert!(!ok, "{app}");
        assert!(out.contains(problem), "{app}: {out}");
        assert!(!out.contains("xoxb-not"), "no token quoted: {out}");
    }
}

/// A group's message offers the buttons too: a Silence there silences the group's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_message_is_silenced_by_its_fields() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let app = format!(
        "signing_secret = \"{SIGNING_SECRET}\"\n[[routes]]\nto = [\"ops\"]\ngroup_by = [\"test\"]\ngroup_wait = \"1s\"\n"
    );
    let dir = common::config_dir(&config(&peer, &app), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    for i in [1, 2] {
        let body = format!(
            r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "g-{i}", "alert": {{"ruleName": "Latency-{i}", "testName": "checkout", "alertId": "{i}"}}}}"#
        );
        assert_eq!(relay.post(body).await.0, 200);
    }
    let parent = next_call(&peer).await;
    assert_eq!(method(&parent), "chat.postMessage");
    let ts = parent.ts.clone().unwrap();
    let message = parent.json();
    assert_eq!(
        action_ids(&message),
        ["alert_relay_ack", "alert_relay_silence"]
    );
    // The menu's "1 h" option, as the relay wrote it.
    let option = (message["blocks"].as_array().unwrap().iter())
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .find(|e| e["action_id"] == "alert_relay_silence")
        .map(|menu| menu["options"][0]["value"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(option.starts_with("1h|ops|group:"), "{option}");
    let silence = click(
        "U0ANA",
        "alert_relay_silence",
        &option,
        &ts,
        &peer.url("/respond"),
    );
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        post_signed(&relay, &silence, SIGNING_SECRET, now, true, false).await,
        200
    );
    // The group's thread reply, then the parent updated.
    let update = loop {
        let call = next_call(&peer).await;
        if method(&call) == "chat.update" {
            break call;
        }
    };
    assert_eq!(update.json()["ts"], ts.as_str());
    assert!(
        text(&update.json()).contains("Silenced by @ana"),
        "{}",
        text(&update.json())
    );
    let (ok, listed) = crate::noise::run(dir.path(), &["silence", "list"]).await;
    assert!(ok && listed.contains("test=checkout"), "{listed}");
    relay.kill_9();
}
