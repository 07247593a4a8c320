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
    replicas_on(url, count, config).await
}

/// Child relays on the database at `url`, sharing `config` (written into `dir`).
async fn replicas_on(
    url: alert_relay::secret::Secret,
    count: usize,
    config: &str,
) -> (tempfile::TempDir, Vec<ChildRelay>) {
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

/// The PostgreSQL server this test may stop: one of its own, so that the other tests' server
/// never goes away under them (`.ci/run` starts it and says where it is).
const STOPPABLE: &str = "RELAY_TEST_PG_CTL, RELAY_TEST_PG_DATA and RELAY_TEST_PG_STOPPABLE: a PostgreSQL server this test may stop (.ci/run starts one)";

/// Runs `pg_ctl` on the server this test may stop.
fn pg_ctl(action: &str) {
    let pg_ctl = std::env::var("RELAY_TEST_PG_CTL").expect(STOPPABLE);
    let data = std::path::PathBuf::from(std::env::var("RELAY_TEST_PG_DATA").expect(STOPPABLE));
    let url = url::Url::parse(&std::env::var("RELAY_TEST_PG_STOPPABLE").expect(STOPPABLE)).unwrap();
    let options = format!(
        "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
        url.port().unwrap_or(5432),
        data.parent().unwrap().display()
    );
    let log = data.parent().unwrap().join("log");
    let status = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .args(["-w", "-m", "fast", "-l"])
        .arg(&log)
        .args(["-o", &options, action])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("pg_ctl");
    assert!(status.success(), "pg_ctl {action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a PostgreSQL server it may stop (RELAY_TEST_PG_CTL, RELAY_TEST_PG_DATA, RELAY_TEST_PG_STOPPABLE): .ci/run starts one"]
async fn postgres_down_for_10_s_answers_503_loses_nothing_and_resumes() {
    let peer = Peer::start().await;
    let server = std::env::var("RELAY_TEST_PG_STOPPABLE").expect(STOPPABLE);
    let url = alert_relay::testing::fresh_postgres_database_on(&server)
        .await
        .expect(STOPPABLE);
    let (_dir, relays) = replicas_on(url, 1, &webhook(&peer)).await;
    let relay = &relays[0];
    let started = tokio::time::Instant::now();
    let mut answers = Vec::new();
    let mut readiness_failed = false;
    let (mut stopped, mut restarted) = (false, false);
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(16) {
        let at = started.elapsed();
        if !stopped && at > Duration::from_secs(2) {
            tokio::task::spawn_blocking(|| pg_ctl("stop"))
                .await
                .unwrap();
            stopped = true;
        }
        if !restarted && at > Duration::from_secs(12) {
            tokio::task::spawn_blocking(|| pg_ctl("start"))
                .await
                .unwrap();
            restarted = true;
        }
        let id = format!("down-{i}");
        i += 1;
        let sent = tokio::time::Instant::now();
        let (status, _) = relay.post(event(&id)).await;
        answers.push((id, status, sent.elapsed()));
        if stopped && !restarted {
            let ready = common::client()
                .get(format!("http://{}/readyz", relay.addr))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            readiness_failed |= ready != 200;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = answers
        .iter()
        .filter(|(_, status, _)| *status == 503)
        .count();
    assert!(
        refused > 0,
        "posts while the database was down were refused"
    );
    assert!(
        readiness_failed,
        "/readyz failed while the database was down"
    );
    let slowest = answers.iter().map(|(_, _, took)| *took).max().unwrap();
    assert!(
        slowest < Duration::from_secs(5),
        "a post waited {slowest:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(_, status, _)| matches!(status, 200 | 503)),
        "only 200 or 503"
    );
    assert_eq!(answers.last().unwrap().1, 200, "accepting again");
    let acknowledged: Vec<&String> = answers
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .map(|(id, _, _)| id)
        .collect();
    let mut delivered = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while delivered.len() < acknowledged.len() && tokio::time::Instant::now() < deadline {
        if let Some(request) = peer.next_within(Duration::from_secs(5)).await {
            delivered.insert(request.json()["event"]["id"].as_str().unwrap().to_owned());
        }
    }
    let lost: Vec<&&String> = acknowledged
        .iter()
        .filter(|id| !delivered.contains(**id))
        .collect();
    assert!(lost.is_empty(), "acknowledged, never delivered: {lost:?}");
    for relay in relays {
        relay.kill_9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn deliveries_and_retry_work_on_postgres() {
    let url = alert_relay::testing::fresh_postgres_database()
        .await
        .unwrap();
    let peer = Peer::start().await;
    peer.reply([Reply::Status(404, "no such hook")]);
    let dir = common::config_dir(
        &format!(
            "[storage]\nurl = \"{}\"\npoll = \"200ms\"\n{}",
            url.expose(),
            webhook(&peer).replace("[storage]\npoll = \"200ms\"\n", "")
        ),
        &[],
    );
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(event("refused")).await.0, 200);
    assert_eq!(peer.next().await.status, 404);
    let dead = common::eventually("the delivery is dead", async || {
        let (ok, out) = tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            move || common::command(&dir, &["deliveries", "--state", "dead"])
        })
        .await
        .unwrap();
        if ok && out.contains("refused") {
            Ok(out)
        } else {
            Err(out)
        }
    })
    .await;
    assert!(dead.contains("HTTP 404: no such hook"), "{dead}");
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || common::command(&dir, &["retry", "--dead"])
    })
    .await
    .unwrap();
    assert!(ok && out.contains("1 delivery is due again"), "{out}");
    let again = peer.next().await;
    assert_eq!(
        (again.status, again.json()["event"]["id"].as_str()),
        (200, Some("refused"))
    );
    relay.kill_9();
}

#[test]
fn a_storage_url_that_is_not_postgres_is_refused_without_showing_it() {
    let dir = common::config_dir(
        "[storage]\nurl = \"mysql://relay:S3cretPw@db/relay\"\n[destinations.console]\nkind = \"console\"\n",
        &[],
    );
    let (ok, out) = common::command(dir.path(), &["check"]);
    assert!(!ok);
    assert!(
        out.contains("storage.url: is not a postgres:// or postgresql:// URL"),
        "{out}"
    );
    assert!(!out.contains("S3cretPw"), "{out}");
}

/// A silence added on one relay's store holds what is posted to another replica; when it ends,
/// the trigger it held goes out once, though every replica looks for what ended silences held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn silences_are_shared_and_what_they_held_goes_out_once() {
    use crate::noise::{add_silence, alert, deliveries_in, run, until_active, webhook_config};
    let url = alert_relay::testing::fresh_postgres_database()
        .await
        .unwrap();
    let peer = Peer::start().await;
    let (config, files) = webhook_config(&peer);
    let config = config.replace(
        "[storage]\n",
        &format!("[storage]\nurl = \"{}\"\n", url.expose()),
    );
    let dir = common::config_dir(&config, &files);
    let relays = [
        ChildRelay::start(dir.path()).await,
        ChildRelay::start(dir.path()).await,
    ];
    let id = add_silence(dir.path(), &["test=checkout"]).await;
    for relay in &relays {
        until_active(relay, 1).await;
    }
    assert_eq!(
        relays[1].post(alert("TRIGGER", "a", "checkout")).await.0,
        200
    );
    assert_eq!(relays[0].post(alert("TRIGGER", "b", "search")).await.0, 200);
    assert_eq!(peer.next().await.json()["id"], "TRIGGER-b");
    assert!(
        deliveries_in(dir.path(), "silenced")
            .await
            .contains("TRIGGER-a")
    );

    let (ok, out) = run(dir.path(), &["silence", "expire", &id]).await;
    assert!(ok, "{out}");
    assert_eq!(peer.next().await.json()["id"], "TRIGGER-a");
    for relay in &relays {
        until_active(relay, 0).await;
    }
    assert_eq!(relays[1].post(alert("TRIGGER", "c", "search")).await.0, 200);
    assert_eq!(
        peer.next().await.json()["id"],
        "TRIGGER-c",
        "the held trigger went out once"
    );
    for relay in relays {
        relay.kill_9();
    }
}

