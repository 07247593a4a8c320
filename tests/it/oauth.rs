//! The relay's own OAuth server, end to end over HTTP, as ThousandEyes and an operator's browser
//! use it: authorize, sign in, consent, redirect with a token or a code, the token endpoint, the
//! token posting events, and every refusal; on a relay process whose logs are then searched for
//! every secret, code and token.

use std::path::Path;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, LOCATION};
use serde_json::Value;

use crate::common;
use common::{ChildRelay, Peer, Reply, command, relay_logs, sample};

const TE_CALLBACK: &str = "https://app.thousandeyes.com/webhooks-oauth-callback/";
const CLIENT_SECRET: &str = "te-client-SeCrEt-4242";
const CUSTOM_SECRET: &str = "custom-client-SeCrEt-9191";
const OPERATOR_PASSWORD: &str = "operator-PaSsWoRd-77";

fn config(peer: &Peer) -> String {
    format!(
        r#"
[log]
level = "debug"

[server.auth.oauth]
clients = [
  {{ id = "thousandeyes", secret = "{CLIENT_SECRET}" }},
  {{ id = "custom", secret_file = "custom-secret", redirect_uris = ["https://hooks.example.com/cb?team=net"] }},
  {{ id = "no-secret" }},
]
operators = [
  {{ username = "alice", password = "{OPERATOR_PASSWORD}" }},
  {{ username = "bob", password = "bob-PaSsWoRd-12" }},
]

[destinations.hook]
kind = "webhook"
url = "{}"
"#,
        peer.url("/hook")
    )
}

