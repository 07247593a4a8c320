//! The HTTP contract: what each kind of bad request gets, that the server keeps serving, health,
//! dedup, and who may post.

use crate::common;

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

/// Writes `request` (raw bytes, perhaps several requests) on a new connection and reads until the
/// server closes it.
async fn raw_bytes(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything (headers too large).
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, stream.read_to_end(&mut answer)).await;
    answer
}

/// Sends `request` as raw bytes on a new connection and reads the answer until the server closes
/// it: the status, the head and the body.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, String) {
    let answer = String::from_utf8_lossy(&raw_bytes(addr, request).await).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn bad_requests_get_a_json_error_and_the_server_keeps_serving() {
    let peer = Peer::start().await;
    let relay = TestRelay::start(&format!(
        "[server]\nmax_body_bytes = 300000\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n",
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
            post(format!(r#"{{"eventType": "X", "pad": "{}"}}"#, "x".repeat(300_000)).into_bytes()),
            413,
            "larger than 300000",
        ),
        (
            "more JSON values than a body may hold",
            post(
                format!(
                    r#"{{"eventType": "X", "a": [{}0]}}"#,
                    "0,".repeat(alert_relay::event::MAX_VALUES)
                )
                .into_bytes(),
            ),
            413,
            "JSON values",
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
    // Requests hyper refuses before the relay sees them get a JSON body too.
    let raw_cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a Content-Length that is not a number",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}".to_vec(),
            400,
            "Content-Length",
        ),
        (
            "two Content-Lengths that differ",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
            "Content-Length",
        ),
        (
            "a request line that is not HTTP",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            "not valid HTTP",
        ),
        (
            // More than hyper's 100 headers: the whole request is read, so the answer is not
            // lost to a reset as it could be after a refusal with bytes left unread.
            "too many headers",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..150)
                    .map(|i| format!("X-H{i}: a\r\n"))
                    .collect::<String>()
            )
            .into_bytes(),
            431,
            "headers are too large",
        ),
    ];
    for (case, request, status, message) in raw_cases {
        let (got, headers, body) = raw_exchange(relay.addr, &request).await;
        assert_eq!(got, status, "{case}: {body}");
        assert!(
            headers.contains("content-type: application/json"),
            "{case}: {headers}"
        );
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{case}: body is not JSON: {body:?}"));
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{case}: {error:?} does not say {message:?}"
        );
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
        metrics.contains("alert_relay_events_total{source=\"thousandeyes\",kind=\"none\",outcome=\"rejected_invalid\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("alert_relay_events_total{source=\"thousandeyes\",kind=\"none\",outcome=\"rejected_too_large\"} 2"),
        "{metrics}"
    );
    relay.stop().await;
}

/// Writes `requests` on one connection at once (pipelined) and reads every answer until the
/// server closes it: each status and body, in order.
async fn pipelined(addr: std::net::SocketAddr, requests: &[u8]) -> Vec<(u16, String)> {
    let bytes = raw_bytes(addr, requests).await;
    let mut answers = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = response.parse(rest) else {
            panic!("not an answer: {:?}", String::from_utf8_lossy(rest));
        };
        let length: usize = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .expect("every answer has a Content-Length");
        let body = String::from_utf8_lossy(&rest[head..head + length]).into_owned();
        answers.push((response.code.unwrap_or(0), body));
        rest = &rest[head + length..];
    }
    answers
}

