//! What every store promises, run against each one: SQLite always, PostgreSQL where one is
//! reachable (those are ignored otherwise, with the reason; `.ci/run` starts one). One suite, so
//! that the stores cannot drift apart.

use super::*;

/// Rows a prune transaction deletes at most, in both stores.
const PRUNE_BATCH: usize = 1000;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Runs each named check against a fresh SQLite store and a fresh PostgreSQL database.
macro_rules! on_every_store {
    ($($check:ident),* $(,)?) => { $(
        mod $check {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                // Its directory is created.
                let path = dir.path().join("nested/store.db");
                let store = crate::outbox::Outbox::open(&path).unwrap();
                super::$check(store, crate::outbox::Location::Sqlite(path)).await;
            }

            #[tokio::test]
            #[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
            async fn postgres() {
                let (store, location) = super::postgres().await;
                super::$check(store, location).await;
            }
        }
    )* };
}

on_every_store!(
    dedup_claim_and_finish,
    prune_in_small_transactions,
    clear_waits_for_its_trigger,
    several_due_in_one_claim,
    recent_events,
    oauth_key_tokens_and_codes,
);

/// A fresh PostgreSQL database, migrated, and where the commands find it.
async fn postgres() -> (Outbox, Location) {
    let url = crate::testing::fresh_postgres_database()
        .await
        .expect("a PostgreSQL server to create a database in");
    let store = Outbox::connect(&url, Duration::from_secs(60))
        .await
        .expect("the store opens");
    (store, Location::Postgres(url))
}

