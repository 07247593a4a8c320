//! The template studio's API: from outside (CSRF, origin, Host, paths, auth at start, pacing, the
//! memory budget), most of it through its handler alone; the page itself is `studio_page.rs`.

use serde_json::{Value, json};

use crate::common;
use common::{Peer, TestRelay, sample};

/// A relay with the studio on a port of its own, a Slack webhook at `peer`, and `extra` config.
pub async fn studio_relay(peer: &Peer, extra: &str) -> (TestRelay, String) {
    studio_relay_with_files(peer, extra, &[]).await
}

/// [`studio_relay`] with `files` (path, content) beside its config, such as templates.
pub async fn studio_relay_with_files(
    peer: &Peer,
    extra: &str,
    files: &[(&str, &str)],
) -> (TestRelay, String) {
    let port = common::free_port();
    let relay = TestRelay::start_with_files(
        &format!(
            r#"
[studio]
enabled = true
listen = "127.0.0.1:{port}"
{extra}

[destinations.slack]
kind = "slack"
url = "{}"
rate_limit = "unlimited"

[destinations.console]
kind = "console"

[[routes]]
match = {{ kind = ["alert.trigger"] }}
to = ["slack"]
"#,
            peer.url("/slack")
        ),
        files,
    )
    .await;
    let url = format!("http://127.0.0.1:{port}");
    let http = common::client();
    common::eventually("the studio listens", async || {
        http.get(format!("{url}/"))
            .send()
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    (relay, url)
}

/// GETs `url` and reads its JSON answer.
async fn get_json(url: &str) -> Value {
    let text = common::client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The page's CSRF token.
async fn token(url: &str) -> String {
    let page = common::client()
        .get(format!("{url}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = page.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    page[start..start + 64].to_owned()
}

async fn post(url: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut request = common::client()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The studio's handler alone, without a socket: a request in, an answer out (as axum's
/// `oneshot` tests do). Its relay and store are real.
struct Oneshot {
    studio: alert_relay::studio::Studio,
    _dir: tempfile::TempDir,
}

impl Oneshot {
    fn new(peer: &Peer) -> Self {
        Self::with(peer, "")
    }

    /// The studio of a relay with a Slack webhook at `peer` and `extra` on its table.
    fn with(peer: &Peer, extra: &str) -> Self {
        let dir = common::config_dir(
            &format!(
                "[studio]\nenabled = true\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n{extra}",
                peer.url("/slack")
            ),
            &[],
        );
        let config = alert_relay::config::Config::load(&dir.path().join("config.toml")).unwrap();
        let live = std::sync::Arc::new(alert_relay::relay::Live::new(config.relay().unwrap()));
        let outbox = alert_relay::outbox::Outbox::open(&dir.path().join("store.db")).unwrap();
        let studio = alert_relay::studio::Studio::new(
            &config.studio,
            &config.base_dir,
            live,
            std::sync::Arc::new(outbox),
            std::sync::Arc::new(alert_relay::noise::Silences::default()),
            std::sync::Arc::new(alert_relay::memory::Memory::new(1024 * 1024)),
        )
        .unwrap();
        Self { studio, _dir: dir }
    }

    /// The answer to `method path` with `headers` and `body`: its status, headers and body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, hyper::HeaderMap, String) {
        use alert_relay::server::Handler;
        use http_body_util::BodyExt;
        let mut request = hyper::Request::builder().method(method).uri(path);
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request = request.header("host", "127.0.0.1:8081");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(alert_relay::http::Body::from(body.to_owned()))
            .unwrap();
        let answer = self
            .studio
            .handle(request, ([127, 0, 0, 1], 50000).into())
            .await;
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
        let (status, _, text) = self.call("POST", path, headers, &body.to_string()).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The page's CSRF token.
    async fn token(&self) -> String {
        let (_, _, page) = self.call("GET", "/", &[], "").await;
        let start = page.find("name=\"csrf-token\" content=\"").unwrap() + 27;
        page[start..start + 64].to_owned()
    }
}

/// Send test takes its turn in the destination's pace as a delivery does: a destination paced at
/// one message a minute takes one test message, and the next is refused with when it may go.
#[tokio::test]
async fn send_test_keeps_the_destinations_pace() {
    let peer = Peer::start().await;
    let studio = Oneshot::with(&peer, "rate_limit = \"1/m\"\n");
    let token = studio.token().await;
    let send = json!({
        "event": sample("alert_trigger.json"),
        "template": "slack/default.hbs",
        "text": "{\"text\": \"test\"}",
        "destination": "slack",
    });
    let headers = [("x-csrf-token", token.as_str())];
    let (status, answer) = studio.post("/api/send", &headers, &send).await;
    assert_eq!(
        (status, answer["ok"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(peer.next().await.json()["text"], "test");
    for _ in 0..5 {
        let (status, answer) = studio.post("/api/send", &headers, &send).await;
        assert_eq!(status, 429, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("paced"),
            "{answer}"
        );
    }
    assert!(
        peer.next_within(std::time::Duration::from_millis(300))
            .await
            .is_none()
    );
}

/// A preview renders off the threads that serve requests: while large previews render one after
/// another, posts to the ingest port are answered at once (they waited for each whole render when
/// previews ran on those threads). One thread serves everything here, so that a render holding it
/// would show.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn previews_do_not_hold_up_ingest() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(&peer, "").await;
    let token = token(&url).await;
    // 1,500 agents, and a template that walks them 1,500 times: a render of seconds.
    let mut event: Value = serde_json::from_str(&sample("alert_trigger.json")).unwrap();
    let agent = event["alert"]["agents"][0].clone();
    event["alert"]["agents"] = Value::Array(vec![agent; 1500]);
    let edit = json!({
        "event": event.to_string(),
        "template": "console/default.hbs",
        "text": "{{#each alert.agents}}{{#each ../alert.agents}}.{{/each}}{{/each}}",
    });
    let previews = tokio::spawn({
        let url = url.clone();
        async move {
            let started = tokio::time::Instant::now();
            for _ in 0..3 {
                let (status, answer) =
                    post(&url, "/api/render", &[("x-csrf-token", &token)], &edit).await;
                assert_eq!(status, 200, "{answer}");
            }
            started.elapsed()
        }
    });
    let mut slowest = std::time::Duration::ZERO;
    let mut posts = 0;
    while !previews.is_finished() {
        let body = sample("webhook_test.json").replace("1415733887743", &format!("p-{posts}"));
        let started = tokio::time::Instant::now();
        assert_eq!(relay.post(&body).await.0, 200);
        slowest = slowest.max(started.elapsed());
        posts += 1;
    }
    let rendering = previews.await.unwrap();
    eprintln!(
        "{posts} posts while previews rendered for {rendering:?}; the slowest took {slowest:?}"
    );
    assert!(posts >= 3, "{posts} posts in {rendering:?}");
    assert!(
        slowest * 4 < rendering,
        "a post took {slowest:?} while previews rendered for {rendering:?}"
    );
    relay.stop().await;
}

/// DNS rebinding: a web page points a name of its own at the studio's address; its requests carry
/// that name. They get no page, no token and no data; the studio's own addresses work.
#[tokio::test]
async fn a_request_for_another_host_gets_nothing() {
    let peer = Peer::start().await;
    let studio = Oneshot::new(&peer);
    let token = studio.token().await;
    for host in [
        "attacker.example",
        "attacker.example:8081",
        "127.0.0.1.attacker.example:8081",
        "127.0.0.1:9999",
        "localhost:9999",
    ] {
        for path in [
            "/",
            "/studio.js",
            "/api/catalog",
            "/api/event?id=sample:thousandeyes/alert_trigger.json",
            "/api/template?id=slack/default.hbs",
        ] {
            let (status, _, body) = studio.call("GET", path, &[("host", host)], "").await;
            assert_eq!(status, 403, "{host}{path}: {body}");
            assert!(
                !body.contains(&token) && !body.contains("Default Page Load"),
                "{body}"
            );
        }
        let edit = json!({ "event": sample("alert_trigger.json"), "template": "slack/default.hbs", "text": "{}" });
        let (status, _, _) = studio
            .call(
                "POST",
                "/api/render",
                &[("host", host), ("x-csrf-token", &token)],
                &edit.to_string(),
            )
            .await;
        assert_eq!(status, 403, "{host}");
    }
    for host in [
        "127.0.0.1:8081",
        "localhost:8081",
        "[::1]:8081",
        "LOCALHOST:8081",
    ] {
        assert_eq!(
            studio
                .call("GET", "/api/catalog", &[("host", host)], "")
                .await
                .0,
            200,
            "{host}"
        );
    }
}

#[tokio::test]
async fn the_api_refuses_requests_from_elsewhere_and_paths_outside_the_tree() {
    let peer = Peer::start().await;
    let studio = Oneshot::new(&peer);
    let token = studio.token().await;
    let edit = json!({
        "event": sample("alert_trigger.json"),
        "template": "slack/default.hbs",
        "text": "{\"text\": \"hi {{summary.title}}\"}",
    });
    // No token, a wrong one, or another origin: 403, whatever the endpoint.
    for path in ["/api/render", "/api/save", "/api/send"] {
        assert_eq!(studio.post(path, &[], &edit).await.0, 403, "{path}");
        assert_eq!(
            studio
                .post(path, &[("x-csrf-token", "0000")], &edit)
                .await
                .0,
            403
        );
        let foreign = [
            ("x-csrf-token", token.as_str()),
            ("origin", "https://evil.example"),
        ];
        assert_eq!(studio.post(path, &foreign, &edit).await.0, 403);
        let cross = [
            ("x-csrf-token", token.as_str()),
            ("sec-fetch-site", "cross-site"),
        ];
        assert_eq!(studio.post(path, &cross, &edit).await.0, 403);
    }
    // The token, which a page opened before a restart fetches again: to the page only.
    let (status, _, answer) = studio
        .call(
            "GET",
            "/api/token",
            &[("sec-fetch-site", "same-origin")],
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["csrf"],
        token
    );
    for elsewhere in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let (status, _, answer) = studio.call("GET", "/api/token", &[elsewhere], "").await;
        assert_eq!(status, 403, "{elsewhere:?}");
        assert!(!answer.contains(&token));
    }
    let ok = [("x-csrf-token", token.as_str())];
    let (status, answer) = studio.post("/api/render", &ok, &edit).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["previews"]["slack"]["message"]["json"]["text"],
        "hi Default Page Load Alert Rule on http://www.thousandeyes111.com"
    );
    assert_eq!(answer["context"]["summary"]["alert_id"], "35541");
    // Saving is off unless [studio] write = true.
    let (status, answer) = studio.post("/api/save", &ok, &edit).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("write = true"));
    // A template is named from the relay's own list: nothing else becomes a path.
    for name in [
        "../../../etc/passwd",
        "/etc/passwd",
        "slack/../../x.hbs",
        "slack/default.txt.hbs",
    ] {
        let bad = json!({ "event": "{}", "template": name, "text": "x" });
        assert_eq!(studio.post("/api/render", &ok, &bad).await.0, 400, "{name}");
        let path = format!("/api/template?id={}", name.replace('/', "%2F"));
        assert_eq!(studio.call("GET", &path, &[], "").await.0, 404, "{name}");
    }
    // A request over the API's bound is refused before it is read whole.
    let huge = "x".repeat(alert_relay::studio::MAX_REQUEST_BYTES + 1);
    let (status, _, answer) = studio.call("POST", "/api/render", &ok, &huge).await;
    assert_eq!(status, 413, "{answer}");
    // Strict headers on every answer.
    let (_, headers, _) = studio.call("GET", "/", &[], "").await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
}

#[tokio::test]
async fn the_studio_lists_recent_events_and_sends_a_test() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(&peer, "").await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    peer.next().await;
    let catalog = get_json(&format!("{url}/api/catalog")).await;
    let recent = catalog["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"].as_str().unwrap().starts_with("recent:"))
        .expect("the accepted event is offered");
    // Labelled by what it is: its kind and title.
    assert!(
        (recent["label"].as_str().unwrap()).ends_with(
            ": alert.trigger Default Page Load Alert Rule on http://www.thousandeyes111.com"
        ),
        "{recent}"
    );
    let event = get_json(&format!(
        "{url}/api/event?id={}",
        recent["id"].as_str().unwrap()
    ))
    .await;
    assert!(
        event["json"]
            .as_str()
            .unwrap()
            .contains("\"alertId\": 35541")
    );
    assert!(
        catalog["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "email/alert.clear.subject.hbs" && t["file"] == false)
    );

    let token = token(&url).await;
    let send = json!({
        "event": sample("alert_trigger.json"),
        "template": "slack/default.hbs",
        "text": "{\"text\": \"test from the studio\"}",
        "destination": "slack",
    });
    let (status, answer) = post(&url, "/api/send", &[("x-csrf-token", &token)], &send).await;
    assert_eq!(
        (status, answer["ok"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(peer.next().await.json()["text"], "test from the studio");
    relay.stop().await;
}

#[tokio::test]
async fn a_stored_event_is_read_again_by_the_source_that_accepted_it() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(
        &peer,
        "[sources.prom]\nkind = \"alertmanager\"\npath = \"/am\"\n\n[sources.te]\nkind = \"thousandeyes\"\npath = \"/\"",
    )
    .await;
    let resolved = common::sample_at("alertmanager/resolved.json");
    assert_eq!(relay.post_to("/am", &resolved).await.0, 200);
    let catalog = get_json(&format!("{url}/api/catalog")).await;
    let recent = catalog["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"].as_str().unwrap().starts_with("recent:"))
        .expect("the accepted alert is offered");
    assert!(
        (recent["label"].as_str().unwrap())
            .ends_with(": alert.clear HighLatency: p99 latency above 500 ms"),
        "{recent}"
    );
    let event = get_json(&format!(
        "{url}/api/event?id={}",
        recent["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(event["source"], "prom");
    let edit = json!({
        "event": event["json"],
        "source": event["source"],
        "template": "slack/default.hbs",
        "text": "{\"text\": \"{{source.name}} {{summary.title}} {{summary.state}}\"}",
    });
    let token = token(&url).await;
    let (status, answer) = post(&url, "/api/render", &[("x-csrf-token", &token)], &edit).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["previews"]["slack"]["message"]["json"]["text"],
        "prom HighLatency: p99 latency above 500 ms cleared",
        "{answer}"
    );
    relay.stop().await;
}

#[test]
fn a_studio_off_loopback_needs_auth() {
    let dir = common::config_dir(
        "[studio]\nenabled = true\nlisten = \"0.0.0.0:18081\"\n[destinations.console]\nkind = \"console\"\n",
        &[],
    );
    let (ok, out) = common::command(dir.path(), &["check"]);
    assert!(!ok);
    assert!(
        out.contains(
            "studio.auth: is required when studio.listen (0.0.0.0:18081) is not a loopback address"
        ),
        "{out}"
    );
}

/// The previews show what each kind really sends and to whom: the Teams envelope with the
/// correlation the relay puts in it, a message named for the configured destination of its
/// kind, the verdict naming the files used by their place in the tree.
#[tokio::test]
async fn the_previews_show_what_is_sent_and_to_whom() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(&peer, "").await;
    let token = token(&url).await;
    let edit = json!({
        "event": sample("alert_trigger.json"),
        "source": "thousandeyes",
        "template": "console/default.hbs",
        "text": "to {{destination.name}}",
    });
    let (status, answer) = post(&url, "/api/render", &[("x-csrf-token", &token)], &edit).await;
    assert_eq!(status, 200, "{answer}");
    let previews = &answer["previews"];
    assert_eq!(previews["console"]["message"]["text"], "to console");
    assert_eq!(
        previews["teams"]["message"]["sent"]["correlation"],
        json!({ "key": "35541", "state": "triggered" })
    );
    assert_eq!(
        previews["teams"]["message"]["sent"]["attachments"][0]["content"],
        previews["teams"]["message"]["json"]
    );
    assert_eq!(
        previews["console"]["templates"],
        json!(["console/default.hbs"])
    );
    assert_eq!(
        previews["slack"]["templates"],
        json!(["built-in slack/default.hbs"])
    );
    relay.stop().await;
}