struct Flow {
    relay: ChildRelay,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Flow {
    async fn start(peer: &Peer) -> Flow {
        let dir = common::config_dir(
            &config(peer),
            &[("custom-secret", &format!("{CUSTOM_SECRET}\n"))],
        );
        let relay = ChildRelay::start(dir.path()).await;
        Flow {
            relay,
            http: common::client(),
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.relay.addr)
    }

    async fn authorize(&self, query: &str, operator: Option<(&str, &str)>) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.url(&format!("/oauth/authorize?{query}")));
        if let Some((user, password)) = operator {
            request = request.basic_auth(user, Some(password));
        }
        request.send().await.unwrap()
    }

    /// The consent form's signed value, from the page shown to `operator`.
    async fn consent(&self, query: &str, operator: (&str, &str)) -> String {
        let page = self.authorize(query, Some(operator)).await;
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("<strong>"), "{html}");
        let value = html
            .split("name=\"consent\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the consent form");
        value.to_owned()
    }

    async fn decide(
        &self,
        consent: &str,
        decision: &str,
        operator: (&str, &str),
    ) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/authorize"))
            .basic_auth(operator.0, Some(operator.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("consent", consent), ("decision", decision)]))
            .send()
            .await
            .unwrap()
    }

    async fn token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value, String) {
        let mut request = self
            .http
            .post(self.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(self::form(form));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let cache = response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap(), cache)
    }

    async fn post_event(&self, token: Option<&str>) -> u16 {
        self.post_event_answer(token).await.status().as_u16()
    }

    async fn post_event_answer(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/"))
            .header("content-type", "application/json")
            .body(
                sample("alert_trigger.json")
                    .replace("49-35541", &format!("oauth-{}", rand_suffix())),
            );
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut encoder = url::form_urlencoded::Serializer::new(String::new());
    encoder.extend_pairs(pairs);
    encoder.finish()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

const ALICE: (&str, &str) = ("alice", OPERATOR_PASSWORD);

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// `name`'s value in the `&`-separated pairs after `separator` in `location`.
fn pair(location: &str, separator: char, name: &str) -> Option<String> {
    let (_, pairs) = location.split_once(separator)?;
    url::form_urlencoded::parse(pairs.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn thousandeyes_gets_a_token_through_consent_and_posts_with_it_until_revoked() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Status(200, "ok"));
    let flow = Flow::start(&peer).await;
    let query = format!(
        "response_type=token&client_id=thousandeyes&redirect_uri={}&state=te-state-1",
        url::form_urlencoded::byte_serialize(TE_CALLBACK.as_bytes()).collect::<String>()
    );

    // No operator, a wrong password: a Basic challenge, no consent.
    let refused = flow.authorize(&query, None).await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        flow.authorize(&query, Some(("alice", "wrong")))
            .await
            .status(),
        401
    );

    let consent = flow.consent(&query, ALICE).await;
    let approved = flow.decide(&consent, "approve", ALICE).await;
    assert_eq!(approved.status(), 303);
    let to = location(&approved);
    assert!(to.starts_with(&format!("{TE_CALLBACK}#")), "{to}");
    assert_eq!(pair(&to, '#', "token_type").as_deref(), Some("Bearer"));
    assert_eq!(pair(&to, '#', "state").as_deref(), Some("te-state-1"));
    assert_eq!(
        pair(&to, '#', "expires_in").as_deref(),
        Some("31536000"),
        "a year by default"
    );
    let token = pair(&to, '#', "access_token").expect("a token in the fragment");

    assert_eq!(
        flow.post_event(None).await,
        401,
        "the ingest path wants a credential now"
    );
    assert_eq!(flow.post_event(Some("not-a-token")).await, 401);
    assert_eq!(flow.post_event(Some(&token)).await, 200);
    assert_eq!(peer.next().await.status, 200, "the event went on");

    let (ok, listed) = command(flow.dir.path(), &["tokens"]);
    assert!(ok, "{listed}");
    let line = listed
        .lines()
        .find(|l| l.contains("thousandeyes"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("alice") && line.contains("implicit") && line.ends_with("active"),
        "{line}"
    );
    assert!(!listed.contains(&token), "the list shows ids, not tokens");
    let id = line.split_whitespace().next().unwrap();

    let (ok, said) = command(flow.dir.path(), &["tokens", "revoke", id]);
    assert!(ok, "{said}");
    let refused = flow.post_event_answer(Some(&token)).await;
    assert_eq!(refused.status(), 401, "refused from the next request on");
    // RFC 6750 3.1: a client with a refused token is told it is the token.
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("Bearer realm=\"alert-relay\", error=\"invalid_token\""),
        "{challenge}"
    );
    let without = flow.post_event_answer(None).await;
    assert!(
        !without.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error="),
        "no error code when no token was sent (RFC 6750 3.1)"
    );
    let (ok, _) = command(flow.dir.path(), &["tokens", "revoke", id]);
    assert!(!ok, "revoked once");
    let (_, listed) = command(flow.dir.path(), &["tokens"]);
    assert!(listed.contains("revoked "), "{listed}");

    // Denying goes back with access_denied and the state.
    let consent = flow.consent(&query, ALICE).await;
    let denied = location(&flow.decide(&consent, "deny", ALICE).await);
    assert_eq!(
        pair(&denied, '#', "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(pair(&denied, '#', "state").as_deref(), Some("te-state-1"));

    assert_no_secret_in_logs(flow.dir.path(), &[&token, CLIENT_SECRET, OPERATOR_PASSWORD]);
}

#[tokio::test]
async fn a_code_is_exchanged_once_by_the_authenticated_client() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Status(200, "ok"));
    let flow = Flow::start(&peer).await;
    let callback = "https://hooks.example.com/cb?team=net";
    // Without state (custom webhooks fail on servers that require one), and without
    // redirect_uri: the client has one.
    let consent = flow
        .consent("response_type=code&client_id=custom", ALICE)
        .await;
    let to = location(&flow.decide(&consent, "approve", ALICE).await);
    assert!(to.starts_with(&format!("{callback}&code=")), "{to}");
    assert!(pair(&to, '?', "state").is_none());
    let code = pair(&to, '?', "code").unwrap();

    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", callback),
    ];
    let (status, answer, _) = flow
        .token(&exchange, Some(("custom", "wrong-secret")))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, answer, cache) = flow.token(&exchange, Some(("custom", CUSTOM_SECRET))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(cache, "no-store");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    assert_eq!(flow.post_event(Some(&token)).await, 200);

    let (status, answer, _) = flow.token(&exchange, Some(("custom", CUSTOM_SECRET))).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "a code is used once"
    );

    // Another client's code, or the code with another redirect_uri.
    let consent = flow
        .consent("response_type=code&client_id=custom", ALICE)
        .await;
    let code = pair(
        &location(&flow.decide(&consent, "approve", ALICE).await),
        '?',
        "code",
    )
    .unwrap();
    let (status, answer, _) = flow
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "https://evil.example/cb"),
            ],
            Some(("custom", CUSTOM_SECRET)),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Client credentials, the client authenticated in the form.
    let (status, answer, _) = flow
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "thousandeyes"),
                ("client_secret", CLIENT_SECRET),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(flow.post_event(answer["access_token"].as_str()).await, 200);
    let (status, answer, _) = flow
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "thousandeyes"),
                ("client_secret", "nope"),
            ],
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, answer, _) = flow
        .token(
            &[("grant_type", "password")],
            Some(("thousandeyes", CLIENT_SECRET)),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    assert_no_secret_in_logs(
        flow.dir.path(),
        &[&token, &code, CUSTOM_SECRET, CLIENT_SECRET],
    );
}

