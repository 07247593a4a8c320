//! Hot reload with the real binary: a template edited under a running relay is used for the next
//! delivery, a broken edit keeps the old one (and the failure shows in `/metrics`), SIGHUP reloads
//! what no watcher sees (a rotated secret file), and an attempt in flight is not disturbed.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{ChildRelay, Peer, Reply, eventually};

fn event(id: &str) -> String {
    format!(r#"{{"eventType": "WEBHOOK_TEST", "eventId": "{id}"}}"#)
}

/// Polls `/metrics` until `config_reloads_total{outcome}` reaches `count`.
async fn wait_for_reloads(relay: &ChildRelay, outcome: &str, count: u64) {
    let sample = format!("alert_relay_config_reloads_total{{outcome=\"{outcome}\"}} {count}");
    eventually(&format!("never saw {sample}"), async || {
        let metrics = relay.metrics(None).await;
        if metrics.lines().any(|l| l == sample) {
            Ok(())
        } else {
            Err(metrics)
        }
    })
    .await;
}

fn write(path: &Path, text: &str) {
    // Written beside and renamed, as editors do, so the relay never reads half a file.
    let temporary = path.with_extension("tmp-edit");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_template_is_used_and_a_broken_edit_keeps_the_old_one() {
    let slack = Peer::start().await;
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n",
        slack.url("/s")
    );
    let dir = common::config_dir(
        &config,
        &[(
            "templates/slack/test.hbs",
            "{\"text\": \"v1 {{event.id}}\"}",
        )],
    );
    let template = dir.path().join("templates/slack/test.hbs");
    let relay = ChildRelay::start(dir.path()).await;
    relay.post(event("a")).await;
    assert_eq!(slack.next().await.json()["text"], "v1 a");

    write(&template, "{\"text\": \"v2 {{event.id}}\"}");
    wait_for_reloads(&relay, "success", 1).await;
    relay.post(event("b")).await;
    assert_eq!(slack.next().await.json()["text"], "v2 b");

    write(&template, "{\"text\": \"v3 {{#if event.id}}\"}");
    wait_for_reloads(&relay, "failure", 1).await;
    relay.post(event("c")).await;
    assert_eq!(
        slack.next().await.json()["text"],
        "v2 c",
        "the old template keeps serving"
    );

    // Once fixed, the template applies again.
    write(&template, "{\"text\": \"v4 {{event.id}}\"}");
    wait_for_reloads(&relay, "success", 2).await;
    relay.post(event("d")).await;
    assert_eq!(slack.next().await.json()["text"], "v4 d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_a_broken_config_is_refused() {
    let old_peer = Peer::start().await;
    let new_peer = Peer::start().await;
    let config = "[destinations.slack]\nkind = \"slack\"\nurl_file = \"secrets/slack_url\"\nrate_limit = \"unlimited\"\n";
    let dir = common::config_dir(config, &[("secrets/slack_url", &old_peer.url("/old"))]);
    let secret = dir.path().join("secrets/slack_url");
    let relay = ChildRelay::start(dir.path()).await;
    relay.post(event("before")).await;
    assert_eq!(old_peer.next().await.path, "/old");

    // The secret is rotated; no watcher looks at secrets: SIGHUP applies it.
    write(&secret, &new_peer.url("/new"));
    relay.signal("HUP");
    wait_for_reloads(&relay, "success", 1).await;
    relay.post(event("after")).await;
    let request = new_peer.next().await;
    assert_eq!(request.path, "/new");
    assert!(request.json()["text"].as_str().unwrap().contains("Test"));

    // A broken secret: the reload is refused and the rotated one keeps serving.
    write(&secret, "not a url");
    relay.signal("HUP");
    wait_for_reloads(&relay, "failure", 1).await;
    relay.post(event("still")).await;
    assert_eq!(new_peer.next().await.path, "/new");
    assert!(
        old_peer
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_does_not_disturb_an_attempt_in_flight_and_adds_destinations() {
    let slack = Peer::start().await;
    let hook = Peer::start().await;
    slack.reply([Reply::Delay(Duration::from_millis(1500), 200)]);
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n",
        slack.url("/s")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    relay.post(event("slow")).await;
    let first = slack.next().await;
    // While Slack takes its time, a webhook destination is added.
    write(
        &dir.path().join("config.toml"),
        &format!(
            "{config}[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
            hook.url("/h")
        ),
    );
    wait_for_reloads(&relay, "success", 1).await;
    relay.post(event("next")).await;
    assert_eq!(
        hook.next().await.json()["event"]["id"],
        "next",
        "the new destination has a worker"
    );
    let second = slack.next().await;
    assert!(String::from_utf8_lossy(&second.body).contains("event next"));
    // The slow attempt, begun before the reload, finishes as it started: done, never repeated.
    let done = eventually("the slow attempt never finished", async || {
        let (_, done) = common::command(dir.path(), &["deliveries", "--state", "done"]);
        let slack_done = done.lines().filter(|l| l.contains(" slack ")).count();
        if slack_done == 2 { Ok(done) } else { Err(done) }
    })
    .await;
    assert!(done.contains("slow") && done.contains("next"), "{done}");
    assert!(
        first.at.elapsed() >= Duration::from_millis(1400),
        "done before Slack answered"
    );
    assert!(String::from_utf8_lossy(&first.body).contains("event slow"));
    assert!(
        slack
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "an attempt was repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_config_is_refused_and_events_keep_going_out() {
    let hook = Peer::start().await;
    let config = format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        hook.url("/h")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    // An editor or `cat >` that truncated the file and stopped there.
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    wait_for_reloads(&relay, "failure", 1).await;
    let (status, answer) = relay.post(event("after-empty")).await;
    assert_eq!(
        (status, answer["deliveries"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(hook.next().await.json()["event"]["id"], "after-empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_written_in_two_steps_is_read_once_it_is_whole() {
    let old_hook = Peer::start().await;
    let new_hook = Peer::start().await;
    let config = |peer: &Peer| {
        format!(
            "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
            peer.url("/h")
        )
    };
    let dir = common::config_dir(&config(&old_hook), &[]);
    let path = dir.path().join("config.toml");
    let relay = ChildRelay::start(dir.path()).await;
    // As `cat new.toml > config.toml` does: the file is emptied, then written; here the second
    // step comes 150 ms after the first. That gap is the scenario, not a synchronization.
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    std::fs::write(&path, config(&new_hook)).unwrap();
    wait_for_reloads(&relay, "success", 1).await;
    let metrics = relay.metrics(None).await;
    assert!(
        !metrics.contains("alert_relay_config_reloads_total{outcome=\"failure\"} 1"),
        "the half-written file was read: {metrics}"
    );
    relay.post(event("after-rewrite")).await;
    assert_eq!(new_hook.next().await.json()["event"]["id"], "after-rewrite");
}

/// A template directory made under a running relay is watched from then on, even when the first
/// file written in it is refused; and a restart-only key changed (`[studio]`) is named in the
/// log as waiting for a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_template_directory_is_watched_and_restart_only_keys_are_named() {
    let slack = Peer::start().await;
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\nrate_limit = \"unlimited\"\n",
        slack.url("/s")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    let folder = dir.path().join("templates/slack");
    std::fs::create_dir_all(&folder).unwrap();
    write(&folder.join("test.hbs"), "{\"text\": \"{{#if event.id}}\"}");
    wait_for_reloads(&relay, "failure", 1).await;
    // Fixed in the directory that did not exist when the relay started.
    write(
        &folder.join("test.hbs"),
        "{\"text\": \"fixed {{event.id}}\"}",
    );
    wait_for_reloads(&relay, "success", 1).await;
    relay.post(event("a")).await;
    assert_eq!(slack.next().await.json()["text"], "fixed a");

    let config_file = dir.path().join("config.toml");
    write(&config_file, &format!("{config}\n[studio]\nwrite = true\n"));
    // (Writing the template may have started one more reload of the same files: the warning is
    // waited for, not a count of reloads.)
    let line = eventually("the restart-only warning", async || {
        let logs = common::relay_logs(dir.path());
        (logs.lines())
            .find(|l| l.contains("takes effect at the next restart"))
            .map(str::to_owned)
            .ok_or(logs)
    })
    .await;
    assert!(line.contains("\"key\":\"studio\""), "{line}");
}
