//! Noise control, from outside: silences (`alert-relay silence` on a running relay), maintenance
//! windows and flap holds; events posted over HTTP, the webhook peer's record of what was sent,
//! and `deliveries` of what was not.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common;
use common::{ChildRelay, Peer};

/// A ThousandEyes alert of `test`: `TRIGGER` or `CLEAR` of the alert `id`.
pub fn alert(kind: &str, id: &str, test: &str) -> String {
    format!(
        r#"{{"eventType": "ALERT_NOTIFICATION_{kind}", "eventId": "{kind}-{id}", "alert": {{"ruleName": "Latency", "testName": "{test}", "alertId": "{id}"}}}}"#
    )
}

/// A webhook destination whose body names the event and what held it back.
pub fn webhook_config(peer: &Peer) -> (String, [(&'static str, &'static str); 1]) {
    (
        format!(
            "[storage]\npoll = \"100ms\"\n[delivery]\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\n\
             [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n",
            peer.url("/hook")
        ),
        [(
            "templates/webhook/default.hbs",
            r#"{"id": {{json event.id}}, "silenced": {{json silenced}}}"#,
        )],
    )
}

/// `alert-relay ARGS` on the config in `dir`, off the runtime's threads.
pub async fn run(dir: &Path, args: &[&str]) -> (bool, String) {
    let (dir, args): (_, Vec<String>) =
        (dir.to_owned(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::command(&dir, &args)
    })
    .await
    .unwrap()
}

/// Adds a silence with `matchers` for an hour; its id.
pub async fn add_silence(dir: &Path, matchers: &[&str]) -> String {
    let mut args = vec!["silence", "add", "--for", "1h", "--comment", "deploy"];
    for matcher in matchers {
        args.extend(["--match", matcher]);
    }
    let (ok, out) = run(dir, &args).await;
    assert!(ok, "{out}");
    out.strip_prefix("silence ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no id in {out}"))
        .to_owned()
}

/// Waits until the relay applies `active` silences.
pub async fn until_active(relay: &ChildRelay, active: usize) {
    let line = format!("alert_relay_silences_active {active}");
    common::eventually(&line, async || {
        let metrics = relay.metrics(None).await;
        match metrics.lines().any(|l| l == line) {
            true => Ok(()),
            false => Err(metrics),
        }
    })
    .await;
}

/// The event ids of the deliveries in `state`.
pub async fn deliveries_in(dir: &Path, state: &str) -> BTreeSet<String> {
    let (ok, out) = run(dir, &["deliveries", "--state", state]).await;
    assert!(ok, "{out}");
    out.lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|id| *id != "(none)")
        .map(str::to_owned)
        .collect()
}

/// The ids of the next `count` bodies the peer receives.
async fn received(peer: &Peer, count: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for _ in 0..count {
        ids.insert(peer.next().await.json()["id"].as_str().unwrap().to_owned());
    }
    ids
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// What a silence matches is kept, not sent, and listed as silenced; the clear of a trigger sent
/// before the silence is sent; the clear of a silenced trigger stays silenced; when the silence
/// is expired, the trigger it held that still fires goes out, marked as held. A silence outlasts
/// a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_holds_what_it_matches_until_it_ends() {
    let peer = Peer::start().await;
    let (config, files) = webhook_config(&peer);
    let dir = common::config_dir(&config, &files);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(alert("TRIGGER", "d", "checkout")).await.0, 200);
    assert_eq!(received(&peer, 1).await, set(&["TRIGGER-d"]));

    let id = add_silence(dir.path(), &["test=checkout", "rule=~^Lat"]).await;
    until_active(&relay, 1).await;
    for (kind, alert_id, test) in [
        ("TRIGGER", "a", "checkout"),
        ("TRIGGER", "c", "checkout"),
        ("CLEAR", "c", "checkout"),
        ("CLEAR", "d", "checkout"),
        ("TRIGGER", "b", "search"),
    ] {
        let (status, answer) = relay.post(alert(kind, alert_id, test)).await;
        assert_eq!((status, &answer["status"]), (200, &"accepted".into()));
    }
    // The clear of a trigger that was sent is sent; what the silence matches is not.
    assert_eq!(received(&peer, 2).await, set(&["CLEAR-d", "TRIGGER-b"]));
    assert_eq!(
        deliveries_in(dir.path(), "silenced").await,
        set(&["TRIGGER-a", "TRIGGER-c", "CLEAR-c"])
    );
    let (ok, list) = run(dir.path(), &["silence", "list"]).await;
    assert!(
        ok && list.contains(&id)
            && list.contains("active")
            && list.contains("test=checkout rule=~^Lat")
            && list.contains("(deploy)"),
        "{list}"
    );

    let (ok, out) = run(dir.path(), &["silence", "expire", &id]).await;
    assert!(ok, "{out}");
    let held = peer.next().await.json();
    assert_eq!(held["id"], "TRIGGER-a", "the trigger still firing goes out");
    assert_eq!(held["silenced"], format!("silence:{id}"), "marked as held");
    // Sent after it: the cleared alert (c) was not.
    assert_eq!(relay.post(alert("TRIGGER", "e", "search")).await.0, 200);
    assert_eq!(received(&peer, 1).await, set(&["TRIGGER-e"]));
    assert_eq!(
        deliveries_in(dir.path(), "silenced").await,
        set(&["TRIGGER-c", "CLEAR-c"])
    );
    let (ok, out) = run(dir.path(), &["silence", "expire", &id]).await;
    assert!(!ok && out.contains("no silence"), "{out}");

    // Across a restart.
    let second = add_silence(dir.path(), &["test=search"]).await;
    until_active(&relay, 1).await;
    relay.kill_9();
    let relay = ChildRelay::start(dir.path()).await;
    until_active(&relay, 1).await;
    assert_eq!(relay.post(alert("TRIGGER", "f", "search")).await.0, 200);
    assert_eq!(relay.post(alert("TRIGGER", "g", "checkout")).await.0, 200);
    assert_eq!(received(&peer, 1).await, set(&["TRIGGER-g"]));
    assert!(
        deliveries_in(dir.path(), "silenced")
            .await
            .contains("TRIGGER-f")
    );
    let (_, list) = run(dir.path(), &["silence", "list", "--all"]).await;
    assert!(
        list.contains(&id) && list.contains("expired") && list.contains(&second),
        "{list}"
    );
}

