//! An alert's life in one place: a clear updates its trigger's Slack message and replies in its
//! thread (Web API, against a loopback fake of it), answers its trigger's email, and waits for a
//! trigger that is still being delivered; across a `kill -9` too.

use std::time::Duration;

use mail_parser::MessageParser;
use serde_json::Value;

use crate::common;
use common::{
    ChildRelay, Peer, Reply, SmtpServer, TestRelay, command, email_header, relay_logs, sample,
};

const TOKEN: &str = "xoxb-1111-2222-SeCrEtToKeN";

/// A Slack destination on the Web API fake at `peer`, and quick retries.
fn slack_config(peer: &Peer, extra: &str) -> String {
    format!(
        r##"
[delivery]
backoff_min = "50ms"
backoff_max = "200ms"

[destinations.ops]
kind = "slack"
token = "{TOKEN}"
channel = "#alerts"
api_url = "{}"
rate_limit = "unlimited"
{extra}
"##,
        peer.url("/api")
    )
}

/// The Web API method a recorded request called.
fn method(request: &common::Recorded) -> &str {
    request.path.rsplit('/').next().unwrap_or("")
}

/// Posts the trigger, then (once it is in Slack) the clear of the same alert; returns the three
/// calls the clear made Slack receive, after checking the trigger's own.
async fn trigger_then_clear(relay: &TestRelay, peer: &Peer) -> (String, Vec<common::Recorded>) {
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    let posted = peer.next().await;
    assert_eq!(method(&posted), "chat.postMessage");
    let body = posted.json();
    assert_eq!(body["channel"], "#alerts");
    assert!(body.get("thread_ts").is_none(), "{body}");
    assert_eq!(
        posted.headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    let ts = posted.ts.clone().expect("the fake gave the message a ts");
    assert_eq!(relay.post(&sample("alert_clear.json")).await.0, 200);
    let calls = vec![peer.next().await, peer.next().await];
    (ts, calls)
}

/// `chat.postMessage` echoes the whole message: a message within Slack's own limits (30 sections
/// of 2,900 characters) makes an answer of about 90 KB, more than the relay reads of it. The
/// answer says `ok` first: the message is posted once, and its clear updates it.
#[tokio::test]
async fn an_ok_answer_longer_than_what_is_read_is_still_ok() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let sections = (0..30)
        .map(|i| format!("{{\"type\": \"section\", \"text\": {{\"type\": \"mrkdwn\", \"text\": \"{i} {}\"}}}}", "x".repeat(2900)))
        .collect::<Vec<_>>()
        .join(",");
    let template = format!("{{\"text\": \"{{{{summary.title}}}}\", \"blocks\": [{sections}]}}");
    let relay = TestRelay::start_with_files(
        &slack_config(&peer, ""),
        &[("templates/slack/alert.trigger.hbs", template.as_str())],
    )
    .await;
    let (ts, calls) = trigger_then_clear(&relay, &peer).await;
    assert_eq!(method(&calls[0]), "chat.update");
    assert_eq!(calls[0].json()["ts"], ts.as_str(), "the one message posted");
    assert_eq!(method(&calls[1]), "chat.postMessage");
    assert!(
        peer.next_within(Duration::from_millis(500)).await.is_none(),
        "posted once, not again"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_clear_updates_its_triggers_message_and_replies_in_its_thread() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let relay = TestRelay::start(&slack_config(&peer, "")).await;
    let (ts, calls) = trigger_then_clear(&relay, &peer).await;

    let (update, reply) = (&calls[0], &calls[1]);
    assert_eq!(method(update), "chat.update");
    let body = update.json();
    assert_eq!(
        (body["channel"].as_str(), body["ts"].as_str()),
        (Some("C0TEST"), Some(ts.as_str()))
    );
    let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.starts_with("✅ Cleared"),
        "the trigger's message turns cleared: {body}"
    );

    assert_eq!(method(reply), "chat.postMessage");
    let body = reply.json();
    assert_eq!(body["thread_ts"].as_str(), Some(ts.as_str()));
    assert_eq!(body["channel"], "C0TEST");
    assert!(body.get("reply_broadcast").is_none());
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("✅ Cleared after "),
        "a short line in the thread: {text}"
    );
    assert_eq!(body["blocks"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(peer.next_within(Duration::from_millis(300)).await.is_none());
    relay.stop().await;
}

#[tokio::test]
async fn on_clear_chooses_the_update_the_reply_or_neither() {
    for (on_clear, expected) in [
        (r#"on_clear = ["reply"]"#, vec!["reply"]),
        (r#"on_clear = ["update"]"#, vec!["update"]),
        ("on_clear = []", vec!["new"]),
        ("reply_broadcast = true", vec!["update", "broadcast"]),
    ] {
        let peer = Peer::start().await;
        peer.answer_by_default(Reply::SlackOk);
        let relay = TestRelay::start(&slack_config(&peer, on_clear)).await;
        assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
        let ts = peer.next().await.ts.unwrap();
        assert_eq!(relay.post(&sample("alert_clear.json")).await.0, 200);
        let mut seen = Vec::new();
        while let Some(call) = peer.next_within(Duration::from_millis(500)).await {
            let body = call.json();
            seen.push(match (method(&call), body.get("thread_ts")) {
                ("chat.update", _) if body["ts"] == ts.as_str() => "update",
                ("chat.postMessage", Some(thread)) if thread == ts.as_str() => {
                    if body["reply_broadcast"] == true {
                        "broadcast"
                    } else {
                        "reply"
                    }
                }
                ("chat.postMessage", None) => "new",
                other => panic!("unexpected call {other:?}: {body}"),
            });
        }
        assert_eq!(seen, expected, "{on_clear}");
        relay.stop().await;
    }
}

#[tokio::test]
async fn a_clear_waits_for_its_trigger_and_then_replies_to_it() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    // Slack is down for the trigger's first three attempts.
    peer.reply([
        Reply::Status(503, "down"),
        Reply::Status(503, "down"),
        Reply::Status(503, "down"),
    ]);
    let relay = TestRelay::start(&slack_config(&peer, "")).await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    assert_eq!(relay.post(&sample("alert_clear.json")).await.0, 200);
    let mut calls = Vec::new();
    for _ in 0..6 {
        calls.push(peer.next().await);
    }
    let trigger = &calls[3];
    assert!(
        calls[..4].iter().all(|c| method(c) == "chat.postMessage"
            && c.json().get("thread_ts").is_none()
            && c.json()["channel"] == "#alerts"),
        "the trigger's attempts come first, the clear's none among them"
    );
    let ts = trigger.ts.clone().unwrap();
    assert_eq!(method(&calls[4]), "chat.update");
    assert_eq!(calls[4].json()["ts"].as_str(), Some(ts.as_str()));
    assert_eq!(calls[5].json()["thread_ts"].as_str(), Some(ts.as_str()));
    relay.stop().await;
}

#[tokio::test]
async fn a_clear_without_a_known_trigger_is_a_message_of_its_own() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let relay = TestRelay::start(&slack_config(&peer, "")).await;
    assert_eq!(relay.post(&sample("alert_clear.json")).await.0, 200);
    let call = peer.next().await;
    let body = call.json();
    assert_eq!(method(&call), "chat.postMessage");
    assert_eq!(body["channel"], "#alerts");
    assert!(body.get("thread_ts").is_none());
    let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.starts_with("✅ Cleared: "), "the full card: {body}");
    assert!(peer.next_within(Duration::from_millis(300)).await.is_none());
    relay.stop().await;
}

