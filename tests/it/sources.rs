//! Every way an alert reaches the relay: ThousandEyes classic and custom webhooks, Alertmanager,
//! Grafana and generic JSON, each at its own path, through routes to loopback peers.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common;
use common::{Peer, Reply, TestRelay, command, config_dir, sample, sample_at};

/// Four sources; Alertmanager and Grafana alerts go to `am_hook`, the rest to `hook`.
fn config(hook: &Peer, am_hook: &Peer, extra: &str) -> String {
    format!(
        r#"
[delivery]
backoff_min = "50ms"
backoff_max = "200ms"

[sources.te]
kind = "thousandeyes"
path = "/thousandeyes"

[sources.te_custom]
kind = "thousandeyes-custom"
path = "/thousandeyes-custom"

[sources.prometheus]
kind = "alertmanager"
path = "/alertmanager"

[sources.grafana]
kind = "grafana"
path = "/grafana"

[sources.incidents]
kind = "generic"
path = "/incidents"
[sources.incidents.map]
id = "/incident/id"
key = "/incident/key"
title = "/incident/title"
severity = "/incident/urgency"
link = "/incident/url"
started_at = "/incident/opened"
state = {{ pointer = "/status", triggered = ["open", "firing"], cleared = ["closed", "resolved"] }}

[destinations.hook]
kind = "webhook"
url = "{}"
rate_limit = "unlimited"

[destinations.am_hook]
kind = "webhook"
url = "{}"
rate_limit = "unlimited"

[[routes]]
match.source = ["prometheus", "grafana"]
to = ["am_hook"]

[[routes]]
to = ["hook"]
{extra}
"#,
        hook.url("/hook"),
        am_hook.url("/am"),
    )
}

async fn peers() -> (Peer, Peer) {
    let (hook, am_hook) = (Peer::start().await, Peer::start().await);
    hook.answer_by_default(Reply::Status(200, "ok"));
    am_hook.answer_by_default(Reply::Status(200, "ok"));
    (hook, am_hook)
}

/// The next `n` webhook bodies `peer` receives, by event id (delivery order between two events
/// is not promised).
async fn bodies(peer: &Peer, n: usize) -> BTreeMap<String, Value> {
    let mut by_id = BTreeMap::new();
    for _ in 0..n {
        let body = peer.next().await.json();
        by_id.insert(body["event"]["id"].as_str().unwrap().to_owned(), body);
    }
    by_id
}

