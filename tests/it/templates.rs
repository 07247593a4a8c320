//! Template lookup and fallback, seen from outside: user templates per event kind and per
//! destination, and broken templates that still deliver a message while `check` names them.

use crate::common;

use std::process::Command;

use common::{Peer, TestRelay, sample};

fn slack_config(peer: &Peer, extra: &str) -> String {
    format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n{extra}",
        peer.url("/s")
    )
}

/// Unterminated expression on line 3.
const SYNTAX_ERROR: &str = "{\n  \"text\": \"hello\",\n  \"x\": \"{{summary.rule\"\n}\n";
/// Renders, but the value lands outside a JSON string.
const INVALID_JSON: &str = "{\"text\": {{summary.rule}} }\n";

#[tokio::test]
async fn user_templates_apply_per_event_kind_and_per_destination() {
    let peer = Peer::start().await;
    let team = Peer::start().await;
    let config = slack_config(
        &peer,
        &format!(
            "[destinations.team]\nkind = \"slack\"\nurl = \"{}\"\ntemplates = \"team_templates\"\n",
            team.url("/t")
        ),
    );
    let relay = TestRelay::start_with_files(
        &config,
        &[
            (
                "templates/slack/alert.trigger.hbs",
                "{\"text\": \"custom: {{summary.rule}} & {{summary.test}}\"}",
            ),
            (
                "team_templates/slack/default.hbs",
                "{\"text\": \"team {{event.kind}}\"}",
            ),
        ],
    )
    .await;
    relay.post(&sample("alert_trigger.json")).await;
    relay.post(&sample("alert_clear.json")).await;
    let trigger = peer.next().await.json();
    assert_eq!(
        trigger["text"], "custom: Default Page Load Alert Rule & http://www.thousandeyes111.com",
        "literal template text is not escaped"
    );
    let clear = peer.next().await.json();
    assert!(
        clear["blocks"].is_array(),
        "no alert.clear file: the built-in default renders it"
    );
    // The destination's own tree comes first, for every kind.
    assert_eq!(team.next().await.json()["text"], "team alert.trigger");
    assert_eq!(team.next().await.json()["text"], "team alert.clear");
    relay.stop().await;
}

#[tokio::test]
async fn a_broken_template_still_delivers_the_fallback_and_is_counted() {
    let peer = Peer::start().await;
    let relay = TestRelay::start_with_files(
        &slack_config(&peer, ""),
        &[
            ("templates/slack/alert.trigger.hbs", SYNTAX_ERROR),
            ("templates/slack/alert.clear.hbs", INVALID_JSON),
        ],
    )
    .await;
    for name in ["alert_trigger.json", "alert_clear.json"] {
        let (status, _) = relay.post(&sample(name)).await;
        assert_eq!(status, 200);
        let message = peer.next().await.json();
        assert!(
            message["blocks"].is_array(),
            "{name}: the built-in template was sent: {message}"
        );
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .contains("Default Page Load Alert Rule")
        );
    }
    let (_, metrics) = relay.get("/metrics").await;
    let fallbacks: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("alert_relay_render_fallbacks_total{"))
        .collect();
    assert_eq!(fallbacks.len(), 2, "{metrics}");
    assert!(
        fallbacks
            .iter()
            .any(|l| l.contains("slack/alert.trigger.hbs") && l.ends_with(" 1")),
        "{fallbacks:?}"
    );
    assert!(
        fallbacks
            .iter()
            .any(|l| l.contains("slack/alert.clear.hbs") && l.ends_with(" 1")),
        "{fallbacks:?}"
    );
    relay.stop().await;
}

/// A partial that includes itself: Handlebars has no depth limit of its own, so rendering it
/// overflowed the stack and ended the process (at start, at reload, in `check`, in the studio).
const SELF_INCLUDING: &str =
    "{\n  \"text\": \"hi\"\n}\n{{#*inline \"again\"}}{{> again}}{{/inline}}{{> again}}\n";

#[tokio::test]
async fn a_self_including_partial_is_refused_not_rendered() {
    let peer = Peer::start().await;
    let relay = TestRelay::start_with_files(
        &slack_config(&peer, ""),
        &[("templates/slack/alert.trigger.hbs", SELF_INCLUDING)],
    )
    .await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    let message = peer.next().await.json();
    assert!(message["blocks"].is_array(), "the built-in one: {message}");
    let (_, health) = relay.get("/healthz").await;
    assert!(health.contains("ok"), "still serving: {health}");
    relay.stop().await;

    let dir = common::config_dir(
        &slack_config(&peer, ""),
        &[("templates/slack/alert.trigger.hbs", SELF_INCLUDING)],
    );
    let (ok, output) = check(dir.path());
    assert!(!ok, "{output}");
    assert!(
        output.contains("slack/alert.trigger.hbs:4:") && output.contains("includes itself"),
        "{output}"
    );
}

fn check(config_dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_alert-relay"))
        .arg("--config")
        .arg(config_dir.join("config.toml"))
        .arg("check")
        .output()
        .expect("run alert-relay check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn check_names_each_broken_template_with_its_line() {
    let config = "[destinations.slack]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/SECRET\"\n";
    let dir = common::config_dir(
        config,
        &[
            ("templates/slack/alert.trigger.hbs", SYNTAX_ERROR),
            ("templates/slack/alert.clear.hbs", INVALID_JSON),
        ],
    );
    let (ok, output) = check(dir.path());
    assert!(!ok, "check must fail:\n{output}");
    assert!(output.contains("slack/alert.trigger.hbs:3:"), "{output}");
    assert!(
        output.contains("slack/alert.clear.hbs") && output.contains("not valid JSON"),
        "{output}"
    );
    assert!(
        !output.contains("SECRET"),
        "check printed a secret:\n{output}"
    );

    let clean = common::config_dir(config, &[]);
    let (ok, output) = check(clean.path());
    assert!(ok, "{output}");
}

#[test]
fn the_shipped_config_passes_check() {
    let (ok, output) = check(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(ok, "{output}");
    assert!(output.contains("ok"), "{output}");
}

#[tokio::test]
async fn a_webhook_body_is_sent_as_its_template_wrote_it() {
    let peer = Peer::start().await;
    let config = format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/h")
    );
    let trigger = "{\n  \"rule\": \"{{summary.rule}}\",\n  \"n\": 1\n}\n";
    let relay = TestRelay::start_with_files(
        &config,
        &[
            ("templates/webhook/alert.trigger.hbs", trigger),
            ("templates/webhook/alert.clear.hbs", INVALID_JSON),
        ],
    )
    .await;
    relay.post(&sample("alert_trigger.json")).await;
    relay.post(&sample("alert_clear.json")).await;
    assert_eq!(
        std::str::from_utf8(&peer.next().await.body).unwrap(),
        "{\n  \"rule\": \"Default Page Load Alert Rule\",\n  \"n\": 1\n}\n",
        "the layout is the template's"
    );
    // A body that is not JSON is never sent: the fallback goes instead.
    let clear = peer.next().await.json();
    assert_eq!(clear["event"]["kind"], "alert.clear");
    assert!(clear["payload"].is_object(), "{clear}");
    relay.stop().await;
}