/// A replica hears of work another committed at once (`LISTEN`/`NOTIFY`), not at its next
/// `storage.poll` (here a minute): whichever of two replicas takes an event, the one that drives
/// the (paced) destination claims and delivers it within 100 ms of the commit (the sender's
/// answer), each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn a_replica_hears_of_another_replicas_work_at_once() {
    let peer = Peer::start().await;
    let config = format!(
        "[storage]\npoll = \"60s\"\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\nrate_limit = \"1000/s\"\n",
        peer.url("/hook")
    );
    let (_dir, relays) = replicas(2, &config).await;
    // The first delivery also connects to the peer; it is not counted.
    assert_eq!(relays[0].post(event("wake-first")).await.0, 200);
    assert_eq!(peer.next().await.json()["payload"]["eventId"], "wake-first");
    let mut took = Vec::new();
    for i in 0..6 {
        assert_eq!(relays[i % 2].post(event(&format!("wake-{i}"))).await.0, 200);
        let committed = tokio::time::Instant::now();
        let delivered = peer.next().await;
        assert_eq!(delivered.json()["payload"]["eventId"], format!("wake-{i}"));
        took.push(
            delivered
                .at
                .saturating_duration_since(committed)
                .as_millis(),
        );
    }
    assert!(
        took.iter().all(|ms| *ms < 100),
        "each claimed and delivered at once, not at the next poll: {took:?} ms"
    );
    for relay in relays {
        relay.kill_9();
    }
}
