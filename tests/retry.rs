//! Retries seen from a real peer: what is retried, how soon, and what is not.

mod common;

use std::time::Duration;

use common::{Peer, Reply, TestRelay, sample};

async fn relay_for(peer: &Peer, timeout: &str) -> TestRelay {
    TestRelay::start(&format!(
        "[delivery]\ntimeout = \"{timeout}\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        peer.url("/s")
    ))
    .await
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
        gap >= Duration::from_millis(500),
        "retried after {gap:?}; the first backoff is 0.5-1 s"
    );
    wait_for_attempts(&relay, "delivered", 1).await;
    next_request_is_a_new_event(&relay, &peer).await;
    assert_eq!(
        (
            attempts(&relay, "retry").await,
            attempts(&relay, "delivered").await
        ),
        (1, 2)
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let peer = Peer::start().await;
    peer.reply([Reply::RetryAfter(429, "2")]);
    let relay = relay_for(&peer, "5s").await;
    relay.post(&sample("alert_trigger.json")).await;
    let first = peer.next().await;
    let second = peer.next().await;
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before Retry-After: 2"
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
    peer.reply([Reply::RetryAfter(429, "2")]);
    let relay = TestRelay::start(&format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n",
        peer.url("/s")
    ))
    .await;
    relay.post(&sample("alert_trigger.json")).await;
    let limited = peer.next().await;
    wait_for_attempts(&relay, "retry", 1).await;
    // Slack said "wait 2 s" for this webhook: other events wait too, not only the first.
    relay.post(&sample("alert_clear.json")).await;
    relay.post(&sample("webhook_test.json")).await;
    for _ in 0..3 {
        let request = peer.next().await;
        let gap = request.at - limited.at;
        assert!(
            gap >= Duration::from_millis(1900),
            "sent {gap:?} after the 429"
        );
    }
    relay.stop().await;
}
