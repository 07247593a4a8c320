//! Hostile input, generated: random bytes, mutated ThousandEyes samples, deep nesting, huge
//! strings, invalid UTF-8 and arbitrary JSON. The relay must never answer 5xx, never panic, and
//! must serve (and deliver) a valid event right after. Bounded: a fixed number of cases.

use crate::common;

use common::{Peer, TestRelay, sample, sample_names};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

fn samples() -> Vec<Vec<u8>> {
    sample_names()
        .iter()
        .map(|name| sample(name).into_bytes())
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = body.len().max(1);
        match *mutation {
            Mutation::Flip(at, bits) => {
                if let Some(b) = body.get_mut(at % len) {
                    *b ^= bits;
                }
            }
            Mutation::Insert(at, byte) => body.insert(at % (body.len() + 1), byte),
            Mutation::Remove(at) => {
                if !body.is_empty() {
                    body.remove(at % len);
                }
            }
            Mutation::Truncate(at) => body.truncate(at % len),
        }
    }
    body
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("<!channel> {{raw}} </script> \u{0}\u{202e}")),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let samples = samples();
    let count = samples.len();
    let mutation = prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(a, b)| Mutation::Flip(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (0..count, prop::collection::vec(mutation, 1..12))
            .prop_map(move |(i, m)| mutate(samples[i].clone(), &m)),
        (0usize..400, any::<bool>()).prop_map(|(depth, objects)| {
            let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
            format!("{{\"eventType\":\"X\",\"d\":{}1{}}}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }),
        (0usize..300_000).prop_map(|n| {
            format!("{{\"eventType\":\"ALERT_NOTIFICATION_TRIGGER\",\"alert\":{{\"ruleName\":\"{}\"}}}}", "r".repeat(n))
                .into_bytes()
        }),
        prop::collection::vec(128u8.., 1..16).prop_map(|bad| {
            let mut body = b"{\"eventType\":\"WEBHOOK_TEST\",\"eventId\":\"".to_vec();
            body.extend(bad);
            body.extend(b"\"}");
            body
        }),
        (json_value(), ".{0,30}", any::<bool>()).prop_map(|(value, event_type, with_type)| {
            let mut body = match value {
                Value::Object(map) => Value::Object(map),
                other => serde_json::json!({ "alert": other, "agents": [other] }),
            };
            if with_type {
                body["eventType"] = Value::from(event_type);
            }
            body.to_string().into_bytes()
        }),
    ]
}

#[test]
fn hostile_bodies_never_get_a_5xx_and_the_relay_keeps_delivering() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (relay, slack) = runtime.block_on(async {
        let slack = Peer::start().await;
        let relay = TestRelay::start(&format!(
            "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
            slack.url("/s"),
            slack.url("/h")
        ))
        .await;
        (relay, slack)
    });
    let http = common::client();
    let url = relay.url("/");
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&bodies(), |body| {
            let (status, answer) = runtime.block_on(async {
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("the relay answers");
                (
                    response.status().as_u16(),
                    response.text().await.unwrap_or_default(),
                )
            });
            prop_assert!(status < 500, "answered {status}: {answer}");
            prop_assert!(
                serde_json::from_str::<Value>(&answer).is_ok(),
                "not JSON: {answer}"
            );
            Ok(())
        })
        .unwrap();
    runtime.block_on(async {
        let marker = r#"{"eventType":"WEBHOOK_TEST","eventId":"after-the-fuzz"}"#;
        let (status, answer) = relay.post(marker).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
        // Both workers are alive: the marker reaches each destination.
        let mut seen = 0;
        while seen < 2 {
            let request = slack.next().await;
            if String::from_utf8_lossy(&request.body).contains("after-the-fuzz") {
                seen += 1;
            }
        }
        let (status, _) = relay.get("/healthz").await;
        assert_eq!(status, 200);
        relay.stop().await;
    });
}
