//! Several relays on one PostgreSQL database, as replicas behind a load balancer: dedup across
//! them, every acknowledged event delivered when one is killed, an alert's thread shared. Each
//! test has a fresh database on the test server (`RELAY_TEST_POSTGRES`; `.ci/run` starts
//! one); ignored where there is none.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::common;
use common::{ChildRelay, Peer, Reply, sample};

/// Child relays on one fresh database, sharing `config` (written into `dir`).
async fn replicas(count: usize, config: &str) -> (tempfile::TempDir, Vec<ChildRelay>) {
    let url = alert_relay::testing::fresh_postgres_database()
        .await
        .expect("a PostgreSQL server (RELAY_TEST_POSTGRES)");
    let dir = common::config_dir(config, &[]);
    let env = [("ALERT_RELAY_STORAGE__URL", url.expose().to_owned())];
    let mut relays = Vec::new();
    for _ in 0..count {
        relays.push(ChildRelay::start_with_env(dir.path(), &env).await);
    }
    (dir, relays)
}

fn webhook(peer: &Peer) -> String {
    format!(
        "[delivery]\ntimeout = \"2s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\n\
         [storage]\npoll = \"200ms\"\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n",
        peer.url("/hook")
    )
}

fn event(id: &str) -> String {
    format!(
        r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "{id}", "alert": {{"ruleName": "R", "alertId": "{id}"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn an_event_posted_to_two_replicas_is_delivered_once() {
    let peer = Peer::start().await;
    let (_dir, relays) = replicas(2, &webhook(&peer)).await;
    let (first, _) = relays[0].post(event("twice")).await;
    let (second, answer) = relays[1].post(event("twice")).await;
    assert_eq!((first, second), (200, 200));
    assert_eq!(answer["status"], "duplicate", "{answer}");
    assert_eq!(peer.next().await.json()["event"]["id"], "twice");
    assert!(
        peer.next_within(Duration::from_secs(1)).await.is_none(),
        "delivered once"
    );
    for relay in relays {
        relay.kill_9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn three_replicas_one_killed_deliver_every_acknowledged_event() {
    const EVENTS: usize = 3000;
    let peer = Peer::start().await;
    let (_dir, mut relays) = replicas(3, &webhook(&peer)).await;
    let mut acknowledged = Vec::new();
    for i in 0..EVENTS {
        if i == EVENTS / 2 {
            // Killed in the middle, with deliveries of its own in flight.
            relays.remove(2).kill_9();
        }
        let id = format!("rr-{i}");
        let relay = &relays[i % relays.len()];
        if relay.post(event(&id)).await.0 == 200 {
            acknowledged.push(id);
        }
    }
    assert_eq!(
        acknowledged.len(),
        EVENTS,
        "the live replicas acknowledged every post"
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    // The killed replica's deliveries in flight move once their lease (timeout + 30 s) ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while counts.len() < EVENTS && tokio::time::Instant::now() < deadline {
        if let Some(request) = peer.next_within(Duration::from_secs(5)).await {
            let id = request.json()["event"]["id"].as_str().unwrap().to_owned();
            *counts.entry(id).or_default() += 1;
        }
    }
    while let Some(request) = peer.next_within(Duration::from_millis(500)).await {
        let id = request.json()["event"]["id"].as_str().unwrap().to_owned();
        *counts.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    let repeated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    // Only attempts in flight on the killed replica may repeat: delivery.concurrency = 8.
    assert!(
        repeated.len() <= 8,
        "delivered more than once: {repeated:?}"
    );
    for relay in relays {
        relay.kill_9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn a_clear_on_another_replica_updates_and_threads_under_its_trigger() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let config = format!(
        "[storage]\npoll = \"200ms\"\n\
         [destinations.ops]\nkind = \"slack\"\ntoken = \"xoxb-1\"\nchannel = \"C1\"\napi_url = \"{}\"\nrate_limit = \"unlimited\"\n",
        peer.url("/api/")
    );
    let (_dir, relays) = replicas(2, &config).await;
    assert_eq!(relays[0].post(sample("alert_trigger.json")).await.0, 200);
    let ts = peer.next().await.ts.expect("posted");
    // Once the trigger's outcome is in the store, the clear arrives at the other replica.
    let store_has_it = async || {
        let metrics = relays[0].metrics(None).await;
        match metrics.contains("alert_relay_deliveries_pending{destination=\"ops\"} 0") {
            true => Ok(()),
            false => Err(metrics),
        }
    };
    common::eventually("the trigger is recorded", store_has_it).await;
    assert_eq!(relays[1].post(sample("alert_clear.json")).await.0, 200);
    let (update, reply): (Value, Value) = (peer.next().await.json(), peer.next().await.json());
    assert_eq!(update["ts"].as_str(), Some(ts.as_str()), "{update}");
    assert_eq!(reply["thread_ts"].as_str(), Some(ts.as_str()), "{reply}");
    for relay in relays {
        relay.kill_9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn pacing_holds_for_the_destination_across_replicas() {
    let peer = Peer::start().await;
    let config = format!(
        "[storage]\npoll = \"200ms\"\n\
         [destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"1/s\"\nburst = 1\n",
        peer.url("/slack")
    );
    let (_dir, relays) = replicas(3, &config).await;
    for i in 0..10 {
        assert_eq!(
            relays[i % 3].post(event(&format!("paced-{i}"))).await.0,
            200
        );
    }
    let mut arrivals = Vec::new();
    for _ in 0..10 {
        arrivals.push(peer.next().await.at);
    }
    let gaps: Vec<u128> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert!(
        gaps.iter().all(|gap| *gap >= 900),
        "one replica drives the channel at 1/s: {gaps:?} ms"
    );
    for relay in relays {
        relay.kill_9();
    }
}