/// `kill -9` while Slack has taken 8 triggers but the relay has not had their answers: each
/// message carries its event in its metadata, and the restarted relay, unsure of those attempts,
/// finds them in the channel's history instead of posting them again. After the clears, every
/// message in the channel shows its alert cleared: none is left red.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_posts_leaves_no_message_triggered() {
    const ALERTS: usize = 20;
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let config = format!(
        "[delivery]\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\n\
         [destinations.ops]\nkind = \"slack\"\ntoken = \"{TOKEN}\"\nchannel = \"C0TEST\"\n\
         api_url = \"{}\"\nrate_limit = \"unlimited\"\n",
        peer.url("/api")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    let alert = |name: &str, event: &str, i: usize| {
        sample(name)
            .replace(event, &format!("{event}-{i}"))
            .replace("\"alertId\": 35541", &format!("\"alertId\": {}", 9000 + i))
    };
    peer.hold();
    for i in 0..ALERTS {
        assert_eq!(
            relay
                .post(alert("alert_trigger.json", "49-35541", i))
                .await
                .0,
            200
        );
    }
    // Slack has these (they are in the channel); their answers are held.
    for _ in 0..8 {
        assert_eq!(method(&peer.next().await), "chat.postMessage");
    }
    relay.kill_9();
    peer.release();

    let relay = ChildRelay::start(dir.path()).await;
    common::eventually("every trigger in the channel", async || {
        match peer.slack_messages().len() {
            ALERTS => Ok(()),
            n if n > ALERTS => panic!(
                "{n} messages for {ALERTS} alerts: {:?}\n{}",
                peer.slack_messages()
                    .iter()
                    .map(|m| (
                        m["ts"].to_string(),
                        m["metadata"]["event_payload"]["event"].to_string()
                    ))
                    .collect::<Vec<_>>(),
                relay_logs(dir.path())
            ),
            n => Err(format!("{n} messages")),
        }
    })
    .await;
    for i in 0..ALERTS {
        assert_eq!(
            relay.post(alert("alert_clear.json", "49-35546", i)).await.0,
            200
        );
    }
    common::eventually("every message cleared", async || {
        let messages = peer.slack_messages();
        let red: Vec<&str> = messages
            .iter()
            .filter_map(|m| m["text"].as_str())
            .filter(|text| !text.starts_with("✅"))
            .collect();
        match (messages.len(), red.len()) {
            (ALERTS, 0) => Ok(()),
            (n, _) => Err(format!("{n} messages, {} not cleared: {red:?}", red.len())),
        }
    })
    .await;
    drop(relay);
}

