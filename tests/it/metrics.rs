//! `/metrics` after a known mix of accepted, duplicate, rejected, delivered, failed, waiting and
//! fallback events: every counter at its expected value.

use crate::common;

use common::{Peer, Reply, TestRelay, sample};

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn value(metrics: &str, sample: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn counters_match_what_happened() {
    let ok = Peer::start().await;
    let refusing = Peer::start().await;
    refusing.answer_by_default(Reply::Status(404, "no_such_hook"));
    let failing = Peer::start().await;
    failing.answer_by_default(Reply::Status(503, "down"));
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n\
         [destinations.refusing]\nkind = \"webhook\"\nurl = \"{}\"\n\
         [destinations.failing]\nkind = \"webhook\"\nurl = \"{}\"\n",
        ok.url("/s"),
        refusing.url("/r"),
        failing.url("/f")
    );
    let relay = TestRelay::start_with_files(
        &config,
        &[("templates/slack/alert.clear.hbs", "{\"text\": {{oops}")],
    )
    .await;
    for name in [
        "alert_trigger.json",
        "alert_clear.json",
        "webhook_test.json",
        "alert_trigger.json",
    ] {
        assert_eq!(relay.post(&sample(name)).await.0, 200);
    }
    let http = common::client();
    let bad_json = http
        .post(relay.url("/"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let not_json = http
        .post(relay.url("/"))
        .header("content-type", "application/xml")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    for _ in 0..3 {
        ok.next().await;
        refusing.next().await;
        failing.next().await;
    }
    // The worker counts right after the peer answers: wait for the last of them.
    let metrics = common::eventually("the counts never settled", async || {
        let (_, metrics) = relay.get("/metrics").await;
        let done = value(
            &metrics,
            "alert_relay_deliveries_total{destination=\"slack\",outcome=\"delivered\"}",
        ) == Some(3.0)
            && value(
                &metrics,
                "alert_relay_deliveries_total{destination=\"refusing\",outcome=\"dead\"}",
            ) == Some(3.0)
            && value(
                &metrics,
                "alert_relay_delivery_attempts_total{destination=\"failing\",outcome=\"retry\"}",
            ) >= Some(3.0);
        if done { Ok(metrics) } else { Err(metrics) }
    })
    .await;
    let fallback_template = relay
        .dir
        .path()
        .join("templates/slack/alert.clear.hbs")
        .display()
        .to_string();
    let expected: Vec<(String, f64)> = vec![
        (
            "alert_relay_events_total{source=\"thousandeyes\",kind=\"alert.trigger\",outcome=\"accepted\"}".into(),
            1.0,
        ),
        (
            "alert_relay_events_total{source=\"thousandeyes\",kind=\"alert.clear\",outcome=\"accepted\"}".into(),
            1.0,
        ),
        (
            "alert_relay_events_total{source=\"thousandeyes\",kind=\"test\",outcome=\"accepted\"}".into(),
            1.0,
        ),
        (
            "alert_relay_events_total{source=\"thousandeyes\",kind=\"alert.trigger\",outcome=\"duplicate\"}".into(),
            1.0,
        ),
        (
            "alert_relay_events_total{source=\"thousandeyes\",kind=\"none\",outcome=\"rejected_invalid\"}".into(),
            1.0,
        ),
        (
            "alert_relay_events_total{source=\"thousandeyes\",kind=\"none\",outcome=\"rejected_content_type\"}".into(),
            1.0,
        ),
        (
            "alert_relay_delivery_attempts_total{destination=\"slack\",outcome=\"delivered\"}"
                .into(),
            3.0,
        ),
        (
            "alert_relay_delivery_attempts_total{destination=\"refusing\",outcome=\"dead\"}".into(),
            3.0,
        ),
        (
            "alert_relay_deliveries_total{destination=\"refusing\",outcome=\"dead\"}".into(),
            3.0,
        ),
        (
            "alert_relay_delivery_latency_seconds_count{destination=\"slack\"}".into(),
            3.0,
        ),
        (
            format!(
                "alert_relay_render_fallbacks_total{{destination=\"slack\",template=\"{fallback_template}\"}}"
            ),
            1.0,
        ),
        (
            "alert_relay_deliveries_pending{destination=\"slack\"}".into(),
            0.0,
        ),
        (
            "alert_relay_deliveries_pending{destination=\"refusing\"}".into(),
            0.0,
        ),
        (
            "alert_relay_deliveries_pending{destination=\"failing\"}".into(),
            3.0,
        ),
        (
            "alert_relay_deliveries_dead{destination=\"refusing\"}".into(),
            3.0,
        ),
        (
            "alert_relay_deliveries_dead{destination=\"slack\"}".into(),
            0.0,
        ),
        ("alert_relay_build_info{version=\"0.1.0\"}".into(), 1.0),
    ];
    for (sample, want) in expected {
        assert_eq!(value(&metrics, &sample), Some(want), "{sample}\n{metrics}");
    }
    assert_eq!(
        value(
            &metrics,
            "alert_relay_deliveries_total{destination=\"failing\",outcome=\"dead\"}"
        ),
        None
    );
    relay.stop().await;
}