/// A client-credentials token for `client` with `secret`.
async fn client_token(flow: &Flow, client: &str, secret: &str) -> (u16, Value) {
    let (status, answer, _) = flow
        .token(
            &[("grant_type", "client_credentials")],
            Some((client, secret)),
        )
        .await;
    (status, answer)
}

/// A token is valid only while its client is configured with the secret it was issued under: a
/// rotated secret, or a client removed by a reload, ends its tokens at once.
#[tokio::test]
async fn tokens_end_with_their_clients_secret_or_their_client() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Status(200, "ok"));
    let flow = Flow::start(&peer).await;
    let (_, answer) = client_token(&flow, "custom", CUSTOM_SECRET).await;
    let custom = answer["access_token"].as_str().unwrap().to_owned();
    let (_, answer) = client_token(&flow, "thousandeyes", CLIENT_SECRET).await;
    let thousandeyes = answer["access_token"].as_str().unwrap().to_owned();
    assert_eq!(flow.post_event(Some(&custom)).await, 200);
    assert_eq!(flow.post_event(Some(&thousandeyes)).await, 200);

    // The custom client's secret is rotated (secret files are read again on SIGHUP).
    std::fs::write(
        flow.dir.path().join("custom-secret"),
        "custom-client-NeW-SeCrEt-1\n",
    )
    .unwrap();
    flow.relay.signal("HUP");
    common::eventually("the rotated secret's tokens refused", async || {
        match flow.post_event(Some(&custom)).await {
            401 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert_eq!(
        flow.post_event(Some(&thousandeyes)).await,
        200,
        "not another client's"
    );
    let (status, answer) = client_token(&flow, "custom", "custom-client-NeW-SeCrEt-1").await;
    assert_eq!(status, 200, "{answer}");
    let renewed = answer["access_token"].as_str().unwrap().to_owned();
    assert_eq!(flow.post_event(Some(&renewed)).await, 200);

    // The thousandeyes client is removed from the config.
    let config = std::fs::read_to_string(flow.dir.path().join("config.toml")).unwrap();
    let without = config.replace(
        &format!("  {{ id = \"thousandeyes\", secret = \"{CLIENT_SECRET}\" }},\n"),
        "",
    );
    assert_ne!(config, without);
    std::fs::write(flow.dir.path().join("config.toml"), without).unwrap();
    common::eventually("the removed client's tokens refused", async || {
        match flow.post_event(Some(&thousandeyes)).await {
            401 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert_eq!(flow.post_event(Some(&renewed)).await, 200);
}

/// Guessing a client secret or an operator's password is slowed: after 10 failures in a minute
/// for a client (or an operator, or from an address) it is refused with 429, right or wrong, and
/// each refusal is logged; a consent form is answered once.
#[tokio::test]
async fn guessing_is_throttled_and_a_consent_is_answered_once() {
    let peer = Peer::start().await;
    let flow = Flow::start(&peer).await;
    let query = &format!(
        "response_type=token&client_id=thousandeyes&redirect_uri={}",
        url::form_urlencoded::byte_serialize(TE_CALLBACK.as_bytes()).collect::<String>()
    );
    // A consent form, answered twice: one token.
    let consent = flow.consent(query, ALICE).await;
    assert_eq!(flow.decide(&consent, "approve", ALICE).await.status(), 303);
    let again = flow.decide(&consent, "approve", ALICE).await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already answered"));

    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(client_token(&flow, "custom", &format!("guess-{i}")).await.0);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 2], "{statuses:?}");
    let (status, answer) = client_token(&flow, "custom", CUSTOM_SECRET).await;
    assert_eq!(status, 429, "the right secret waits too: {answer}");
    // Operators' passwords, by name (and by address: this one is refused already).
    for _ in 0..10 {
        let status = flow.authorize(query, Some(("bob", "wrong"))).await.status();
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(
        flow.authorize(query, Some(("bob", "bob-PaSsWoRd-12")))
            .await
            .status(),
        429
    );
    let logs = relay_logs(flow.dir.path());
    assert!(
        logs.contains("refused an OAuth token request: unknown client or wrong secret")
            && logs.contains("refused an OAuth request: too many failed attempts"),
        "{logs}"
    );
    assert!(!logs.contains("guess-3"), "no secret presented is logged");
}

/// PKCE (RFC 7636) with S256: a code bound to a challenge is exchanged only with its verifier.
#[tokio::test]
async fn a_pkce_code_needs_its_verifier() {
    let peer = Peer::start().await;
    let flow = Flow::start(&peer).await;
    // RFC 7636 Appendix B's pair.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let query = format!(
        "response_type=code&client_id=custom&code_challenge={challenge}&code_challenge_method=S256"
    );
    let code_for = async |query: &str| {
        let consent = flow.consent(query, ALICE).await;
        let to = location(&flow.decide(&consent, "approve", ALICE).await);
        pair(&to, '?', "code").unwrap_or_else(|| panic!("{to}"))
    };
    let exchange = |code: &str, verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier.to_owned()));
        }
        form
    };
    let token = async |form: Vec<(&str, String)>| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, answer, _) = flow.token(&form, Some(("custom", CUSTOM_SECRET))).await;
        (status, answer["error"].as_str().unwrap_or("").to_owned())
    };

    let code = code_for(&query).await;
    for wrong in [None, Some("x".repeat(43).as_str())] {
        assert_eq!(
            token(exchange(&code, wrong)).await,
            (400, "invalid_grant".to_owned()),
            "{wrong:?}"
        );
    }
    assert_eq!(
        token(exchange(&code, Some("short"))).await,
        (400, "invalid_request".to_owned())
    );
    let (status, _) = token(exchange(&code, Some(verifier))).await;
    assert_eq!(status, 200, "the right verifier, after the wrong ones");

    // A code without a challenge is not exchanged with a verifier.
    let code = code_for("response_type=code&client_id=custom").await;
    assert_eq!(
        token(exchange(&code, Some(verifier))).await,
        (400, "invalid_grant".to_owned())
    );

    // Only S256: plain (the default method) goes back as invalid_request.
    for method in ["&code_challenge_method=plain", ""] {
        let refused = flow
            .authorize(
                &format!("response_type=code&client_id=custom&code_challenge={challenge}{method}"),
                Some(ALICE),
            )
            .await;
        let to = location(&refused);
        assert_eq!(
            pair(&to, '?', "error").as_deref(),
            Some("invalid_request"),
            "{to}"
        );
    }
}

