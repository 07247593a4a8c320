//! Durability seen from outside: the real binary killed with SIGKILL or stopped with SIGTERM,
//! dedup across restarts, dead deliveries and `retry`, pacing, and stores that cannot be used.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    BIN, ChildRelay, Peer, Reply, TestRelay, command, delivered_ids, eventually, relay_logs, sample,
};
use serde_json::{Value, json};

fn slack_id(body: &Value) -> String {
    body["text"].as_str().unwrap().to_owned()
}

fn hook_id(body: &Value) -> String {
    body["event"]["id"].as_str().unwrap().to_owned()
}

/// Posts `count` trigger events with ids `<prefix>-<i>`, 32 at a time; each must be accepted.
async fn post_events(relay: ChildRelay, prefix: &str, count: usize) -> ChildRelay {
    let relay = std::sync::Arc::new(relay);
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..count {
        let relay = relay.clone();
        let body = json!({"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": format!("{prefix}-{i}"),
            "alert": {"ruleName": "Crash test", "alertId": i}});
        posts.spawn(async move { relay.post(body.to_string()).await });
        if posts.len() >= 32 {
            let (status, answer) = posts.join_next().await.unwrap().unwrap();
            assert_eq!(
                (status, answer["status"].as_str()),
                (200, Some("accepted")),
                "{answer}"
            );
        }
    }
    while let Some(result) = posts.join_next().await {
        let (status, answer) = result.unwrap();
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("accepted")),
            "{answer}"
        );
    }
    std::sync::Arc::into_inner(relay).expect("no other owner")
}

