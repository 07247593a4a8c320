//! Retries seen from a real peer: what is retried, how soon, and what is not.

use crate::common;

use std::time::Duration;

use common::{Peer, Reply, TestRelay, sample};

/// The shortest wait before a retry in these tests (`delivery.backoff_min`): short, so that the
/// tests do not wait for the default second, and long enough to tell from no wait at all.
const BACKOFF_MIN: Duration = Duration::from_millis(200);

/// A relay sending to Slack on `peer`, with `timeout` per attempt and [`BACKOFF_MIN`], and more
/// TOML for the Slack destination in `slack`.
async fn relay_with(peer: &Peer, timeout: &str, slack: &str) -> TestRelay {
    TestRelay::start(&format!(
        "[delivery]\ntimeout = \"{timeout}\"\nbackoff_min = \"{}ms\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n{slack}",
        BACKOFF_MIN.as_millis(),
        peer.url("/s")
    ))
    .await
}

async fn relay_for(peer: &Peer, timeout: &str) -> TestRelay {
    relay_with(peer, timeout, "").await
}

/// The value of one delivery counter in `/metrics`, 0 when absent.
async fn attempts(relay: &TestRelay, outcome: &str) -> u64 {
    let (_, metrics) = relay.get("/metrics").await;
    let prefix = format!(
        "alert_relay_delivery_attempts_total{{destination=\"slack\",outcome=\"{outcome}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().expect("a count"))
}

/// Polls `/metrics` until the worker has recorded `count` attempts with `outcome`.
async fn wait_for_attempts(relay: &TestRelay, outcome: &str, count: u64) {
    common::eventually(
        &format!("fewer than {count} {outcome} attempts"),
        async || {
            let recorded = attempts(relay, outcome).await;
            if recorded >= count {
                Ok(())
            } else {
                Err(format!("{recorded} recorded"))
            }
        },
    )
    .await;
}

/// Posts the webhook test event and checks that it is the next request the peer sees: once the
/// first event's outcome is recorded, nothing of it may be sent again.
async fn next_request_is_a_new_event(relay: &TestRelay, peer: &Peer) {
    relay.post(&sample("webhook_test.json")).await;
    let text = peer.next().await.json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains("Test"),
        "the first event was sent again: {text}"
    );
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_and_delivered_once() {
    let peer = Peer::start().await;
    peer.reply([Reply::Status(500, "rollup_error")]);
    let relay = relay_for(&peer, "5s").await;
    relay.post(&sample("alert_trigger.json")).await;
    let first = peer.next().await;
    let second = peer.next().await;
    assert_eq!(first.body, second.body);
    let gap = second.at - first.at;
    assert!(
        gap >= BACKOFF_MIN / 2,
        "retried after {gap:?}; the first backoff is half to all of backoff_min"
    );
    wait_for_attempts(&relay, "delivered", 1).await;
    next_request_is_a_new_event(&relay, &peer).await;
    // The peer has the second event; its outcome is counted once the worker has its answer.
    wait_for_attempts(&relay, "delivered", 2).await;
    assert_eq!(attempts(&relay, "retry").await, 1);
    relay.stop().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let peer = Peer::start().await;
    peer.reply([Reply::RetryAfter(429, "1")]);
    let relay = relay_for(&peer, "5s").await;
    relay.post(&sample("alert_trigger.json")).await;
    let first = peer.next().await;
    let second = peer.next().await;
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, before Retry-After: 1"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let peer = Peer::start().await;
    peer.reply([Reply::Status(400, "invalid_payload")]);
    let relay = relay_for(&peer, "5s").await;
    relay.post(&sample("alert_trigger.json")).await;
    peer.next().await;
    wait_for_attempts(&relay, "dead", 1).await;
    next_request_is_a_new_event(&relay, &peer).await;
    assert_eq!(attempts(&relay, "retry").await, 0);
    relay.stop().await;
}

#[tokio::test]
async fn a_hung_peer_times_out_and_is_retried() {
    let peer = Peer::start().await;
    peer.reply([Reply::Hang]);
    let relay = relay_for(&peer, "300ms").await;
    relay.post(&sample("alert_trigger.json")).await;
    let first = peer.next().await;
    let second = peer.next().await;
    assert!(second.at - first.at >= Duration::from_millis(300));
    wait_for_attempts(&relay, "delivered", 1).await;
    assert_eq!(attempts(&relay, "retry").await, 1);
    relay.stop().await;
}

#[tokio::test]
async fn retry_after_pauses_the_whole_destination() {
    let peer = Peer::start().await;
    peer.reply([Reply::RetryAfter(429, "1")]);
    let relay = relay_with(&peer, "10s", "rate_limit = \"unlimited\"\n").await;
    relay.post(&sample("alert_trigger.json")).await;
    let limited = peer.next().await;
    wait_for_attempts(&relay, "retry", 1).await;
    // Slack said "wait 1 s" for this webhook: other events wait too, not only the first.
    relay.post(&sample("alert_clear.json")).await;
    relay.post(&sample("webhook_test.json")).await;
    for _ in 0..3 {
        let request = peer.next().await;
        let gap = request.at - limited.at;
        assert!(
            gap >= Duration::from_millis(950),
            "sent {gap:?} after the 429"
        );
    }
    relay.stop().await;
}

/// The requests `peer` receives from the first one until `window` has passed: when each came
/// (ms after the first) and its event id.
async fn requests_within(peer: &Peer, window: Duration) -> Vec<(u128, String)> {
    let first = peer.next().await;
    let end = first.at + window;
    let seen = |r: &common::Recorded| {
        let id = r.json()["event"]["id"].as_str().unwrap_or("?").to_owned();
        ((r.at - first.at).as_millis(), id)
    };
    let mut requests = vec![seen(&first)];
    while let Some(left) = end.checked_duration_since(tokio::time::Instant::now()) {
        match peer.next_within(left).await {
            Some(request) => requests.push(seen(&request)),
            None => break,
        }
    }
    requests
}

#[tokio::test]
async fn retry_after_zero_or_in_the_past_still_backs_off() {
    for retry_after in ["0", "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let peer = Peer::start().await;
        peer.answer_by_default(Reply::RetryAfter(429, retry_after));
        let relay = relay_with(&peer, "10s", "rate_limit = \"unlimited\"\n").await;
        for i in 0..5 {
            let body = format!(
                r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "ra-{i}", "alert": {{"ruleName": "R"}}}}"#
            );
            assert_eq!(relay.post(&body).await.0, 200);
        }
        // Five events, each answered "retry after 0 s": at most the five first attempts, then
        // one attempt per backoff_min at most (the floor), never a storm.
        let requests = requests_within(&peer, BACKOFF_MIN * 5).await;
        assert!(
            requests.len() <= 5 + 5,
            "Retry-After: {retry_after}: {} requests in {:?}: {requests:?}",
            requests.len(),
            BACKOFF_MIN * 5
        );
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_is_probed_not_hammered_and_catches_up_after() {
    const EVENTS: usize = 100;
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Status(503, "down"));
    let relay = TestRelay::start(&format!(
        "[delivery]\nbackoff_min = \"{}ms\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        BACKOFF_MIN.as_millis(),
        peer.url("/h")
    ))
    .await;
    for i in 0..EVENTS {
        let body = format!(
            r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "down-{i}", "alert": {{"ruleName": "R"}}}}"#
        );
        assert_eq!(relay.post(&body).await.0, 200);
    }
    // A backlog of 100 for a destination that fails: the attempts in flight when the first
    // failure came (at most delivery.concurrency = 8), then one probe at a time, further apart
    // each time (backoff_min, then twice, then four times as long, each with jitter); not 100
    // deliveries each retrying on its own.
    let window = BACKOFF_MIN * 7;
    let requests = requests_within(&peer, window).await;
    assert!(
        requests.len() <= 8 + 3,
        "{} requests in {window:?}: {requests:?}",
        requests.len()
    );
    // Once the destination answers again, the probe succeeds and the backlog flows.
    peer.answer_by_default(Reply::Status(200, "ok"));
    let mut delivered = std::collections::HashSet::new();
    while delivered.len() < EVENTS {
        let request = peer.next().await;
        if request.status == 200 {
            delivered.insert(request.json()["event"]["id"].as_str().unwrap().to_owned());
        }
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_endless_answer_is_cut_after_a_few_kilobytes() {
    let peer = Peer::start().await;
    peer.reply([Reply::Endless(500)]);
    let relay = relay_for(&peer, "2s").await;
    relay.post(&sample("alert_trigger.json")).await;
    peer.next().await;
    wait_for_attempts(&relay, "delivered", 1).await;
    // The attempt was judged by its status, without waiting for the end of the body.
    let (_, out) = common::command(relay.dir.path(), &["deliveries", "--state", "done"]);
    assert!(out.contains("HTTP 500: xxxx"), "{out}");
    assert!(!out.contains("timeout"), "{out}");
    relay.stop().await;
}
