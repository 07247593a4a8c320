//! Groups, from outside: a storm of ThousandEyes triggers over HTTP, a route with `group_by`, and
//! the loopback Slack Web API fake's channel and thread replies: one parent message per group,
//! updated in place, every alert named in it or in its thread, and each parent cleared in the
//! end; also across a `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common;
use common::{ChildRelay, Peer, Recorded, Reply};

const TESTS: usize = 4;

/// A Slack Web API destination on `peer` (a channel id, so that a restart can look for what an
/// attempt posted) and a route grouping every event by test.
fn config(peer: &Peer) -> String {
    format!(
        r#"
[storage]
poll = "100ms"
[delivery]
backoff_min = "50ms"
backoff_max = "200ms"

[destinations.ops]
kind = "slack"
token = "xoxb-1111-2222-SeCrEtToKeN"
channel = "C0TEST"
api_url = "{}"
rate_limit = "unlimited"

[[routes]]
to = ["ops"]
group_by = ["test"]
group_wait = "1s"
group_interval = "1s"
"#,
        peer.url("/api")
    )
}

/// The ThousandEyes `TRIGGER` or `CLEAR` of alert `i`, of test `t{i % TESTS}`, whose rule is
/// named `Latency-{i}` so that each alert's title is its own.
fn alert(kind: &str, i: usize) -> String {
    format!(
        r#"{{"eventType": "ALERT_NOTIFICATION_{kind}", "eventId": "{kind}-{i}", "alert": {{"ruleName": "Latency-{i}", "testName": "t{}", "alertId": "{i}"}}}}"#,
        i % TESTS
    )
}

/// Posts the `kind` of every alert in `alerts`, 20 at a time; each is accepted.
async fn post_all(addr: SocketAddr, kind: &str, alerts: std::ops::Range<usize>) {
    post_across(&[addr], kind, alerts).await;
}