async fn dedup_claim_and_finish(outbox: Outbox, location: Location) {
    let accepted = outbox
        .accept(NewEvent {
            normalized: Some("{\"n\":1}".into()),
            ..NewEvent::for_test("\"e1\"", &["a", "b"])
        })
        .await
        .unwrap();
    assert_eq!(
        accepted,
        Accepted::New {
            deliveries: 2,
            flapped: false
        }
    );
    assert_eq!(
        outbox
            .accept(NewEvent {
                received_at: 2,
                ..NewEvent::for_test("\"e1\"", &["a", "b"])
            })
            .await
            .unwrap(),
        Accepted::Duplicate
    );
    let reader = outbox.reader().unwrap();
    let claim = reader
        .next_due("a", now_ms(), vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (claim.event_id.as_str(), claim.attempts, &claim.body[..]),
        ("e1", 0, &b"{}"[..])
    );
    assert_eq!(
        claim.normalized.as_deref(),
        Some("{\"n\":1}"),
        "the normalized form comes with the body"
    );
    assert!(
        reader
            .next_due("a", now_ms(), vec![claim.id])
            .await
            .unwrap()
            .is_none(),
        "the only due delivery is in flight"
    );
    outbox
        .finish(
            claim.id,
            "a",
            Finish::Retry {
                attempts: 1,
                due: now_ms() + 60_000,
                error: "HTTP 503".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        reader
            .next_due("a", now_ms(), vec![])
            .await
            .unwrap()
            .is_none(),
        "not due yet"
    );
    let later = reader.next_due_at("a").await.unwrap().unwrap();
    assert!(later > now_ms() + 50_000, "{later}");
    let again = reader
        .next_due("a", now_ms() + 61_000, vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (claim.id, 1));
    outbox
        .finish(
            claim.id,
            "a",
            Finish::Dead {
                attempts: 2,
                error: "HTTP 404".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        outbox.backlog(names(&["a", "b", "c"])).await.unwrap(),
        [("a".into(), 0, 1), ("b".into(), 1, 0), ("c".into(), 0, 0)]
    );
    // What `deliveries` and `retry` do, from their own connection.
    let dead = list(&location, Some(DeliveryState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(
        (
            dead.len(),
            dead[0].event_id.as_str(),
            dead[0].attempts,
            dead[0].last_error.as_deref()
        ),
        (1, "e1", 2, Some("HTTP 404"))
    );
    assert_eq!(list(&location, None, 10).await.unwrap().len(), 2);
    assert_eq!(requeue(&location, Requeue::AllDead).await.unwrap(), 1);
    assert_eq!(
        requeue(&location, Requeue::One(claim.id)).await.unwrap(),
        0,
        "pending already"
    );
    let requeued = reader
        .next_due("a", now_ms() + 120_000, vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((requeued.id, requeued.attempts), (claim.id, 0));
    outbox.probe(1).await.unwrap();
}

/// PostgreSQL only: one replica at a time drives a destination, and a claim's lease keeps the
/// delivery from the next one until it ends.
#[tokio::test]
#[ignore = "needs PostgreSQL (RELAY_TEST_POSTGRES, else 127.0.0.1:5432); .ci/run starts one"]
async fn one_replica_drives_a_destination_and_a_lease_outlives_it() {
    let (outbox, _) = postgres().await;
    for id in ["\"l1\"", "\"l2\""] {
        outbox.accept(NewEvent::for_test(id, &["a"])).await.unwrap();
    }
    // Two replicas: each its own reader, neither knowing what the other has in flight.
    let (one, two) = (outbox.reader().unwrap(), outbox.reader().unwrap());
    let now = now_ms();
    let claim = one.next_due("a", now, vec![]).await.unwrap().unwrap();
    assert!(
        two.next_due("a", now, vec![]).await.unwrap().is_none(),
        "the other replica does not drive this destination"
    );
    assert!(
        two.next_due("b", now, vec![]).await.unwrap().is_none(),
        "but may drive another (with nothing due)"
    );
    // The first replica dies: its lock goes with its connection. The second takes the
    // destination; the delivery in flight stays leased until the lease ends, then moves.
    drop(one);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let next = loop {
        // The server lets the lock go once it sees the connection closed.
        match two.next_due("a", now, vec![]).await.unwrap() {
            Some(next) => break next,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            None => panic!("the lock of a closed connection was never let go"),
        }
    };
    assert_ne!(next.id, claim.id, "the leased one is skipped");
    let taken = two
        .next_due("a", now + 60_001, vec![next.id])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, claim.id, "taken over once its lease ended");
}

async fn recent_events(outbox: Outbox, _: Location) {
    for i in 0..3 {
        outbox
            .accept(NewEvent {
                received_at: 1000 + i,
                body: format!("{{\"n\":{i}}}").into_bytes(),
                normalized: Some(format!("{{\"normalized\":{i}}}")),
                ..NewEvent::for_test(&format!("\"r{i}\""), &["a"])
            })
            .await
            .unwrap();
    }
    let recent = outbox.recent_events(2).await.unwrap();
    let ids: Vec<&str> = recent.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["r2", "r1"], "newest first");
    assert_eq!(
        outbox.event_body(recent[0].id).await.unwrap(),
        Some((b"{\"n\":2}".to_vec(), Some("{\"normalized\":2}".to_owned())))
    );
    assert_eq!(outbox.event_body(-1).await.unwrap(), None);
}

async fn prune_in_small_transactions(outbox: Outbox, _: Location) {
    let reader = outbox.reader().unwrap();
    let events = 2 * PRUNE_BATCH + 10;
    for i in 0..events {
        outbox
            .accept(NewEvent::for_test(&format!("\"e{i}\""), &["a"]))
            .await
            .unwrap();
    }
    // All but one delivery finish; the one left pending keeps its event.
    for _ in 1..events {
        let claim = reader
            .next_due("a", now_ms(), vec![])
            .await
            .unwrap()
            .unwrap();
        outbox
            .finish(
                claim.id,
                "a",
                Finish::Done {
                    attempts: 1,
                    thread: None,
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(outbox.prune(0).await.unwrap(), 0, "nothing is older than 0");
    assert_eq!(outbox.prune(now_ms() + 1).await.unwrap(), events - 1);
    assert_eq!(
        outbox.backlog(names(&["a"])).await.unwrap(),
        [("a".into(), 1, 0)]
    );
    let left = reader
        .next_due("a", now_ms(), vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.event_id, format!("e{}", events - 1));
}

async fn clear_waits_for_its_trigger(outbox: Outbox, _: Location) {
    let reader = outbox.reader().unwrap();
    let accept = |id: &'static str, key: &'static str, phase| {
        let outbox = &outbox;
        async move {
            outbox
                .accept(NewEvent {
                    lifecycle: Some((key.to_owned(), phase)),
                    ..NewEvent::for_test(id, &["a"])
                })
                .await
                .unwrap()
        }
    };
    accept("\"t1\"", "A1", Phase::Trigger).await;
    accept("\"c1\"", "A1", Phase::Clear).await;
    accept("\"c2\"", "A2", Phase::Clear).await;
    let trigger = reader
        .next_due("a", now_ms(), vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trigger.event_id, "t1");
    // The trigger in flight: the clear of another alert goes, the trigger's own waits.
    let other = reader
        .next_due("a", now_ms(), vec![trigger.id])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((other.event_id.as_str(), other.thread), ("c2", None));
    assert!(
        reader
            .next_due("a", now_ms(), vec![trigger.id, other.id])
            .await
            .unwrap()
            .is_none(),
        "the clear waits while its trigger is pending"
    );
    let kept = Thread {
        correlation: "A1".into(),
        thread: r#"{"ts":"1.2"}"#.into(),
        trigger_summary: r#"{"title":"t"}"#.into(),
    };
    outbox
        .finish(
            trigger.id,
            "a",
            Finish::Done {
                attempts: 1,
                thread: Some(kept.clone()),
            },
        )
        .await
        .unwrap();
    let clear = reader
        .next_due("a", now_ms(), vec![other.id])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(clear.event_id, "c1");
    assert_eq!(clear.thread, Some((kept.thread, kept.trigger_summary)));
    // Kept for `storage.retention`, then pruned with the rest. (Asked for once the claim's
    // lease has ended: PostgreSQL keeps a claimed delivery from every replica for its lease.)
    assert!(outbox.prune(now_ms() + 1).await.unwrap() >= 1);
    let again = reader
        .next_due("a", now_ms() + 120_000, vec![other.id])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.event_id.as_str(), again.thread), ("c1", None));
}

async fn several_due_in_one_claim(outbox: Outbox, _: Location) {
    for (id, lifecycle) in [
        ("\"t1\"", Some(("A1", Phase::Trigger))),
        ("\"c1\"", Some(("A1", Phase::Clear))),
        ("\"e2\"", None),
        ("\"e3\"", None),
    ] {
        outbox
            .accept(NewEvent {
                lifecycle: lifecycle.map(|(key, phase)| (key.to_owned(), phase)),
                ..NewEvent::for_test(id, &["a"])
            })
            .await
            .unwrap();
    }
    let reader = outbox.reader().unwrap();
    let ids = |claims: &[Claim]| {
        claims
            .iter()
            .map(|c| c.event_id.clone())
            .collect::<Vec<_>>()
    };
    let first = reader.due("a", now_ms(), vec![], 2, true).await.unwrap();
    assert_eq!(
        ids(&first),
        ["t1", "e2"],
        "the first two due; the clear waits for its trigger"
    );
    assert!(first.iter().all(|c| c.body == b"{}"), "each with its body");
    let in_flight = first.iter().map(|c| c.id).collect();
    let rest = reader
        .due("a", now_ms(), in_flight, 10, true)
        .await
        .unwrap();
    assert_eq!(
        ids(&rest),
        ["e3"],
        "the clear waits while its trigger is in flight"
    );
}

async fn oauth_key_tokens_and_codes(outbox: Outbox, location: Location) {
    use crate::outbox::{AuthorizationCode, IssuedToken, revoke_token, tokens};
    let key = outbox.signing_key("first".into()).await.unwrap();
    assert_eq!(key, "first");
    assert_eq!(
        outbox.signing_key("second".into()).await.unwrap(),
        "first",
        "the key first kept stays"
    );
    let token = IssuedToken {
        id: "t1".into(),
        client: "thousandeyes".into(),
        operator: Some("alice".into()),
        grant: "implicit".into(),
        issued_at: 1,
        expires_at: 2,
        revoked_at: None,
    };
    outbox.issue_token(token.clone()).await.unwrap();
    assert_eq!(outbox.token("t1").await.unwrap(), Some(token.clone()));
    assert_eq!(outbox.token("t2").await.unwrap(), None);
    assert_eq!(tokens(&location).await.unwrap(), [token]);
    assert!(revoke_token(&location, "t1").await.unwrap());
    assert!(!revoke_token(&location, "t1").await.unwrap(), "once");
    assert!(!revoke_token(&location, "nope").await.unwrap());
    assert!(
        outbox
            .token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    let code = AuthorizationCode {
        hash: "h".into(),
        client: "thousandeyes".into(),
        redirect_uri: "https://example.com/cb".into(),
        operator: "alice".into(),
        expires_at: now_ms() + 60_000,
    };
    outbox.keep_code(code.clone()).await.unwrap();
    assert_eq!(outbox.take_code("h").await.unwrap(), Some(code));
    assert_eq!(
        outbox.take_code("h").await.unwrap(),
        None,
        "a code is taken once"
    );
}