/// A silence is refused with its reason: no matcher, an unknown field, a bad regex, no comment.
#[test]
fn a_silence_that_cannot_be_is_refused_with_why() {
    let dir = common::config_dir("[destinations.screen]\nkind = \"console\"\n", &[]);
    for (args, why) in [
        (
            vec!["--match", "colour=red", "--for", "1h", "--comment", "x"],
            "unknown field \"colour\"",
        ),
        (
            vec!["--match", "rule=~(", "--for", "1h", "--comment", "x"],
            "not a regex",
        ),
        (
            vec!["--match", "test=a", "--for", "1h", "--comment", " "],
            "needs a comment",
        ),
        (
            vec![
                "--match",
                "test=a",
                "--for",
                "1h",
                "--comment",
                "x",
                "--starts",
                "soon",
            ],
            "not an RFC 3339 time",
        ),
    ] {
        let mut all = vec!["silence", "add"];
        all.extend(args);
        let (ok, out) = common::command(dir.path(), &all);
        assert!(!ok && out.contains(why), "{all:?}: {out}");
    }
}

/// `[[maintenance]]` with a window of `start` to `end` (UTC, every day) over `test=db`.
fn window(start: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "[[maintenance]]\nname = \"db-upgrade\"\nmatch = [\"test=db\"]\n\
         schedule = {{ start = \"{}\", end = \"{}\", timezone = \"UTC\" }}\n",
        start.format("%H:%M"),
        end.format("%H:%M")
    )
}

/// A maintenance window open now silences what it matches (and `check` says until when); once a
/// reload closes it, the trigger it held that still fires goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_holds_what_it_matches_while_open() {
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    let peer = Peer::start().await;
    let (config, files) = webhook_config(&peer);
    let open = format!("{config}{}", window(now - hour, now + hour));
    let dir = common::config_dir(&open, &files);
    let (ok, out) = run(dir.path(), &["check"]).await;
    assert!(
        ok && out.contains("maintenance db-upgrade: open now, until "),
        "{out}"
    );

    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(alert("TRIGGER", "x", "db")).await.0, 200);
    assert_eq!(relay.post(alert("TRIGGER", "y", "web")).await.0, 200);
    assert_eq!(received(&peer, 1).await, set(&["TRIGGER-y"]));
    assert_eq!(
        deliveries_in(dir.path(), "silenced").await,
        set(&["TRIGGER-x"])
    );

    let closed = format!("{config}{}", window(now + hour * 2, now + hour * 3));
    std::fs::write(dir.path().join("config.toml.new"), &closed).unwrap();
    std::fs::rename(
        dir.path().join("config.toml.new"),
        dir.path().join("config.toml"),
    )
    .unwrap();
    let held = peer.next().await.json();
    assert_eq!(
        (held["id"].as_str(), held["silenced"].as_str()),
        (Some("TRIGGER-x"), Some("maintenance:db-upgrade"))
    );
    let (ok, out) = run(dir.path(), &["check"]).await;
    assert!(
        ok && out.contains("maintenance db-upgrade: opens next "),
        "{out}"
    );
}

/// A trigger cleared within its route's hold sends nothing (both are `flapped`); one cleared after
/// its hold sends both, the trigger only once the hold is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_cleared_within_its_hold_sends_nothing() {
    let peer = Peer::start().await;
    let (config, files) = webhook_config(&peer);
    let routes = "[[routes]]\nmatch = { test = \"^flaky$\" }\nto = [\"hook\"]\nhold = \"1h\"\n\
                  [[routes]]\nmatch = { test = \"^slow$\" }\nto = [\"hook\"]\nhold = \"1s\"\n\
                  [[routes]]\nto = [\"hook\"]\n";
    let dir = common::config_dir(&format!("{config}{routes}"), &files);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(alert("TRIGGER", "f", "flaky")).await.0, 200);
    assert_eq!(relay.post(alert("CLEAR", "f", "flaky")).await.0, 200);
    let posted = std::time::Instant::now();
    assert_eq!(relay.post(alert("TRIGGER", "s", "slow")).await.0, 200);
    assert_eq!(relay.post(alert("TRIGGER", "n", "now")).await.0, 200);
    assert_eq!(received(&peer, 1).await, set(&["TRIGGER-n"]));
    assert_eq!(
        deliveries_in(dir.path(), "flapped").await,
        set(&["TRIGGER-f", "CLEAR-f"])
    );
    assert_eq!(received(&peer, 1).await, set(&["TRIGGER-s"]));
    assert!(
        posted.elapsed() >= std::time::Duration::from_secs(1),
        "held for its hold"
    );
    assert_eq!(relay.post(alert("CLEAR", "s", "slow")).await.0, 200);
    assert_eq!(received(&peer, 1).await, set(&["CLEAR-s"]));
    let metrics = relay.metrics(None).await;
    assert!(
        metrics.contains("alert_relay_events_held_total 2")
            && metrics.contains("alert_relay_events_flapped_total 1"),
        "{metrics}"
    );
}