/// [`post_all`] to each of `relays` in turn.
async fn post_across(relays: &[SocketAddr], kind: &str, alerts: std::ops::Range<usize>) {
    let http = common::client();
    let mut posts = tokio::task::JoinSet::new();
    for i in alerts {
        let (http, body, addr) = (http.clone(), alert(kind, i), relays[i % relays.len()]);
        posts.spawn(async move {
            let response = http
                .post(format!("http://{addr}/"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("the relay answers");
            assert_eq!(response.status(), 200, "alert {i} accepted");
        });
        if posts.len() == 20 {
            posts.join_next().await.expect("a post").expect("post");
        }
    }
    while let Some(done) = posts.join_next().await {
        done.expect("post");
    }
}

/// What Slack was asked, as it arrives.
struct Calls {
    all: Vec<Recorded>,
}

impl Calls {
    /// Takes what the peer has received until `done` holds of the channel and the calls.
    async fn until(
        &mut self,
        peer: &Peer,
        what: &str,
        done: impl Fn(&[Value], &[Recorded]) -> Result<(), String>,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            while let Some(call) = peer.next_within(Duration::from_millis(20)).await {
                assert_eq!(call.status, 200);
                self.all.push(call);
            }
            match done(&peer.slack_messages(), &self.all) {
                Ok(()) => return,
                Err(last) if std::time::Instant::now() >= deadline => panic!("{what}: {last}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Parent messages posted (not replies), by the `ts` Slack gave each.
    fn parents(&self) -> Vec<&Recorded> {
        (self.all.iter())
            .filter(|c| c.path.ends_with("/chat.postMessage"))
            .filter(|c| c.json().get("thread_ts").is_none())
            .collect()
    }
}

/// Every text of a message.
fn text(message: &Value) -> String {
    common::strings(message).join("\n")
}

/// The header of a message in the channel.
fn header(message: &Value) -> &str {
    message["blocks"][0]["text"]["text"].as_str().unwrap_or("")
}

/// Whether every alert in `alerts` is named (`Latency-i`, whole) in its group's parent message in
/// `channel` or in that message's thread among `calls`; the first missing otherwise.
fn every_alert_named(
    channel: &[Value],
    calls: &[Recorded],
    alerts: std::ops::Range<usize>,
) -> Result<(), String> {
    // The text of each group (by test) as the channel and its threads show it.
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    for message in channel {
        let Some(test) = header(message).rsplit("test=").next() else {
            continue;
        };
        let ts = message["ts"].as_str().unwrap_or("");
        let mut all = text(message);
        let posted = calls
            .iter()
            .filter(|c| c.path.ends_with("/chat.postMessage"));
        for reply in posted.map(Recorded::json) {
            if reply["thread_ts"] == ts {
                all.push('\n');
                all.push_str(&text(&reply));
            }
        }
        shown.insert(test.to_owned(), all);
    }
    for i in alerts {
        let test = format!("t{}", i % TESTS);
        let named = shown.get(&test).is_some_and(|all| {
            all.split(|c: char| !c.is_alphanumeric() && c != '-')
                .any(|word| word == format!("Latency-{i}"))
        });
        if !named {
            return Err(format!(
                "alert {i} of {test} is named nowhere; groups: {:?}",
                shown.keys()
            ));
        }
    }
    Ok(())
}

/// The channel holds one message per test, each a group's.
fn one_parent_per_test(channel: &[Value]) -> Result<(), String> {
    let tests: BTreeSet<&str> = channel
        .iter()
        .filter_map(|m| header(m).rsplit_once("test=").map(|(_, t)| t))
        .collect();
    match (channel.len(), tests.len()) {
        (TESTS, TESTS) => Ok(()),
        _ => Err(format!(
            "{} messages: {:?}",
            channel.len(),
            channel.iter().map(header).collect::<Vec<_>>()
        )),
    }
}

/// Every parent turned "cleared".
fn all_cleared(channel: &[Value]) -> Result<(), String> {
    one_parent_per_test(channel)?;
    match channel
        .iter()
        .all(|m| header(m).starts_with("✅ Cleared: test=t"))
    {
        true => Ok(()),
        false => Err(format!(
            "{:?}",
            channel.iter().map(header).collect::<Vec<_>>()
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_triggers_is_one_message_per_group_and_its_thread() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let dir = common::config_dir(&config(&peer), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    let started = std::time::Instant::now();
    post_all(relay.addr, "TRIGGER", 0..200).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "posted within 5 s"
    );

    let mut calls = Calls { all: Vec::new() };
    calls
        .until(&peer, "every alert named", |channel, calls| {
            one_parent_per_test(channel)?;
            every_alert_named(channel, calls, 0..200)
        })
        .await;
    assert_eq!(calls.parents().len(), TESTS, "one message posted per group");
    for parent in calls.parents() {
        let body = parent.json();
        assert!(header(&body).starts_with("🔴 "), "{}", header(&body));
        assert_eq!(body["metadata"]["event_payload"]["source"], "group");
    }

    post_all(relay.addr, "CLEAR", 0..200).await;
    calls
        .until(&peer, "every group cleared", |channel, _| {
            all_cleared(channel)
        })
        .await;
    assert_eq!(
        calls.parents().len(),
        TESTS,
        "no message of its own for any event"
    );
    // Every parent was updated rather than posted again, and its thread tells the clears.
    let updates = calls
        .all
        .iter()
        .filter(|c| c.path.ends_with("/chat.update"))
        .count();
    assert!(updates >= TESTS, "{updates} updates");
    let calls_made = calls.all.len();
    assert!(
        calls_made < 40,
        "a storm costs two calls per group and notification, not one per alert: {calls_made}"
    );
    let metrics = relay.metrics(None).await;
    assert!(metrics.contains("alert_relay_groups_open 0"), "{metrics}");
    let sent = metrics
        .lines()
        .find_map(|l| l.strip_prefix("alert_relay_group_notifications_total "))
        .and_then(|n| n.parse::<usize>().ok());
    assert!(sent >= Some(2 * TESTS), "{metrics}");
}

/// The relay is killed while Slack holds the answer to a parent message it posted; started
/// again, it finds that message (no parent twice), and nothing is lost of what it had accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_storm_loses_nothing_and_posts_no_parent_twice() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let dir = common::config_dir(&config(&peer), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    post_all(relay.addr, "TRIGGER", 0..100).await;
    peer.hold();
    // The first group's parent reaches Slack, whose answer waits.
    let mut calls = Calls { all: Vec::new() };
    calls
        .until(&peer, "a parent posted", |_, calls| {
            match calls.is_empty() {
                true => Err("nothing yet".into()),
                false => Ok(()),
            }
        })
        .await;
    relay.kill_9();
    peer.release();

    let relay = ChildRelay::start(dir.path()).await;
    post_all(relay.addr, "TRIGGER", 100..200).await;
    calls
        .until(&peer, "every alert named", |channel, calls| {
            one_parent_per_test(channel)?;
            every_alert_named(channel, calls, 0..200)
        })
        .await;
    post_all(relay.addr, "CLEAR", 0..200).await;
    calls
        .until(&peer, "every group cleared", |channel, _| {
            all_cleared(channel)
        })
        .await;
    assert_eq!(calls.parents().len(), TESTS, "no parent posted twice");
    assert!(common::relay_logs(dir.path()).contains("found the message an earlier attempt posted"));
}

/// Two relays on one PostgreSQL store take the storm between them: the groups, their flushes and
/// their messages are shared, each group posted once and cleared in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn replicas_on_one_postgres_store_share_their_groups() {
    let url = alert_relay::testing::fresh_postgres_database()
        .await
        .expect("a PostgreSQL server (RELAY_TEST_POSTGRES)");
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let dir = common::config_dir(&config(&peer), &[]);
    let env = [("ALERT_RELAY_STORAGE__URL", url.expose().to_owned())];
    let relays = [
        ChildRelay::start_with_env(dir.path(), &env).await,
        ChildRelay::start_with_env(dir.path(), &env).await,
    ];
    let addrs = [relays[0].addr, relays[1].addr];
    post_across(&addrs, "TRIGGER", 0..200).await;
    let mut calls = Calls { all: Vec::new() };
    calls
        .until(&peer, "every alert named", |channel, calls| {
            one_parent_per_test(channel)?;
            every_alert_named(channel, calls, 0..200)
        })
        .await;
    post_across(&addrs, "CLEAR", 0..200).await;
    calls
        .until(&peer, "every group cleared", |channel, _| {
            all_cleared(channel)
        })
        .await;
    assert_eq!(calls.parents().len(), TESTS, "each group posted once");
    for relay in relays {
        relay.kill_9();
    }
}

/// Email gets one digest per group notification, each later one threaded under the group's
/// first; a webhook one body per notification, the group as it stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_digests_thread_under_the_groups_first_and_a_webhook_gets_the_group() {
    let smtp = common::SmtpServer::start();
    let peer = Peer::start().await;
    let config = format!(
        r#"
[storage]
poll = "100ms"
[destinations.mail]
kind = "email"
smtp_url = "{}"
from = "alerts@example.com"
to = ["oncall@example.com"]
[destinations.hook]
kind = "webhook"
url = "{}"
[[routes]]
to = ["mail", "hook"]
group_by = ["test"]
group_wait = "1s"
group_interval = "1s"
"#,
        smtp.url(),
        peer.url("/hook")
    );
    let relay = common::TestRelay::start(&config).await;
    // Alerts 0 and 4 are both of test t0.
    for i in [0, 4] {
        assert_eq!(relay.post(&alert("TRIGGER", i)).await.0, 200);
    }
    let first = smtp.next().await;
    let text = String::from_utf8_lossy(&first).into_owned();
    assert!(
        text.contains("Latency-0") && text.contains("Latency-4"),
        "{text}"
    );
    let parsed = mail_parser::MessageParser::default().parse(&first).unwrap();
    assert_eq!(parsed.subject(), Some("[FIRING 2] test=t0"));
    let body = peer.next().await.json();
    assert_eq!(
        (
            &body["group"]["key"],
            &body["group"]["count"],
            &body["group"]["notification"]
        ),
        (&json!("test=t0"), &json!(2), &json!(1)),
        "{body}"
    );

    for i in [0, 4] {
        assert_eq!(relay.post(&alert("CLEAR", i)).await.0, 200);
    }
    let last = smtp.next().await;
    assert_eq!(
        common::email_header(&last, "In-Reply-To"),
        common::email_header(&first, "Message-ID")
    );
    let text = String::from_utf8_lossy(&last).into_owned();
    assert!(text.contains("GROUP CLEARED"), "{text}");
    let body = peer.next().await.json();
    assert_eq!(
        (
            &body["group"]["state"],
            &body["group"]["cleared"],
            &body["group"]["notification"]
        ),
        (&json!("cleared"), &json!(2), &json!(2)),
        "{body}"
    );
    relay.stop().await;
}

/// Changes wait for `group_interval` (here an hour: an alert that joins after the first
/// notification is not sent on its own), but a group whose every alert has cleared is sent at
/// once, naming what joined and what cleared since the last notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_has_cleared_is_sent_at_once_whatever_its_interval() {
    let peer = Peer::start().await;
    let config = format!(
        "[storage]\npoll = \"100ms\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[routes]]\nto = [\"hook\"]\ngroup_by = [\"test\"]\ngroup_wait = \"1s\"\n\
         group_interval = \"1h\"\n",
        peer.url("/hook")
    );
    let relay = common::TestRelay::start(&config).await;
    for i in [0, 4] {
        assert_eq!(relay.post(&alert("TRIGGER", i)).await.0, 200);
    }
    let first = peer.next().await.json();
    assert_eq!(first["group"]["count"], 2, "{first}");
    // Joins within the hour: kept for the next notification.
    assert_eq!(relay.post(&alert("TRIGGER", 8)).await.0, 200);
    for i in [0, 4, 8] {
        assert_eq!(relay.post(&alert("CLEAR", i)).await.0, 200);
    }
    let last = peer.next().await.json();
    let group = &last["group"];
    assert_eq!(
        (&group["notification"], &group["state"], &group["count"]),
        (&json!(2), &json!("cleared"), &json!(3)),
        "the next notification is the group cleared: {last}"
    );
    let titles = |list: &Value| -> Vec<String> {
        let mut titles: Vec<String> = (list.as_array().into_iter().flatten())
            .filter_map(|alert| alert["title"].as_str().map(str::to_owned))
            .collect();
        titles.sort();
        titles
    };
    assert_eq!(titles(&group["changes"]["joined"]), ["Latency-8 on t0"]);
    assert_eq!(
        titles(&group["changes"]["cleared"]),
        ["Latency-0 on t0", "Latency-4 on t0", "Latency-8 on t0"]
    );
    let (_, metrics) = relay.get("/metrics").await;
    assert!(metrics.contains("alert_relay_groups_open 0"), "{metrics}");
    relay.stop().await;
}