/// Slack (unlimited pace, a template showing the event id) and a webhook, on `slack` and `hook`,
/// with `timeout` for one attempt.
fn crash_config(slack: &Peer, hook: &Peer, timeout: &str) -> tempfile::TempDir {
    let config = format!(
        "[delivery]\ntimeout = \"{timeout}\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\ntemplates = \"by_id\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        slack.url("/s"),
        hook.url("/h")
    );
    common::config_dir(
        &config,
        &[("by_id/slack/default.hbs", "{\"text\": \"{{event.id}}\"}")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_delivers_every_accepted_event_exactly_once_after_restart() {
    const EVENTS: usize = 300;
    let slack = Peer::start().await;
    let hook = Peer::start().await;
    slack.answer_by_default(Reply::Status(503, "unavailable"));
    hook.answer_by_default(Reply::Status(503, "unavailable"));
    let dir = crash_config(&slack, &hook, "2s");
    let relay = post_events(ChildRelay::start(dir.path()).await, "crash", EVENTS).await;
    // Both peers have refused at least one attempt: the relay is mid-retry when it dies.
    assert_eq!(slack.next().await.status, 503);
    assert_eq!(hook.next().await.status, 503);
    relay.kill_9();

    // New peers for the second run: a request of the first run still being answered when the
    // process died cannot be mistaken for a delivery of the second.
    let slack = Peer::start().await;
    let hook = Peer::start().await;
    let _relay = ChildRelay::start_with_env(
        dir.path(),
        &[
            ("ALERT_RELAY_DESTINATIONS__SLACK__URL", slack.url("/s")),
            ("ALERT_RELAY_DESTINATIONS__HOOK__URL", hook.url("/h")),
        ],
    )
    .await;
    let slack_counts = delivered_ids(&slack, dir.path(), EVENTS, slack_id, HashMap::new()).await;
    let hook_counts = delivered_ids(&hook, dir.path(), EVENTS, hook_id, HashMap::new()).await;
    for (destination, counts) in [("slack", slack_counts), ("hook", hook_counts)] {
        assert_eq!(counts.len(), EVENTS, "{destination}");
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            repeated.is_empty(),
            "{destination}: delivered more than once: {repeated:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_while_delivering_repeats_at_most_concurrency_attempts() {
    /// `delivery.concurrency`, the default.
    const CONCURRENCY: usize = 8;
    let slack = Peer::start().await;
    let hook = Peer::start().await;
    slack.answer_by_default(Reply::Delay(Duration::from_millis(5), 200));
    hook.answer_by_default(Reply::Delay(Duration::from_millis(5), 200));
    // A timeout far above the answers' delay, even on a loaded machine: an attempt that timed
    // out is repeated by design, and would be counted here as a crash's repeat.
    let dir = crash_config(&slack, &hook, "60s");
    let relay = ChildRelay::start(dir.path()).await;
    // Posts keep coming while the relay delivers and when it dies, so that its store is busy
    // and outcomes wait for their commit.
    let url = format!("http://{}/", relay.addr);
    let mut posting = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let url = url.clone();
        posting.spawn(async move {
            let client = common::client();
            let mut accepted = Vec::new();
            for i in 0.. {
                let id = format!("flow-{lane}-{i}");
                let body = json!({"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": id,
                    "alert": {"ruleName": "Crash test"}});
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => accepted.push(id),
                    _ => return accepted,
                }
            }
            accepted
        });
    }
    // The same peers before and after the kill: an attempt answered 200 just before the kill
    // and then made again counts twice.
    let mut slack_counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        *slack_counts
            .entry(slack_id(&slack.next().await.json()))
            .or_default() += 1;
    }
    relay.kill_9();
    let accepted: Vec<String> = posting.join_all().await.into_iter().flatten().collect();
    let _relay = ChildRelay::start(dir.path()).await;
    let slack_counts =
        delivered_ids(&slack, dir.path(), accepted.len(), slack_id, slack_counts).await;
    let hook_counts =
        delivered_ids(&hook, dir.path(), accepted.len(), hook_id, HashMap::new()).await;
    for (destination, counts) in [("slack", slack_counts), ("hook", hook_counts)] {
        let missing: Vec<_> = accepted
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{destination}: never delivered: {missing:?}"
        );
        let repeats: usize = counts.values().map(|n| n - 1).sum();
        assert!(
            repeats <= CONCURRENCY,
            "{destination}: {repeats} repeated deliveries after one kill; at most the {CONCURRENCY} attempts in flight may repeat"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_attempt_in_flight_finish_and_exits_0() {
    let slack = Peer::start().await;
    slack.reply([Reply::Delay(Duration::from_millis(1500), 200)]);
    let config = format!(
        "[delivery]\nshutdown_grace = \"10s\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/s")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    let first = slack.next().await;
    relay.signal("TERM");
    let code = relay.exit_code().await;
    assert_eq!(code, Some(0));
    assert!(
        first.at.elapsed() >= Duration::from_millis(1400),
        "exited before the answer came"
    );
    // The answered delivery is done: after a restart it is not sent again, and the event is
    // still known.
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(
        relay.post(sample("alert_trigger.json")).await.1["status"],
        "duplicate"
    );
    relay.post(sample("alert_clear.json")).await;
    assert!(
        slack.next().await.json()["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ Cleared")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hung_peer_keeps_the_delivery_for_the_next_start() {
    let slack = Peer::start().await;
    slack.answer_by_default(Reply::Hang);
    let config = format!(
        "[delivery]\ntimeout = \"30s\"\nshutdown_grace = \"500ms\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/s")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    relay.post(sample("alert_trigger.json")).await;
    slack.next().await;
    relay.signal("TERM");
    assert_eq!(
        relay.exit_code().await,
        Some(0),
        "the grace ran out, and that is not a failure"
    );
    slack.answer_by_default(Reply::Status(200, "ok"));
    let _relay = ChildRelay::start(dir.path()).await;
    let again = slack.next().await;
    assert_eq!(again.status, 200);
    assert!(
        again.json()["text"]
            .as_str()
            .unwrap()
            .contains("Default Page Load")
    );
}

#[tokio::test]
async fn duplicates_are_recognised_after_a_restart() {
    let slack = Peer::start().await;
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/s")
    );
    let relay = TestRelay::start(&config).await;
    assert_eq!(
        relay.post(&sample("alert_trigger.json")).await.1["status"],
        "accepted"
    );
    slack.next().await;
    let relay = TestRelay::start_in(relay.stop_keeping_dir().await).await;
    assert_eq!(
        relay.post(&sample("alert_trigger.json")).await.1["status"],
        "duplicate"
    );
    relay.post(&sample("alert_clear.json")).await;
    assert!(
        slack.next().await.json()["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ Cleared"),
        "the next request is the clear, not the trigger again"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_delivery_is_listed_and_delivered_after_retry() {
    let slack = Peer::start().await;
    slack.answer_by_default(Reply::Status(404, "no_team"));
    // `retry` changes the store from another process: the relay looks every storage.poll.
    let config = format!(
        "[storage]\npoll = \"100ms\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/services/T/B/SECRET")
    );
    let relay = TestRelay::start(&config).await;
    relay.post(&sample("alert_trigger.json")).await;
    assert_eq!(slack.next().await.status, 404);
    let listed = eventually("never listed as dead", async || {
        let (ok, out) = command(relay.dir.path(), &["deliveries", "--state", "dead"]);
        assert!(ok, "{out}");
        if out.contains("49-35541") {
            Ok(out)
        } else {
            Err(out)
        }
    })
    .await;
    assert!(
        listed.contains("HTTP 404: no_team") && listed.contains("dead"),
        "{listed}"
    );
    assert!(!listed.contains("SECRET"), "{listed}");
    slack.answer_by_default(Reply::Status(200, "ok"));
    let (ok, out) = command(relay.dir.path(), &["retry", "--dead"]);
    assert!(ok && out.contains("1 delivery is due again"), "{out}");
    let again = slack.next().await;
    assert_eq!(again.status, 200);
    eventually("never recorded as done", async || {
        let (_, out) = command(relay.dir.path(), &["deliveries", "--state", "done"]);
        if out.contains("49-35541") {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
    let (ok, out) = command(relay.dir.path(), &["retry", "999"]);
    assert!(!ok && out.contains("no delivery 999"), "{out}");
    relay.stop().await;
}

#[tokio::test]
async fn slack_is_paced_while_a_webhook_gets_everything_at_once() {
    let slack = Peer::start().await;
    let hook = Peer::start().await;
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"4/s\"\nburst = 1\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        slack.url("/s"),
        hook.url("/h")
    );
    let relay = TestRelay::start(&config).await;
    // Posted together, so that the webhook's arrival times measure the relay, not the posting.
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..10 {
        let body = json!({"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": format!("pace-{i}"), "alert": {"ruleName": "Pacing"}});
        let request = common::client()
            .post(relay.url("/"))
            .header("content-type", "application/json")
            .body(body.to_string());
        posts.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    }
    let statuses: Vec<_> = posts
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("an answer"))
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mut hook_times = Vec::new();
    for _ in 0..10 {
        hook_times.push(hook.next().await.at);
    }
    let mut slack_times = Vec::new();
    for _ in 0..10 {
        slack_times.push(slack.next().await.at);
    }
    let hook_span = *hook_times.last().unwrap() - hook_times[0];
    let slack_span = *slack_times.last().unwrap() - slack_times[0];
    assert!(
        hook_span < Duration::from_millis(1500),
        "the webhook waited: {hook_span:?}"
    );
    assert!(
        slack_span >= Duration::from_millis(2000),
        "10 messages at 4/s came within {slack_span:?}"
    );
    for pair in slack_times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(220),
            "two Slack messages {:?} apart",
            pair[1] - pair[0]
        );
    }
    relay.stop().await;
}

/// Starts the relay on the config in `dir`, expecting it to refuse: exit 1, no panic; returns what
/// it said on standard error.
fn refused_start(dir: &Path) -> String {
    let output = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("ALERT_RELAY_SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_store_that_cannot_be_used_stops_the_start_with_a_clear_message() {
    let dir = common::config_dir(
        "[storage]\npath = \"junk.db\"\n[destinations.console]\nkind = \"console\"\n",
        &[("junk.db", &"x".repeat(8192))],
    );
    let stderr = refused_start(dir.path());
    assert!(
        stderr.contains("junk.db is not an alert-relay store"),
        "{stderr}"
    );

    let fresh = common::config_dir("[destinations.console]\nkind = \"console\"\n", &[]);
    let (ok, out) = command(fresh.path(), &["deliveries"]);
    assert!(
        !ok && out.contains("has not run with this config yet"),
        "{out}"
    );
}

#[tokio::test]
async fn a_second_relay_on_the_same_store_refuses_to_start_and_names_the_first() {
    let dir = common::config_dir("[destinations.console]\nkind = \"console\"\n", &[]);
    let first = ChildRelay::start(dir.path()).await;
    let stderr = refused_start(dir.path());
    assert!(
        stderr.contains("in use by another alert-relay")
            && stderr.contains(&format!(
                "pid {}, listening on {}",
                first.process.id(),
                first.addr
            )),
        "{stderr}"
    );
    // The commands still work beside the running server.
    let (ok, out) = command(dir.path(), &["deliveries"]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_ahead_log_deleted_after_a_crash_is_reported_at_start() {
    const MISSING: &str = "write-ahead log is missing";
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Hang);
    let config = format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/h")
    );
    let dir = common::config_dir(&config, &[]);
    let wal = dir.path().join("data/alert-relay.db-wal");

    // A clean stop removes the log: nothing to report at the next start.
    let relay = ChildRelay::start(dir.path()).await;
    relay.signal("TERM");
    assert_eq!(relay.exit_code().await, Some(0));
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(left, 0, "a clean stop merges the log into the store");
    // A crash, then a command that merges the log on its own: nothing lost, nothing to report.
    let relay = ChildRelay::start(dir.path()).await;
    relay.post(sample("alert_trigger.json")).await;
    relay.kill_9();
    let (ok, out) = command(dir.path(), &["deliveries"]);
    assert!(ok && out.contains("49-35541"), "{out}");
    let relay = ChildRelay::start(dir.path()).await;
    assert!(
        !relay_logs(dir.path()).contains(MISSING),
        "{}",
        relay_logs(dir.path())
    );

    // A crash, then the log deleted: acknowledged events are gone, and the start says so.
    relay.post(sample("alert_clear.json")).await;
    relay.kill_9();
    std::fs::remove_file(&wal).expect("the log is there after a crash");
    let _relay = ChildRelay::start(dir.path()).await;
    let logs = relay_logs(dir.path());
    assert!(logs.contains(MISSING), "{logs}");
}
