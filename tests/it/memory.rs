//! Memory stays bounded by what the relay is given: one event of 100,000 agents, 32 connections
//! posting 900 KB events at once, and a stored event too large to render. Peak resident memory is
//! read from `/proc/<pid>/status` of the real binary (`VmHWM`).

use crate::common;

use std::sync::Arc;

use common::{ChildRelay, Peer, command, eventually};
use serde_json::{Value, json};

/// The sidecar example's memory limit.
const SIDECAR_LIMIT_MIB: f64 = 128.0;
/// 150 MB, the most the 900 KB run may take.
const LARGE_RUN_LIMIT_MIB: f64 = 150e6 / (1024.0 * 1024.0);

/// One agent as ThousandEyes sends it; 3,000 of them make a 900 KB event.
fn agent(i: usize) -> Value {
    json!({
        "dateStart": "2022-04-25 17:18:00",
        "active": 1,
        "metricsAtStart": "Response Code: 503, Availability: 0%, Response Time: 10,000 ms",
        "metricsAtEnd": "",
        "permalink": format!("https://app.thousandeyes.com/alerts/list/?__a=1021286&alertId=118040277&agentId={i}"),
        "agentId": i,
        "agentName": format!("Agent {i}, Somewhere Far Away, XX")
    })
}

fn event(id: &str, agents: Vec<Value>) -> String {
    json!({
        "eventType": "ALERT_NOTIFICATION_TRIGGER",
        "eventId": id,
        "alert": {"ruleName": "Huge", "testName": "Many agents", "type": "HTTP Server", "alertId": 1, "agents": agents}
    })
    .to_string()
}

/// The relay's peak resident memory so far, in MiB.
fn peak_rss_mib(relay: &ChildRelay) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.process.id())).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

/// Slack, Teams and a webhook, unpaced, all on `peer`.
fn config(peer: &Peer) -> String {
    format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n\
         [destinations.teams]\nkind = \"teams\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/s"),
        peer.url("/t"),
        peer.url("/h")
    )
}