/// Dedup is per source: the same `eventId` from a second ThousandEyes source, or the same alert
/// from a second Alertmanager, is an event of its own, delivered; again from the same source, a
/// duplicate.
#[tokio::test]
async fn the_same_event_from_two_sources_is_two_events() {
    let (hook, am_hook) = peers().await;
    let relay = TestRelay::start(&config(
        &hook,
        &am_hook,
        "[sources.te_eu]\nkind = \"thousandeyes\"\npath = \"/thousandeyes-eu\"\n\
         [sources.prometheus_eu]\nkind = \"alertmanager\"\npath = \"/alertmanager-eu\"\n",
    ))
    .await;
    let trigger = sample("alert_trigger.json");
    let firing = sample_at("alertmanager/firing.json");
    for (path, body, peer, each) in [
        ("/thousandeyes", &trigger, &hook, 1),
        ("/thousandeyes-eu", &trigger, &hook, 1),
        ("/alertmanager", &firing, &am_hook, 2),
        // Not in the route of `prometheus` and `grafana`: the catch-all's.
        ("/alertmanager-eu", &firing, &hook, 2),
    ] {
        let (status, answer) = relay.post_to(path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert!(
            !answer.to_string().contains("duplicate"),
            "{path}: {answer}"
        );
        for _ in 0..each {
            peer.next().await;
        }
        let (_, again) = relay.post_to(path, body).await;
        let again = again.to_string();
        assert!(
            again.contains("duplicate") && !again.contains("deliveries"),
            "{path}: {again}"
        );
    }
    let quiet = std::time::Duration::from_millis(300);
    assert!(hook.next_within(quiet).await.is_none());
    assert!(am_hook.next_within(quiet).await.is_none());
    relay.stop().await;
}

#[tokio::test]
async fn an_alertmanager_body_is_one_event_per_alert_routed_by_source() {
    let (hook, am_hook) = peers().await;
    let relay = TestRelay::start(&config(&hook, &am_hook, "")).await;

    let (status, answer) = relay
        .post_to("/alertmanager", &sample_at("alertmanager/firing.json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let events = answer["events"].as_array().expect("one entry per alert");
    assert_eq!(events.len(), 2, "{answer}");
    assert!(
        events
            .iter()
            .all(|e| e["status"] == "accepted" && e["deliveries"] == 1)
    );

    let got = bodies(&am_hook, 2).await;
    let first = &got["3a9f1c2b7d4e5f60:firing:2025-03-17T19:43:00Z"];
    assert_eq!(first["event"]["kind"], "alert.trigger");
    assert_eq!(first["event"]["type"], "firing");
    let summary = &first["summary"];
    assert_eq!(summary["title"], "HighLatency: p99 latency above 500 ms");
    assert_eq!(summary["state"], "triggered");
    assert_eq!(summary["severity"], "critical");
    assert_eq!(summary["rule"], "HighLatency");
    assert_eq!(
        summary["description"],
        "api-1 answers in 812 ms at p99 over 5 minutes."
    );
    assert_eq!(summary["started_at"], "2025-03-17T19:43:00Z");
    // The alert in Alertmanager, found by its labels; Prometheus' graph is the "Source".
    assert_eq!(
        summary["link"],
        "http://alertmanager.example.com:9093/#/alerts?filter=\
         %7Balertname%3D%22HighLatency%22%2Cinstance%3D%22api%2D1%3A9100%22%2Cjob%3D%22api%22%2C\
         severity%3D%22critical%22%2Cteam%3D%22netops%22%7D"
    );
    assert_eq!(summary["links"][0]["title"], "Source");
    assert!(
        summary["links"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://prometheus.example.com:9090/graph")
    );
    assert!(common::strings(&summary["labels"]).contains(&"instance=api-1:9100"));
    assert_eq!(
        first["correlation"],
        json!({"key": "3a9f1c2b7d4e5f60", "state": "triggered"})
    );
    // The payload is the group with this alert alone.
    let alerts = first["payload"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["labels"]["instance"], "api-1:9100");
    assert_eq!(first["payload"]["receiver"], "alert-relay");
    assert!(got.contains_key("8c0d2e4f6a1b3c5d:firing:2025-03-17T19:44:30Z"));
    let (_, metrics) = relay.get("/metrics").await;
    assert!(
        metrics.contains(
            "alert_relay_events_total{source=\"prometheus\",kind=\"alert.trigger\",outcome=\"accepted\"} 2"
        ),
        "one count per alert: {metrics}"
    );

    // Alertmanager repeats a firing group every repeat_interval: the same alerts are duplicates.
    let (status, again) = relay
        .post_to("/alertmanager", &sample_at("alertmanager/firing.json"))
        .await;
    assert_eq!(status, 200);
    assert!(
        again["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "duplicate"),
        "{again}"
    );

    let (status, answer) = relay
        .post_to("/alertmanager", &sample_at("alertmanager/resolved.json"))
        .await;
    assert_eq!(
        (status, answer["events"][0]["status"].as_str()),
        (200, Some("accepted"))
    );
    let resolved = am_hook.next().await.json();
    assert_eq!(resolved["event"]["kind"], "alert.clear");
    assert_eq!(resolved["summary"]["state"], "cleared");
    assert_eq!(resolved["summary"]["duration"], "8m 4s");
    assert_eq!(
        resolved["correlation"],
        json!({"key": "3a9f1c2b7d4e5f60", "state": "cleared"})
    );

    // A ThousandEyes body at its own path goes by the other route.
    assert_eq!(
        relay
            .post_to("/thousandeyes", &sample("alert_trigger.json"))
            .await
            .0,
        200
    );
    let te = hook.next().await.json();
    assert_eq!(te["event"]["kind"], "alert.trigger");
    assert!(
        am_hook
            .next_within(std::time::Duration::from_millis(300))
            .await
            .is_none()
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_firing_then_resolved_alertmanager_alert_threads_in_slack() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::SlackOk);
    let relay = TestRelay::start(&format!(
        r##"
[sources.prometheus]
kind = "alertmanager"
path = "/alertmanager"

[destinations.ops]
kind = "slack"
token = "xoxb-1-2-sources"
channel = "#alerts"
api_url = "{}"
rate_limit = "unlimited"
"##,
        peer.url("/api")
    ))
    .await;
    let resolved = sample_at("alertmanager/resolved.json");
    // The firing body of that one alert alone, so that the thread is the only message.
    let mut firing: Value = serde_json::from_str(&resolved).unwrap();
    firing["status"] = json!("firing");
    firing["alerts"][0]["status"] = json!("firing");
    firing["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");
    assert_eq!(
        relay.post_to("/alertmanager", &firing.to_string()).await.0,
        200
    );
    let posted = peer.next().await;
    assert!(posted.path.ends_with("chat.postMessage"));
    let body = posted.json();
    assert!(body.get("thread_ts").is_none(), "{body}");
    let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.contains("HighLatency"), "{body}");
    let buttons = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .map(|b| b["elements"].clone())
        .unwrap_or_else(|| panic!("buttons: {body}"));
    for (at, (title, url)) in [
        (
            "Open in Alertmanager",
            "http://alertmanager.example.com:9093/#/alerts?filter=%7B",
        ),
        ("Source", "http://prometheus.example.com:9090/graph"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(buttons[at]["text"]["text"], title, "{body}");
        let link = buttons[at]["url"].as_str().unwrap();
        assert!(link.starts_with(url), "{body}");
    }
    let ts = posted.ts.clone().unwrap();

    assert_eq!(relay.post_to("/alertmanager", &resolved).await.0, 200);
    let (update, reply) = (peer.next().await, peer.next().await);
    assert!(update.path.ends_with("chat.update"));
    assert_eq!(update.json()["ts"], ts.as_str());
    let header = update.json()["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(header.starts_with("✅ Cleared"), "{header}");
    assert!(reply.path.ends_with("chat.postMessage"));
    assert_eq!(reply.json()["thread_ts"], ts.as_str());
    assert!(
        reply.json()["text"]
            .as_str()
            .unwrap()
            .contains("after 8m 4s"),
        "{}",
        reply.json()
    );
    relay.stop().await;
}

#[tokio::test]
async fn grafana_alerts_take_their_panel_links_and_values() {
    let (hook, am_hook) = peers().await;
    let relay = TestRelay::start(&config(&hook, &am_hook, "")).await;
    // Grafana's documented example as it is, then with the panel and dashboard links and the
    // `valueString` that alerts from dashboards and older Grafanas carry.
    let documented = sample_at("grafana/firing.json");
    let (status, answer) = relay.post_to("/grafana", &documented).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["events"].as_array().unwrap().len(), 2);
    let got = bodies(&am_hook, 2).await;
    let memory = &got["c6eadffa33fcdf37:firing:2021-10-12T07:51:03Z"];
    assert_eq!(
        memory["summary"]["title"],
        "High memory usage: This alert was triggered for zone us-1"
    );
    assert_eq!(
        memory["summary"]["description"],
        "The system has high memory usage"
    );
    assert_eq!(
        memory["summary"]["link"], "https://play.grafana.org/alerting/1afz29v7z/edit",
        "no panel or dashboard: the rule's link"
    );
    assert_eq!(memory["summary"]["started_at"], "2021-10-12T07:51:03Z");
    assert_eq!(memory["correlation"]["key"], "c6eadffa33fcdf37");
    assert_eq!(memory["payload"]["title"], "[FIRING:2] (blue)");
    assert_eq!(
        memory["payload"]["alerts"][0]["values"]["B"],
        44.23943737541908
    );
    assert!(got.contains_key("bc97ff14869b13e3:firing:2021-10-12T07:56:03Z"));

    let mut linked: Value = serde_json::from_str(&documented).unwrap();
    let cpu = &mut linked["alerts"][1];
    cpu["fingerprint"] = json!("bc97ff14869b13e4");
    cpu["dashboardURL"] = json!("https://play.grafana.org/d/000000012/grafana-play-home");
    cpu["panelURL"] = json!("https://play.grafana.org/d/000000012/grafana-play-home?viewPanel=2");
    cpu["valueString"] = json!("[ metric='' labels={} value=47043.702386305304 ]");
    linked["alerts"].as_array_mut().unwrap().remove(0);
    assert_eq!(relay.post_to("/grafana", &linked.to_string()).await.0, 200);
    let cpu = am_hook.next().await.json();
    assert_eq!(
        cpu["summary"]["link"],
        "https://play.grafana.org/d/000000012/grafana-play-home?viewPanel=2"
    );
    assert_eq!(
        cpu["summary"]["expression"],
        "[ metric='' labels={} value=47043.702386305304 ]"
    );
    relay.stop().await;
}

#[tokio::test]
async fn generic_json_reads_through_its_map() {
    let (hook, am_hook) = peers().await;
    let relay = TestRelay::start(&config(&hook, &am_hook, "")).await;
    let incident = |status: &str| {
        json!({
            "status": status,
            "incident": {"id": "INC-42", "key": "db-primary", "title": "Primary database unreachable",
                "urgency": "high", "url": "https://status.example.com/incidents/42",
                "opened": "2025-03-17T19:43:00Z"}
        })
        .to_string()
    };
    let (status, answer) = relay.post_to("/incidents", &incident("open")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["eventId"], "INC-42", "one event: the single answer");
    let opened = hook.next().await.json();
    assert_eq!(opened["event"]["kind"], "alert.trigger");
    assert_eq!(opened["summary"]["title"], "Primary database unreachable");
    assert_eq!(opened["summary"]["severity"], "high");
    assert_eq!(
        opened["summary"]["link"],
        "https://status.example.com/incidents/42"
    );
    assert_eq!(opened["summary"]["started_at"], "2025-03-17T19:43:00Z");
    assert_eq!(
        opened["correlation"],
        json!({"key": "db-primary", "state": "triggered"})
    );

    assert_eq!(
        relay.post_to("/incidents", &incident("open")).await.1["status"],
        "duplicate"
    );
    assert_eq!(
        relay.post_to("/incidents", &incident("CLOSED")).await.0,
        200
    );
    let closed = hook.next().await.json();
    assert_eq!(closed["event"]["kind"], "alert.clear");
    assert_eq!(
        closed["correlation"],
        json!({"key": "db-primary", "state": "cleared"})
    );

    assert_eq!(
        relay
            .post_to("/incidents", &incident("acknowledged"))
            .await
            .0,
        200
    );
    assert_eq!(hook.next().await.json()["event"]["kind"], "unknown");
    relay.stop().await;
}

/// `docs/thousandeyes-custom-webhook.hbs`, rendered as ThousandEyes would: with Handlebars, over
/// a notification object made of the variables ThousandEyes documents.
/// A test name with what ThousandEyes' Handlebars writes as it is: backslashes that would make
/// JSON escapes (`\n`, `\u0041`) and a line break.
const TEST_NAME: &str = "www.example.com \\nyc \\u0041\nsecond line";

fn custom_webhook_body(type_id: u8) -> String {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/thousandeyes-custom-webhook.hbs"),
    )
    .unwrap();
    let notification = json!({
        "id": format!("n-{type_id}-7f3a"),
        "type": {"id": type_id},
        "alert": {
            "id": "a-281474976710655",
            "severity": {"id": "MAJOR"},
            "firstSeen": {"epochSecond": 1742240580_i64, "epochMilli": 1742240580000_i64},
            "timeCleared": {"epochSecond": 1742241064_i64, "epochMilli": 1742241064000_i64},
            "rule": {"id": "9421", "name": "Packet loss > 10% & \"edge\" <pops>", "expression": "((loss >= 10%))",
                "alertType": {"id": "end-to-end-server"}, "notes": "", "account": {"id": 75}},
            "test": {"id": "1234", "name": TEST_NAME, "description": "", "testType": "agent-to-server",
                "labels": [{"name": "prod"}, {"name": "edge"}]},
            "details": {"size": 3},
            "targets": [{"description": "www.example.com"}],
        },
    });
    handlebars::Handlebars::new()
        .render_template(&template, &notification)
        .expect("the shipped custom-webhook template renders")
}

#[tokio::test]
async fn the_shipped_custom_webhook_template_makes_a_trigger_and_its_clear() {
    let (hook, am_hook) = peers().await;
    let relay = TestRelay::start(&config(&hook, &am_hook, "")).await;
    let trigger = custom_webhook_body(2);
    let (status, answer) = relay.post_to("/thousandeyes-custom", &trigger).await;
    assert_eq!(status, 200, "{answer}\n{trigger}");
    let got = hook.next().await.json();
    assert_eq!(got["event"]["kind"], "alert.trigger");
    let summary = &got["summary"];
    assert_eq!(
        summary["title"],
        format!("Packet loss > 10% & \"edge\" <pops> on {TEST_NAME}"),
        "HTML escaping undone, backslashes and the line break kept as written"
    );
    assert_eq!(summary["test"], TEST_NAME);
    assert_eq!(
        summary["targets"],
        json!([]),
        "the test's target is not an agent"
    );
    assert_eq!(summary["severity"], "MAJOR");
    assert_eq!(summary["expression"], "((loss >= 10%))");
    assert_eq!(summary["type"], "end-to-end-server");
    assert_eq!(summary["started_at"], "2025-03-17T19:43:00Z");
    assert_eq!(summary["targets_total"], 3);
    assert_eq!(common::strings(&summary["labels"]), ["prod", "edge"]);
    assert_eq!(
        got["correlation"],
        json!({"key": "a-281474976710655", "state": "triggered"})
    );

    assert_eq!(
        relay
            .post_to("/thousandeyes-custom", &custom_webhook_body(1))
            .await
            .0,
        200
    );
    let cleared = hook.next().await.json();
    assert_eq!(cleared["event"]["kind"], "alert.clear");
    assert_eq!(cleared["summary"]["duration"], "8m 4s");
    assert_eq!(
        cleared["correlation"],
        json!({"key": "a-281474976710655", "state": "cleared"})
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_malformed_body_for_each_source_is_refused_by_name_and_the_server_keeps_serving() {
    let (hook, am_hook) = peers().await;
    let relay = TestRelay::start(&config(&hook, &am_hook, "")).await;
    let cases: [(&str, &str, &str); 9] = [
        ("/thousandeyes", r#"{"eventId": "1"}"#, "eventType"),
        ("/thousandeyes", "{not json", "not valid JSON"),
        (
            "/thousandeyes-custom",
            r#"{"type": "3", "alert": {"id": "1"}}"#,
            "type",
        ),
        (
            "/thousandeyes-custom",
            r#"{"type": "2", "notificationId": "n", "alert": {}}"#,
            "alert.id",
        ),
        (
            "/alertmanager",
            r#"{"status": "firing"}"#,
            "no array \"alerts\"",
        ),
        (
            "/alertmanager",
            r#"{"alerts": [{"status": "pending", "labels": {}}]}"#,
            "alerts[0] has status \"pending\"",
        ),
        (
            "/grafana",
            r#"{"alerts": [{"status": "firing"}]}"#,
            "alerts[0] has no object \"labels\"",
        ),
        (
            "/incidents",
            r#"{"status": "open", "incident": {"id": "1"}}"#,
            "/incident/title (sources.incidents.map.title)",
        ),
        ("/incidents", "[1, 2]", "must be a JSON object"),
    ];
    for (path, body, problem) in cases {
        let (status, answer) = relay.post_to(path, body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(problem), "{path} {body}: {error}");
    }
    let (_, metrics) = relay.get("/metrics").await;
    for (source, refused) in [
        ("te", 2),
        ("te_custom", 2),
        ("prometheus", 2),
        ("grafana", 1),
        ("incidents", 2),
    ] {
        let line = format!(
            "alert_relay_events_total{{source=\"{source}\",kind=\"none\",outcome=\"rejected_invalid\"}} {refused}"
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    // Still serving, every source.
    assert_eq!(
        relay
            .post_to("/thousandeyes", &sample("alert_trigger.json"))
            .await
            .0,
        200
    );
    assert_eq!(
        relay
            .post_to("/alertmanager", &sample_at("alertmanager/resolved.json"))
            .await
            .0,
        200
    );
    assert_eq!(
        relay.post_to("/", &sample("alert_trigger.json")).await.0,
        404,
        "no source at /"
    );
    relay.stop().await;
}

#[test]
fn check_refuses_what_sources_cannot_mean() {
    let cases: [(&str, &str); 7] = [
        (
            "[server]\ningest_path = \"/te\"\n[sources.a]\nkind = \"alertmanager\"\npath = \"/am\"\n",
            "server.ingest_path: is not used once [sources] are set",
        ),
        (
            "[sources.x]\nkind = \"generic\"\npath = \"/x\"\n[sources.x.map]\ntitle = \"/t\"\nid = \"incident/id\"\n",
            "sources.x.map.id: \"incident/id\" is not a JSON Pointer",
        ),
        (
            "[sources.x]\nkind = \"generic\"\npath = \"/x\"\n",
            "sources.x.map: a generic source needs a map",
        ),
        (
            "[sources.a]\nkind = \"alertmanager\"\npath = \"/same\"\n[sources.b]\nkind = \"grafana\"\npath = \"/same\"\n",
            "sources.b.path: /same is already the path of source a",
        ),
        (
            "[sources.group]\nkind = \"alertmanager\"\npath = \"/am\"\n",
            "sources.group: group is the name of the relay's own group notifications",
        ),
        (
            "[sources.a]\nkind = \"alertmanager\"\npath = \"/metrics\"\n",
            "sources.a.path: /metrics is reserved",
        ),
        (
            "[sources.a]\nkind = \"alertmanager\"\npath = \"/am\"\n[[routes]]\nmatch.source = [\"prom\"]\nto = [\"out\"]\n",
            "routes[0].match.source: no source named \"prom\" (the sources are a)",
        ),
    ];
    for (sources, problem) in cases {
        let dir = config_dir(
            &format!("{sources}\n[destinations.out]\nkind = \"console\"\n"),
            &[],
        );
        let (ok, out) = command(dir.path(), &["check"]);
        assert!(!ok, "{sources}");
        assert!(out.contains(problem), "{sources}\n{out}");
    }
}
