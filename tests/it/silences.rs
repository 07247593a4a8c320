//! Silences over HTTP on the studio's listener: added, listed, previewed against the events the
//! store keeps and expired, acting on what the relay sends; refused with why when they cannot
//! be, or when a page of another site asks; behind the studio's auth. The page itself is tested
//! in a browser in `studio_page.rs`.

use serde_json::{Value, json};

use crate::common;
use crate::noise::alert;
use crate::studio::studio_relay;
use common::Peer;

/// `method path` on the studio at `url`, with `headers` and `body`: the status and JSON answer.
pub async fn call(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, Value) {
    let mut request = common::client().request(method.parse().unwrap(), format!("{url}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("the studio answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, answer)
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn add(url: &str, silence: Value) -> (u16, Value) {
    call(
        url,
        "POST",
        "/api/silences",
        &[JSON],
        Some(silence.to_string()),
    )
    .await
}

/// The next request the Slack webhook peer received: the test its message names.
async fn next_test(peer: &Peer) -> String {
    let message = peer.next().await.json();
    let text = message["text"].as_str().unwrap_or_default().to_owned();
    text.rsplit(" on ").next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_silence_added_over_http_holds_its_alerts_until_it_is_expired() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(&peer, "").await;
    assert_eq!(relay.post(&alert("TRIGGER", "1", "checkout")).await.0, 200);
    assert_eq!(relay.post(&alert("TRIGGER", "2", "search")).await.0, 200);
    let mut seen = vec![next_test(&peer).await, next_test(&peer).await];
    seen.sort();
    assert_eq!(seen, ["checkout", "search"]);

    // What a silence would have matched, among the events the store keeps.
    let (status, preview) = call(
        &url,
        "GET",
        "/api/silences/preview?match=test%3Dcheckout",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        (preview["checked"].as_u64(), preview["matched"].as_u64()),
        (Some(2), Some(1)),
        "{preview}"
    );
    assert_eq!(preview["events"][0]["title"], "Latency on checkout");
    assert_eq!(preview["events"][0]["id"], "TRIGGER-1");

    let (status, silence) = add(
        &url,
        json!({"matchers": ["test=checkout"], "duration": "1h", "comment": "deploy", "created_by": "ana"}),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["state"], "active");
    assert_eq!(silence["matchers"], json!(["test=checkout"]));
    let id = silence["id"].as_str().unwrap().to_owned();
    let (status, listed) = call(&url, "GET", "/api/silences", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["silences"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["silences"][0]["created_by"], "ana");

    // Held: stored, counted, not sent; what it does not match goes out.
    assert_eq!(relay.post(&alert("TRIGGER", "3", "checkout")).await.0, 200);
    common::eventually("the event is counted as silenced", async || {
        let (_, metrics) = relay.get("/metrics").await;
        match metrics.contains("alert_relay_events_silenced_total{by=\"silence\"} 1") {
            true => Ok(()),
            false => Err(metrics),
        }
    })
    .await;
    assert_eq!(relay.post(&alert("TRIGGER", "4", "search")).await.0, 200);
    assert_eq!(
        next_test(&peer).await,
        "search",
        "the silenced trigger was not sent"
    );

    // Expired: the trigger it held, still firing, goes out now.
    let (status, expired) = call(&url, "DELETE", &format!("/api/silences/{id}"), &[], None).await;
    assert_eq!(
        (status, &expired["state"]),
        (200, &json!("expired")),
        "{expired}"
    );
    assert_eq!(next_test(&peer).await, "checkout");
    let (status, again) = call(&url, "DELETE", &format!("/api/silences/{id}"), &[], None).await;
    assert_eq!(status, 404, "{again}");
    let (_, listed) = call(&url, "GET", "/api/silences", &[], None).await;
    assert_eq!(listed["silences"], json!([]));
    let (_, all) = call(&url, "GET", "/api/silences?all=true", &[], None).await;
    assert_eq!(all["silences"][0]["state"], "expired", "{all}");
    relay.stop().await;
}

/// A request (method, path, headers, body) and the status and words of its refusal.
type Refusal<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<String>,
    u16,
    &'a str,
);

#[tokio::test]
async fn the_silences_api_refuses_with_why() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(&peer, "").await;
    let good = json!({"matchers": ["test=checkout"], "duration": "1h", "comment": "deploy"});
    let cases: Vec<Refusal> = vec![
        (
            "POST",
            "/api/silences",
            vec![("content-type", "text/plain")],
            Some(good.to_string()),
            415,
            "Content-Type: application/json",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON, ("origin", "http://evil.example")],
            Some(good.to_string()),
            403,
            "from the studio's own pages",
        ),
        (
            "DELETE",
            "/api/silences/abc",
            vec![("sec-fetch-site", "cross-site")],
            None,
            403,
            "from the studio's own pages",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some("{not json".into()),
            400,
            "not JSON",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some(json!({"matchers": ["colour=red"], "duration": "1h", "comment": "x"}).to_string()),
            422,
            "unknown field \"colour\"",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some(json!({"matchers": ["test=a"], "comment": "x"}).to_string()),
            422,
            "give duration",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some(json!({"matchers": ["test=a"], "duration": "soon", "comment": "x"}).to_string()),
            422,
            "duration: \"soon\" is not a duration",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some(json!({"matchers": ["test=a"], "duration": "1h", "comment": " "}).to_string()),
            422,
            "needs a comment",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some(json!({"matchers": [], "duration": "1h", "comment": "x"}).to_string()),
            422,
            "at least one matcher",
        ),
        (
            "POST",
            "/api/silences",
            vec![JSON],
            Some(
                json!({"matchers": ["test=a"], "duration": "1h", "comment": "x", "until": "never"})
                    .to_string(),
            ),
            422,
            "unknown field `until`",
        ),
        (
            "GET",
            "/api/silences/preview?match=rule%3D~(",
            vec![],
            None,
            422,
            "regex",
        ),
        (
            "GET",
            "/api/silences/preview",
            vec![],
            None,
            422,
            "no matcher given",
        ),
        (
            "PUT",
            "/api/silences",
            vec![JSON],
            Some(good.to_string()),
            405,
            "not with this method",
        ),
        (
            "DELETE",
            "/api/silences/nosuch",
            vec![],
            None,
            404,
            "no silence with this id",
        ),
    ];
    for (method, path, headers, body, status, why) in cases {
        let (got, answer) = call(&url, method, path, &headers, body).await;
        assert_eq!(got, status, "{method} {path} {headers:?}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{method} {path}: {error}");
    }
    // Nothing was added, and the listener still serves.
    let (status, listed) = call(&url, "GET", "/api/silences?all=true", &[], None).await;
    assert_eq!((status, &listed["silences"]), (200, &json!([])));
    relay.stop().await;
}

#[tokio::test]
async fn the_silences_api_is_behind_the_studios_auth() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(
        &peer,
        "auth = [{ username = \"ops\", password = \"s3cret-pass\" }]",
    )
    .await;
    let (status, _) = call(&url, "GET", "/api/silences", &[], None).await;
    assert_eq!(status, 401);
    let good = json!({"matchers": ["test=a"], "duration": "1h", "comment": "x"});
    let (status, _) = add(&url, good.clone()).await;
    assert_eq!(status, 401);
    // ops:s3cret-pass
    let basic = ("authorization", "Basic b3BzOnMzY3JldC1wYXNz");
    let (status, silence) = call(
        &url,
        "POST",
        "/api/silences",
        &[JSON, basic],
        Some(good.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    relay.stop().await;
}