#[tokio::test]
async fn bad_authorization_requests_are_refused_without_redirecting() {
    let peer = Peer::start().await;
    let flow = Flow::start(&peer).await;
    // A redirect_uri that is not the client's, even by a slash: a page, never a redirect.
    for query in [
        "response_type=token&client_id=thousandeyes&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
        "response_type=token&client_id=thousandeyes&redirect_uri=https%3A%2F%2Fapp.thousandeyes.com%2Fwebhooks-oauth-callback",
        "response_type=token&client_id=thousandeyes",
        "response_type=token&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    ] {
        let response = flow.authorize(query, Some(ALICE)).await;
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.headers().get(LOCATION).is_none(), "{query}");
    }
    let te = format!(
        "client_id=thousandeyes&redirect_uri={}",
        url::form_urlencoded::byte_serialize(TE_CALLBACK.as_bytes()).collect::<String>()
    );
    let wrong_type = location(
        &flow
            .authorize(&format!("response_type=id_token&{te}"), Some(ALICE))
            .await,
    );
    assert_eq!(
        pair(&wrong_type, '?', "error").as_deref(),
        Some("unsupported_response_type")
    );
    let no_secret = location(&flow.authorize("response_type=code&client_id=no-secret&redirect_uri=https%3A%2F%2Fapp.thousandeyes.com%2Fwebhooks-oauth-callback%2F", Some(ALICE)).await);
    assert_eq!(
        pair(&no_secret, '?', "error").as_deref(),
        Some("unauthorized_client")
    );

    // A consent shown to alice cannot be approved by bob, nor changed.
    let consent = flow
        .consent(&format!("response_type=token&{te}"), ALICE)
        .await;
    assert_eq!(
        flow.decide(&consent, "approve", ("bob", "bob-PaSsWoRd-12"))
            .await
            .status(),
        400
    );
    let mut forged = consent.clone();
    forged.insert(forged.len() / 2, 'x');
    assert_eq!(flow.decide(&forged, "approve", ALICE).await.status(), 400);
    assert_eq!(
        flow.decide(&consent, "approve", ("alice", "wrong"))
            .await
            .status(),
        401
    );
    // The server keeps serving.
    assert_eq!(
        flow.http
            .get(flow.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn check_refuses_an_oauth_server_no_one_could_use() {
    for (oauth, problem) in [
        (
            "clients = [{ id = \"te\" }]\n",
            "server.auth.oauth.operators: name at least one: client \"te\" has no secret",
        ),
        (
            "clients = []\n",
            "server.auth.oauth.clients: name at least one client",
        ),
        (
            "clients = [{ id = \"te\", secret = \"s\", redirect_uris = [\"app.example.com/cb\"] }]\n",
            "server.auth.oauth.clients[0].redirect_uris: \"app.example.com/cb\" is not an absolute http(s) URL",
        ),
    ] {
        let dir = common::config_dir(
            &format!("[server.auth.oauth]\n{oauth}\n[destinations.out]\nkind = \"console\"\n"),
            &[],
        );
        let (ok, out) = command(dir.path(), &["check"]);
        assert!(!ok, "{oauth}");
        assert!(out.contains(problem), "{oauth}\n{out}");
    }
}

fn assert_no_secret_in_logs(dir: &Path, secrets: &[&str]) {
    let logs = relay_logs(dir);
    assert!(
        logs.contains("issued an OAuth token"),
        "the logs say what happened:\n{logs}"
    );
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} is in the logs:\n{logs}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(!logs.contains(&encoded), "{secret} (base64) is in the logs");
    }
}
