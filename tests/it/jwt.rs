//! OAuth bearer JWTs, against a local JWKS server and a configured RSA key, all made here:
//! right, wrong, missing, expired, wrong-audience, wrong-issuer, wrong-key and disallowed-algorithm
//! tokens, and the key set's cache.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{Peer, Reply, TestRelay, sample};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "alert-relay";

struct Keys {
    ec: rcgen::KeyPair,
    other_ec: rcgen::KeyPair,
    rsa: rcgen::KeyPair,
}

fn keys() -> Keys {
    Keys {
        ec: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        other_ec: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        rsa: rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
    }
}

/// The JWKS document publishing `key` as `kid`.
fn jwks(key: &rcgen::KeyPair, kid: &str) -> String {
    // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
    let point = key.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
    .to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// `Authorization: Bearer …` with a valid ES256 token signed by `key` under `kid`.
fn es256_bearer(key: &rcgen::KeyPair, kid: &str) -> String {
    let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let token = token(
        Algorithm::ES256,
        Some(kid),
        &key,
        claims(ISSUER, AUDIENCE, now() + 600),
    );
    format!("Bearer {token}")
}

fn claims(iss: &str, aud: &str, exp: u64) -> serde_json::Value {
    json!({"iss": iss, "aud": aud, "exp": exp, "sub": "thousandeyes"})
}

async fn relay(jwks_peer: &Peer, keys: &Keys, refresh: &str) -> TestRelay {
    TestRelay::start_with_files(
        &format!(
            "[server.auth]\nbearer = [\"static-token\"]\n[server.auth.jwt]\njwks_url = \"{}\"\nkeys = [\"rsa.pem\"]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\"]\nrefresh = \"{refresh}\"\n[destinations.console]\nkind = \"console\"\n",
            jwks_peer.url("/.well-known/jwks.json")
        ),
        &[("rsa.pem", &keys.rsa.public_key_pem())],
    )
    .await
}

/// Makes `peer` publish `key` as `kid`.
fn publish(peer: &Peer, key: &rcgen::KeyPair, kid: &str) {
    peer.answer_by_default(Reply::Status(
        200,
        Box::leak(jwks(key, kid).into_boxed_str()),
    ));
}

/// A JWKS server publishing the EC key as `k1`, and a relay (`refresh` as given) that fetched it.
async fn relay_with_jwks(keys: &Keys, refresh: &str) -> (Peer, TestRelay) {
    let jwks_peer = Peer::start().await;
    publish(&jwks_peer, &keys.ec, "k1");
    let relay = relay(&jwks_peer, keys, refresh).await;
    assert_eq!(
        jwks_peer.next().await.path,
        "/.well-known/jwks.json",
        "fetched at start"
    );
    (jwks_peer, relay)
}

async fn post_with(relay: &TestRelay, authorization: Option<&str>, event_id: usize) -> u16 {
    let body = sample("webhook_test.json").replace("1415733887743", &format!("jwt-{event_id}"));
    let mut request = common::client()
        .post(relay.url("/"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_kind_of_token_gets_the_answer_it_deserves() {
    let keys = keys();
    let (jwks_peer, relay) = relay_with_jwks(&keys, "10m").await;

    let ec = EncodingKey::from_ec_pem(keys.ec.serialize_pem().as_bytes()).unwrap();
    let other_ec = EncodingKey::from_ec_pem(keys.other_ec.serialize_pem().as_bytes()).unwrap();
    let rsa = EncodingKey::from_rsa_pem(keys.rsa.serialize_pem().as_bytes()).unwrap();
    let hmac = EncodingKey::from_secret(b"a shared secret");
    let later = now() + 600;
    let bearer = |t: String| format!("Bearer {t}");
    let unsigned = {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(claims(ISSUER, AUDIENCE, later))
        )
    };
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        (
            "ES256 from the JWKS",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &ec,
                claims(ISSUER, AUDIENCE, later),
            ))),
            200,
        ),
        (
            "RS256 with the configured key",
            Some(bearer(token(
                Algorithm::RS256,
                None,
                &rsa,
                claims(ISSUER, AUDIENCE, later),
            ))),
            200,
        ),
        (
            "a static bearer token beside JWTs",
            Some("Bearer static-token".into()),
            200,
        ),
        (
            "expired",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &ec,
                claims(ISSUER, AUDIENCE, now() - 3600),
            ))),
            401,
        ),
        (
            "wrong audience",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &ec,
                claims(ISSUER, "another-app", later),
            ))),
            401,
        ),
        (
            "wrong issuer",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &ec,
                claims("https://evil.test/", AUDIENCE, later),
            ))),
            401,
        ),
        (
            "no expiry",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &ec,
                json!({"iss": ISSUER, "aud": AUDIENCE}),
            ))),
            401,
        ),
        (
            "not valid before an hour from now",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &ec,
                json!({"iss": ISSUER, "aud": AUDIENCE, "exp": later + 3600, "nbf": now() + 3600}),
            ))),
            401,
        ),
        (
            "signed by another key under k1",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k1"),
                &other_ec,
                claims(ISSUER, AUDIENCE, later),
            ))),
            401,
        ),
        (
            "a key id nobody published",
            Some(bearer(token(
                Algorithm::ES256,
                Some("k2"),
                &other_ec,
                claims(ISSUER, AUDIENCE, later),
            ))),
            401,
        ),
        (
            "HS256 is not allowed",
            Some(bearer(token(
                Algorithm::HS256,
                None,
                &hmac,
                claims(ISSUER, AUDIENCE, later),
            ))),
            401,
        ),
        ("alg none", Some(bearer(unsigned)), 401),
        ("garbage", Some("Bearer not.a.token".into()), 401),
        ("missing", None, 401),
    ];
    for (i, (case, authorization, status)) in cases.into_iter().enumerate() {
        assert_eq!(
            post_with(&relay, authorization.as_deref(), i).await,
            status,
            "{case}"
        );
    }
    // Cached: no other fetch, not even for the unknown key id right after the first fetch.
    assert!(
        jwks_peer
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "fetched again"
    );
    relay.stop().await;
}