/// Waits for `count` requests at `peer`; the event ids the webhook got.
async fn requests(peer: &Peer, count: usize) -> Vec<String> {
    let mut hook_ids = Vec::new();
    for _ in 0..count {
        let request = peer.next().await;
        if request.path == "/h" {
            hook_ids.push(request.json()["event"]["id"].as_str().unwrap().to_owned());
        }
    }
    hook_ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_100_000_agents_is_refused_and_the_relay_goes_on() {
    let peer = Peer::start().await;
    let dir = common::config_dir(&config(&peer), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    let (status, answer) = relay.post(event("huge", vec![json!({}); 100_000])).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("JSON values"),
        "{answer}"
    );
    let (status, _) = relay
        .post(event("after", (0..3).map(agent).collect()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(requests(&peer, 3).await, ["after"]);
    let peak = peak_rss_mib(&relay);
    eprintln!("peak RSS {peak:.1} MiB");
    assert!(peak < SIDECAR_LIMIT_MIB, "peak RSS {peak:.1} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_connections_of_900_kb_events_are_all_accepted_within_the_budget() {
    const CONNECTIONS: usize = 32;
    const EACH: usize = 1;
    let peer = Peer::start().await;
    let dir = common::config_dir(&config(&peer), &[]);
    let relay = Arc::new(ChildRelay::start(dir.path()).await);
    let template = event("large-X", (0..3000).map(agent).collect());
    assert!(template.len() > 900_000, "{} bytes", template.len());
    let mut posts = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (relay, template) = (relay.clone(), template.clone());
        posts.spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..EACH {
                let body = template.replace("large-X", &format!("large-{c}-{n}"));
                statuses.push(relay.post(body).await.0);
            }
            statuses
        });
    }
    let statuses: Vec<u16> = posts.join_all().await.into_iter().flatten().collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let delivered = requests(&peer, CONNECTIONS * EACH * 3).await;
    assert_eq!(delivered.len(), CONNECTIONS * EACH);
    let peak = peak_rss_mib(&relay);
    eprintln!("peak RSS {peak:.1} MiB");
    assert!(peak < LARGE_RUN_LIMIT_MIB, "peak RSS {peak:.1} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_event_too_large_to_render_is_dead_with_its_reason() {
    let peer = Peer::start().await;
    let config = format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/h")
    );
    let dir = common::config_dir(&config, &[]);
    // A store holding an event over today's limits, as an older relay may have accepted.
    let relay = ChildRelay::start(dir.path()).await;
    relay.signal("TERM");
    relay.exit_code().await;
    let store = rusqlite::Connection::open(dir.path().join("data/alert-relay.db")).unwrap();
    let oversized = event("oversized", vec![json!({}); 150_000]);
    store
        .execute(
            "INSERT INTO events (event_id, received_at, body) VALUES ('\"oversized\"', ?1, ?2)",
            rusqlite::params![alert_relay::outbox::now_ms(), oversized.as_bytes()],
        )
        .unwrap();
    store
        .execute(
            "INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at, updated_at)
             VALUES (last_insert_rowid(), 'hook', 'pending', 0, 0, 0)",
            [],
        )
        .unwrap();
    drop(store);
    let relay = ChildRelay::start(dir.path()).await;
    let listed = eventually("never dead", async || {
        let (_, out) = command(dir.path(), &["deliveries", "--state", "dead"]);
        if out.contains("oversized") {
            Ok(out)
        } else {
            Err(out)
        }
    })
    .await;
    assert!(
        listed.contains("cannot be rendered: body holds more than 100000 JSON values"),
        "{listed}"
    );
    // The relay is up and delivers what comes next.
    let (status, _) = relay.post(event("next", vec![agent(1)])).await;
    assert_eq!(status, 200);
    assert_eq!(requests(&peer, 1).await, ["next"]);
}

/// One Alertmanager body of 300 alerts whose group fields are large: each alert's stored body used
/// to copy them, so memory and the store grew with the body times its alerts (an 844 KB body of
/// 100 alerts got the relay killed under 128 MiB). Now each alert keeps its share of the group's
/// small fields: the relay stays under the sidecar's 128 MiB and the store near the body's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_body_of_300_alerts_costs_about_its_size() {
    const ALERTS: usize = 300;
    let peer = Peer::start().await;
    let config = format!(
        "[sources.prometheus]\nkind = \"alertmanager\"\npath = \"/\"\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/h")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    let alerts: Vec<Value> = (0..ALERTS)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": "Big", "instance": format!("host-{i}:9100"), "job": "node", "severity": "page"},
                "annotations": {"summary": "x".repeat(900)},
                "startsAt": "2025-03-17T19:43:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example.com:9090/graph",
                "fingerprint": format!("{i:016x}"),
            })
        })
        .collect();
    let body = json!({
        "version": "4",
        "status": "firing",
        "receiver": "relay",
        "externalURL": "http://alertmanager.example.com:9093",
        "groupLabels": {"alertname": "Big"},
        "commonLabels": {"alertname": "Big", "job": "node"},
        // Strings are at most 64 KiB each: ten of 52 KB.
        "commonAnnotations": (0..10).map(|i| (format!("note{i}"), json!("r".repeat(52_000)))).collect::<serde_json::Map<_, _>>(),
        "alerts": alerts,
    })
    .to_string();
    assert!(
        (850_000..900_000).contains(&body.len()),
        "{} bytes",
        body.len()
    );
    let written_before = written_bytes(&relay);
    let (status, answer) = relay.post(body.clone()).await;
    let written = written_bytes(&relay) - written_before;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["events"].as_array().map(Vec::len), Some(ALERTS));
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..ALERTS {
        let sent = peer.next().await.json();
        assert_eq!(
            sent["payload"]["receiver"], "relay",
            "small group fields are kept"
        );
        assert!(
            sent["payload"].get("commonAnnotations").is_none(),
            "not the large one"
        );
        delivered.push(sent["event"]["id"].as_str().unwrap().to_owned());
    }
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered.len(), ALERTS, "every alert, once");
    let peak = peak_rss_mib(&relay);
    eprintln!(
        "peak RSS {peak:.1} MiB; accepting wrote {written} bytes for a body of {}",
        body.len()
    );
    assert!(peak < SIDECAR_LIMIT_MIB, "peak RSS {peak:.1} MiB");
    // The events, their normalized forms and deliveries, through the write-ahead log.
    assert!(
        written < 4 * body.len() as u64,
        "accepting wrote {written} bytes for a body of {} bytes",
        body.len()
    );
}

/// What the relay's process has written to disk so far (`write_bytes` of `/proc/PID/io`).
fn written_bytes(relay: &ChildRelay) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", relay.process.id())).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/PID/io")
}