#[tokio::test]
async fn the_thread_survives_a_kill_between_trigger_and_clear() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let dir = common::config_dir(&slack_config(&peer, ""), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let ts = peer.next().await.ts.unwrap();
    // Killed once the trigger's delivery is recorded: nothing of it lives but in the store.
    common::eventually("the trigger is recorded as delivered", async || {
        let (_, out) = command(dir.path(), &["deliveries", "--state", "done"]);
        if out.contains("49-35541") {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
    relay.kill_9();

    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_clear.json")).await.0, 200);
    let (update, reply) = (peer.next().await, peer.next().await);
    assert_eq!(
        (method(&update), update.json()["ts"].as_str()),
        ("chat.update", Some(ts.as_str()))
    );
    assert_eq!(reply.json()["thread_ts"].as_str(), Some(ts.as_str()));

    // The token is nowhere: not in the logs, the store or the metrics.
    let metrics = relay.metrics(None).await;
    relay.kill_9();
    let mut seen = relay_logs(dir.path()) + &metrics;
    for file in std::fs::read_dir(dir.path().join("data")).unwrap() {
        seen.push_str(&String::from_utf8_lossy(
            &std::fs::read(file.unwrap().path()).unwrap(),
        ));
    }
    assert!(seen.contains("chat.update"), "the logs were read");
    assert!(!seen.contains("SeCrEtToKeN"), "the token leaked");
}

#[tokio::test]
async fn slack_errors_are_retried_given_up_with_a_hint_or_answered_with_the_fallback() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    peer.reply([
        // The trigger: Slack refuses its blocks, then takes the fallback message.
        Reply::SlackError("invalid_blocks"),
        Reply::SlackOk,
        // A test event: a transient error, then the app is not in the channel.
        Reply::SlackError("service_unavailable"),
        Reply::SlackError("not_in_channel"),
    ]);
    let dir = common::config_dir(&slack_config(&peer, ""), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let refused = peer.next().await;
    assert!(refused.json()["blocks"].is_array());
    let fallback = peer.next().await.json();
    assert!(fallback.get("blocks").is_none(), "{fallback}");
    assert!(
        fallback["text"]
            .as_str()
            .unwrap()
            .starts_with("[TRIGGERED] ")
    );

    assert_eq!(relay.post(sample("webhook_test.json")).await.0, 200);
    peer.next().await;
    peer.next().await;
    common::eventually("the test event is dead", async || {
        let (_, out) = command(dir.path(), &["deliveries", "--state", "dead"]);
        if out.contains("not_in_channel") {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
    assert!(
        peer.next_within(Duration::from_millis(300)).await.is_none(),
        "not retried"
    );
    relay.kill_9();
    let logs = relay_logs(dir.path());
    assert!(
        logs.contains("chat.postMessage: not_in_channel (the app is not in the channel: type /invite @<app name> in it"),
        "{logs}"
    );
    assert!(!logs.contains("SeCrEtToKeN"));
}

// Several threads: the command blocks one while the fake Slack answers it on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_asks_slack_who_the_token_is() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let dir = common::config_dir(&slack_config(&peer, ""), &[]);
    let (ok, out) = command(dir.path(), &["check", "--online"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "ops: Slack token is bot alertbot (U0BOT) in team Acme (T0ACME), posting to #alerts"
        ),
        "{out}"
    );
    assert_eq!(method(&peer.next().await), "auth.test");

    let (ok, out) = command(dir.path(), &["check"]);
    assert!(
        ok && !out.contains("alertbot"),
        "plain check stays offline: {out}"
    );
    assert!(peer.next_within(Duration::from_millis(200)).await.is_none());

    peer.answer_by_default(Reply::SlackError("invalid_auth"));
    let (ok, out) = command(dir.path(), &["check", "--online"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("ops: auth.test: invalid_auth (the token is not valid"),
        "{out}"
    );
    assert!(!out.contains("SeCrEtToKeN"), "{out}");
}

#[tokio::test]
async fn a_clears_email_answers_its_triggers() {
    let smtp = SmtpServer::start();
    let config = |thread: &str| {
        format!(
            r#"
[destinations.mail]
kind = "email"
smtp_url = "{}"
from = "Alerts <alerts@example.com>"
to = ["oncall@example.com"]
{thread}
"#,
            smtp.url()
        )
    };
    let relay = TestRelay::start(&config("")).await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    let trigger = smtp.next().await;
    assert_eq!(
        email_header(&trigger, "Message-ID").as_deref(),
        Some("<35541.mail@example.com>")
    );
    assert_eq!(relay.post(&sample("alert_clear.json")).await.0, 200);
    let clear = smtp.next().await;
    assert_eq!(
        email_header(&clear, "In-Reply-To").as_deref(),
        Some("<35541.mail@example.com>")
    );
    assert_eq!(
        email_header(&clear, "References").as_deref(),
        Some("<35541.mail@example.com>")
    );
    let subject = |raw: &[u8]| {
        MessageParser::default()
            .parse(raw)
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap()
    };
    assert_eq!(subject(&clear), format!("Re: {}", subject(&trigger)));
    // Every email has a Message-ID of its own (RFC 5322 3.6.4), clears and tests included.
    assert_eq!(
        email_header(&clear, "Message-ID").as_deref(),
        Some("<event-49-35546.mail@example.com>")
    );
    assert_eq!(relay.post(&sample("webhook_test.json")).await.0, 200);
    let id = email_header(&smtp.next().await, "Message-ID");
    assert_eq!(
        id.as_deref(),
        Some("<event-1415733887743.mail@example.com>")
    );
    relay.stop().await;

    let relay = TestRelay::start(&config("thread = false")).await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    let trigger = smtp.next().await;
    assert_eq!(
        email_header(&trigger, "Message-ID").as_deref(),
        Some("<event-49-35541.mail@example.com>")
    );
    assert_eq!(relay.post(&sample("alert_clear.json")).await.0, 200);
    let clear = smtp.next().await;
    assert_eq!(email_header(&clear, "In-Reply-To"), None);
    assert_eq!(
        email_header(&clear, "Message-ID").as_deref(),
        Some("<event-49-35546.mail@example.com>")
    );
    relay.stop().await;
}

#[tokio::test]
async fn teams_and_webhooks_carry_the_correlation() {
    let (teams, hook) = (Peer::start().await, Peer::start().await);
    let relay = TestRelay::start(&format!(
        "[destinations.teams]\nkind = \"teams\"\nurl = \"{}\"\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        teams.url("/t"),
        hook.url("/h")
    ))
    .await;
    for (sample_name, state) in [
        ("alert_trigger.json", "triggered"),
        ("alert_clear.json", "cleared"),
    ] {
        assert_eq!(relay.post(&sample(sample_name)).await.0, 200);
        for peer in [&teams, &hook] {
            let body: Value = peer.next().await.json();
            assert_eq!(
                body["correlation"],
                serde_json::json!({"key": "35541", "state": state})
            );
        }
    }
    assert_eq!(relay.post(&sample("webhook_test.json")).await.0, 200);
    assert!(teams.next().await.json().get("correlation").is_none());
    assert_eq!(hook.next().await.json()["correlation"], Value::Null);
    relay.stop().await;
}