#[tokio::test]
async fn the_key_set_is_refreshed_and_rotated_keys_are_accepted() {
    let keys = keys();
    let (jwks_peer, relay) = relay_with_jwks(&keys, "1s").await;
    // The provider rotates to a new key; tokens signed with it pass once the cache refreshes.
    publish(&jwks_peer, &keys.other_ec, "k2");
    let token = es256_bearer(&keys.other_ec, "k2");
    // Let the 1 s cache go stale: this wait is the behaviour under test, not a synchronization.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(post_with(&relay, Some(&token), 1).await, 200);
    assert_eq!(
        jwks_peer.next().await.path,
        "/.well-known/jwks.json",
        "refreshed"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_key_set_keeps_serving_while_the_provider_hangs() {
    let keys = keys();
    let (jwks_peer, relay) = relay_with_jwks(&keys, "1s").await;
    jwks_peer.answer_by_default(Reply::Hang);
    let token = es256_bearer(&keys.ec, "k1");
    // Let the 1 s cache go stale: this wait is the behaviour under test, not a synchronization.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let relay = std::sync::Arc::new(relay);
    let started = tokio::time::Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (relay, token) = (relay.clone(), token.clone());
        posts.spawn(async move { post_with(&relay, Some(&token), i).await });
    }
    let statuses = posts.join_all().await;
    let took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // None waited for the provider, which does not answer: a fetch may take 5 s to give up.
    assert!(took < Duration::from_secs(4), "20 posts took {took:?}");
    // One refresh runs in the background; the requests did not each start their own.
    assert_eq!(jwks_peer.next().await.path, "/.well-known/jwks.json");
    assert!(
        jwks_peer
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "a second fetch while one was running"
    );
    std::sync::Arc::into_inner(relay)
        .expect("no other owner")
        .stop()
        .await;
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_key_set_at_most_every_30_s_even_when_it_fails() {
    let keys = keys();
    let jwks_peer = Peer::start().await;
    jwks_peer.answer_by_default(Reply::Status(500, "down"));
    let relay = relay(&jwks_peer, &keys, "10m").await;
    assert_eq!(
        jwks_peer.next().await.path,
        "/.well-known/jwks.json",
        "fetched at start"
    );
    for i in 0..3 {
        let forged = es256_bearer(&keys.other_ec, &format!("forged-{i}"));
        assert_eq!(post_with(&relay, Some(&forged), i).await, 401);
        // Spread over more than a second each: the spacing is the scenario.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(
        jwks_peer
            .next_within(Duration::from_millis(100))
            .await
            .is_none(),
        "the key set was fetched again within 30 s"
    );
    relay.stop().await;
}