/// Pipelined requests each get their own answer, in order, whether the relay refuses one
/// (its handler, or a head hyper could not parse) or a chunked body stands between them.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_around_a_refusal() {
    let peer = Peer::start().await;
    let relay = TestRelay::start(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/h")
    ))
    .await;
    let trigger = |id: &str| sample("alert_trigger.json").replace("49-35541", id);
    let post = |id: &str| {
        let body = trigger(id);
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let last = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    // The handler refuses the first; the next two are answered behind it.
    let answers = pipelined(
        relay.addr,
        format!(
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n{}{last}",
            post("pipe-1")
        )
        .as_bytes(),
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [404, 200, 200], "{answers:?}");
    assert!(answers[0].1.contains("no such path"), "{answers:?}");
    assert!(answers[1].1.contains("\"accepted\""), "{answers:?}");

    // A head hyper could not parse, first: one JSON refusal, and the connection ends there.
    let answers = pipelined(
        relay.addr,
        format!("GET / HTTP/1.1\r\nBad Header\r\n\r\n{}", post("pipe-2")).as_bytes(),
    )
    .await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, 400);
    let error: Value = serde_json::from_str(&answers[0].1).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not valid HTTP"),
        "{error}"
    );

    // Behind a good request and a chunked post: the answers to both come first.
    let body = trigger("pipe-3");
    let chunked = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        10,
        &body[..10],
        body.len() - 10,
        &body[10..]
    );
    let answers = pipelined(
        relay.addr,
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{chunked}POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n{last}"
        )
        .as_bytes(),
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 400], "{answers:?}");
    assert!(answers[1].1.contains("pipe-3"), "{answers:?}");
    assert!(answers[2].1.contains("Content-Length"), "{answers:?}");

    // The two posts that were answered 200 were delivered; the one behind the refusal was not.
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..2 {
        delivered.push(
            peer.next().await.json()["event"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    delivered.sort();
    assert_eq!(delivered, ["pipe-1", "pipe-3"]);
    assert!(
        peer.next_within(std::time::Duration::from_millis(300))
            .await
            .is_none()
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
    // A number and a string with the same digits are two events.
    let with_id = |id: &str| {
        format!(r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": {id}, "alert": {{}}}}"#)
    };
    for (id, expected) in [
        ("123", "accepted"),
        ("\"123\"", "accepted"),
        ("123", "duplicate"),
    ] {
        let (status, answer) = relay.post(&with_id(id)).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some(expected)),
            "{id}"
        );
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_event_no_route_matches_is_accepted_and_counted_as_unrouted() {
    let relay = TestRelay::start(
        "[destinations.console]\nkind = \"console\"\n[[routes]]\nmatch = { kind = [\"test\"] }\nto = [\"console\"]\n",
    )
    .await;
    let (status, answer) = relay.post(&sample("alert_trigger.json")).await;
    assert_eq!(
        (
            status,
            answer["status"].as_str(),
            answer["deliveries"].as_u64()
        ),
        (200, Some("accepted"), Some(0)),
        "{answer}"
    );
    let (_, metrics) = relay.get("/metrics").await;
    assert!(
        metrics.contains("alert_relay_events_total{source=\"thousandeyes\",kind=\"alert.trigger\",outcome=\"unrouted\"} 1"),
        "{metrics}"
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

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_match_ipv4_ranges() {
    let dir = common::config_dir(
        "[server.auth]\nallow_from = [\"127.0.0.0/8\"]\n[destinations.console]\nkind = \"console\"\n",
        &[],
    );
    // Listening on [::], an IPv4 client appears as ::ffff:127.0.0.1.
    let relay = TestRelay::start_on(dir, "[::]:0").await;
    let (status, _, body) = send(
        &relay,
        common::client()
            .post(format!("http://127.0.0.1:{}/", relay.addr.port()))
            .header("content-type", "application/json")
            .body(sample("webhook_test.json")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    relay.stop().await;
}

#[tokio::test]
async fn content_type_shape_and_metrics_token() {
    let relay = TestRelay::start(
        "[server]\nmetrics_token = \"metrics-secret\"\n[destinations.console]\nkind = \"console\"\n",
    )
    .await;
    let http = common::client();
    let body = sample("webhook_test.json");
    let post = |content_type: Option<&str>, body: String| {
        let request = http.post(relay.url("/")).body(body);
        match content_type {
            Some(value) => request.header("content-type", value),
            None => request,
        }
    };
    let deep = format!(
        "{{\"eventType\": \"X\", \"d\": {}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let long = format!(
        "{{\"eventType\": \"X\", \"s\": \"{}\"}}",
        "a".repeat(70_000)
    );
    let event = |id: &str| format!(r#"{{"eventType": "WEBHOOK_TEST", "eventId": "{id}"}}"#);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        // ThousandEyes does not document its Content-Type: any body that is JSON is taken
        // unless the type says it is something else.
        ("no content type", post(None, event("ct-1")), 200),
        ("text/plain", post(Some("text/plain"), event("ct-2")), 200),
        (
            "octet-stream",
            post(Some("application/octet-stream"), event("ct-3")),
            200,
        ),
        (
            "a UTF-8 byte order mark",
            post(
                Some("application/json"),
                format!("\u{feff}{}", event("ct-4")),
            ),
            200,
        ),
        (
            "not JSON without a type",
            post(None, "eventType=X".into()),
            400,
        ),
        (
            "form",
            post(Some("application/x-www-form-urlencoded"), body.clone()),
            415,
        ),
        (
            "multipart",
            post(Some("multipart/form-data; boundary=x"), body.clone()),
            415,
        ),
        ("XML", post(Some("text/xml"), body.clone()), 415),
        (
            "json with charset",
            post(Some("application/json; charset=utf-8"), body.clone()),
            200,
        ),
        (
            "a +json type",
            post(
                Some("application/vnd.thousandeyes+json"),
                r#"{"eventType": "WEBHOOK_TEST", "eventId": "t-2"}"#.into(),
            ),
            200,
        ),
        ("nested 100 deep", post(Some("application/json"), deep), 400),
        ("a 70 KB string", post(Some("application/json"), long), 400),
    ];
    for (case, request, status) in cases {
        let (got, _, body) = send(&relay, request).await;
        assert_eq!(got, status, "{case}: {body}");
    }
    assert_eq!(relay.get("/metrics").await.0, 401);
    let metrics = http
        .get(relay.url("/metrics"))
        .bearer_auth("metrics-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("outcome=\"rejected_content_type\"} 3"),
        "{text}"
    );
    relay.stop().await;
}

/// Writes `prefix` at once, then `bytes` one at a time with a pause between each, until the
/// server closes the connection; returns how long it kept the connection open and what it said.
async fn trickle(
    addr: std::net::SocketAddr,
    prefix: &'static [u8],
    bytes: Vec<u8>,
    pause: std::time::Duration,
) -> (std::time::Duration, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = tokio::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(prefix).await.unwrap();
    for byte in bytes {
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    let held = started.elapsed();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.read_to_end(&mut answer),
    )
    .await;
    (held, String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn slow_clients_are_cut_while_others_are_served() {
    let relay = TestRelay::start(
        "[server]\nheader_timeout = \"1s\"\nrequest_timeout = \"2s\"\n[destinations.console]\nkind = \"console\"\n",
    )
    .await;
    // Headers one byte every 200 ms: never complete within the 1 s header timeout.
    let headers = b"POST / HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n".repeat(4);
    let slow_headers = tokio::spawn(trickle(
        relay.addr,
        b"",
        headers,
        std::time::Duration::from_millis(200),
    ));
    // Complete headers, then the body one byte every 100 ms: cut by the 2 s request timeout.
    let slow_body = tokio::spawn(trickle(
        relay.addr,
        b"POST / HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n",
        vec![b' '; 300],
        std::time::Duration::from_millis(100),
    ));
    // Meanwhile, ordinary requests are served.
    for i in 0..5 {
        let event = format!(r#"{{"eventType": "WEBHOOK_TEST", "eventId": "while-slow-{i}"}}"#);
        assert_eq!(relay.post(&event).await.0, 200);
    }
    let (held, _) = slow_headers.await.unwrap();
    assert!(
        held < std::time::Duration::from_secs(5),
        "slow headers held the connection {held:?}"
    );
    let (held, answer) = slow_body.await.unwrap();
    assert!(
        held < std::time::Duration::from_secs(8),
        "a slow body held the connection {held:?}"
    );
    assert!(
        held >= std::time::Duration::from_secs(2),
        "cut before the request timeout: {held:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    relay.stop().await;
}
