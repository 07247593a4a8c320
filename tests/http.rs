//! The HTTP contract: what each kind of bad request gets, that the server keeps serving, health,
//! dedup, and who may post.

mod common;

use common::{Peer, TestRelay, sample};
use serde_json::Value;

async fn send(
    relay: &TestRelay,
    request: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let _ = relay;
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    (status, headers, body)
}

#[tokio::test]
async fn bad_requests_get_a_json_error_and_the_server_keeps_serving() {
    let peer = Peer::start().await;
    let relay = TestRelay::start(&format!(
        "[server]\nmax_body_bytes = 4096\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        peer.url("/s")
    ))
    .await;
    let http = common::client();
    let post = |body: Vec<u8>| {
        http.post(relay.url("/"))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "not JSON",
            post(b"eventType=ALERT".to_vec()),
            400,
            "not valid JSON",
        ),
        (
            "invalid UTF-8",
            post(vec![b'{', 0xff, 0xfe, b'}']),
            400,
            "not valid JSON",
        ),
        (
            "not an object",
            post(b"[1, 2]".to_vec()),
            400,
            "JSON object",
        ),
        (
            "no eventType",
            post(br#"{"eventId": "1"}"#.to_vec()),
            400,
            "eventType",
        ),
        (
            "eventType not a string",
            post(br#"{"eventType": 1}"#.to_vec()),
            400,
            "eventType",
        ),
        ("empty body", post(Vec::new()), 400, "not valid JSON"),
        (
            "oversized",
            post(format!(r#"{{"eventType": "X", "pad": "{}"}}"#, "x".repeat(5000)).into_bytes()),
            413,
            "larger than 4096",
        ),
        ("wrong method", http.get(relay.url("/")), 405, "only POST"),
        ("PUT", http.put(relay.url("/")).body("{}"), 405, "only POST"),
        (
            "unknown path",
            http.post(relay.url("/nope")).body("{}"),
            404,
            "no such path",
        ),
    ];
    for (case, request, status, message) in cases {
        let (got, headers, body) = send(&relay, request).await;
        assert_eq!(got, status, "{case}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{case}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: no error field: {body}"));
        assert!(
            error.contains(message),
            "{case}: {error:?} does not say {message:?}"
        );
        if status == 405 {
            assert_eq!(headers["allow"], "POST", "{case}");
        }
    }
    // Still serving, and nothing of the above was delivered.
    let (status, answer) = relay.post(&sample("alert_trigger.json")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    assert!(
        peer.next().await.json()["text"]
            .as_str()
            .unwrap()
            .contains("Default Page Load")
    );
    let (_, metrics) = relay.get("/metrics").await;
    assert!(
        metrics.contains("alert_relay_events_total{kind=\"none\",outcome=\"rejected_invalid\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("alert_relay_events_total{kind=\"none\",outcome=\"rejected_too_large\"} 1"),
        "{metrics}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn the_same_event_id_is_accepted_once() {
    let peer = Peer::start().await;
    let relay = TestRelay::start(&format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
        peer.url("/s")
    ))
    .await;
    let (status, first) = relay.post(&sample("alert_trigger.json")).await;
    assert_eq!(
        (
            status,
            first["status"].as_str(),
            first["deliveries"].as_u64()
        ),
        (200, Some("accepted"), Some(1))
    );
    let (status, again) = relay.post(&sample("alert_trigger.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        serde_json::json!({"status": "duplicate", "eventId": "49-35541"})
    );
    peer.next().await;
    // The next request the peer sees is the next event, not the duplicate.
    relay.post(&sample("alert_clear.json")).await;
    assert!(
        peer.next().await.json()["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ Cleared")
    );
    relay.stop().await;
}

#[tokio::test]
async fn health_endpoints_answer() {
    let relay = TestRelay::start("[destinations.console]\nkind = \"console\"\n").await;
    assert_eq!(
        relay.get("/healthz").await,
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    assert_eq!(relay.get("/readyz").await.0, 200);
    let (status, metrics) = relay.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.trim_end().ends_with("# EOF"),
        "OpenMetrics text: {metrics}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn credentials_are_required_once_configured() {
    let relay = TestRelay::start(
        "[server.auth]\nbasic = [{ username = \"te\", password = \"old-pass\" }, { username = \"te\", password = \"new-pass\" }]\nbearer = [\"token-1\"]\n[destinations.console]\nkind = \"console\"\n",
    )
    .await;
    let http = common::client();
    let body = sample("webhook_test.json");
    let post = || {
        http.post(relay.url("/"))
            .header("content-type", "application/json")
            .body(body.clone())
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("none", post(), 401),
        (
            "basic, old password",
            post().basic_auth("te", Some("old-pass")),
            200,
        ),
        (
            "basic, new password",
            post().basic_auth("te", Some("new-pass")),
            200,
        ),
        (
            "basic, wrong password",
            post().basic_auth("te", Some("nope")),
            401,
        ),
        (
            "basic, wrong user",
            post().basic_auth("other", Some("new-pass")),
            401,
        ),
        ("bearer", post().bearer_auth("token-1"), 200),
        ("bearer, wrong", post().bearer_auth("token-2"), 401),
        (
            "bearer, prefix of the token",
            post().bearer_auth("token-"),
            401,
        ),
        (
            "unknown scheme",
            post().header("authorization", "Digest token-1"),
            401,
        ),
    ];
    for (case, request, status) in cases {
        let (got, headers, body) = send(&relay, request).await;
        assert_eq!(got, status, "{case}: {body}");
        if status == 401 {
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("Basic"),
                "{case}"
            );
            assert!(body["error"].is_string(), "{case}");
        }
    }
    // Health stays open.
    assert_eq!(relay.get("/healthz").await.0, 200);
    relay.stop().await;
}

#[tokio::test]
async fn sources_outside_the_allowlist_are_refused() {
    let refusing = TestRelay::start("[server.auth]\nallow_from = [\"10.0.0.0/8\", \"::1/128\"]\n[destinations.console]\nkind = \"console\"\n").await;
    let (status, body) = refusing.post(&sample("webhook_test.json")).await;
    assert_eq!(status, 403, "{body}");
    refusing.stop().await;
    let allowing = TestRelay::start("[server.auth]\nallow_from = [\"127.0.0.0/8\"]\n[destinations.console]\nkind = \"console\"\n").await;
    assert_eq!(allowing.post(&sample("webhook_test.json")).await.0, 200);
    allowing.stop().await;
}
