//! The template authoring loop from the command line: `render --context`, `render --all` and
//! `check`, on the shipped templates; `deliveries` on hostile event ids.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::BIN;

fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn shipped_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
}

fn sample_path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/thousandeyes")
        .join(name)
        .display()
        .to_string()
}

/// One destination of every kind, on the shipped templates; nothing is sent by these commands.
const EVERY_KIND: &str = r#"
[templates]
dir = "TEMPLATES"
[destinations.slack]
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"
[destinations.teams]
kind = "teams"
url = "https://example.invalid/workflows/1"
[destinations.mail]
kind = "email"
smtp_url = "smtp://mail.example.invalid:25?tls=none"
from = "alerts@example.com"
to = ["oncall@example.com"]
[destinations.hook]
kind = "webhook"
url = "https://example.invalid/hook"
[destinations.screen]
kind = "console"
"#;

fn every_kind(files: &[(&str, &str)]) -> tempfile::TempDir {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    common::config_dir(
        &EVERY_KIND.replace("TEMPLATES", &templates.display().to_string()),
        files,
    )
}

#[test]
fn render_context_prints_every_variable_a_template_can_use() {
    let (code, out, err) = run(
        &shipped_config(),
        &[
            "render",
            "--context",
            "--event",
            &sample_path("agent_alert_trigger_v2021.json"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let context: serde_json::Value = serde_json::from_str(&out).expect("the context is JSON");
    for key in [
        "event",
        "alert",
        "agentAlert",
        "raw",
        "summary",
        "destination",
    ] {
        assert!(context.get(key).is_some(), "no {key}: {out}");
    }
    for key in ["id", "type", "kind", "received_at"] {
        assert!(context["event"].get(key).is_some(), "no event.{key}");
    }
    let summary = &context["summary"];
    for key in [
        "state",
        "title",
        "rule",
        "expression",
        "severity",
        "test",
        "type",
        "alert_id",
        "started_at",
        "ended_at",
        "duration",
        "disabled",
        "link",
        "labels",
        "targets",
        "targets_total",
    ] {
        assert!(summary.get(key).is_some(), "no summary.{key}: {summary}");
    }
    assert_eq!(context["event"]["kind"], "agent.trigger");
    assert_eq!(summary["targets"][0]["name"], "Packet1");
    assert_eq!(
        context["destination"],
        serde_json::json!({"name": "console", "kind": "console"})
    );
}

#[test]
fn render_all_renders_every_sample_for_every_destination() {
    let dir = every_kind(&[]);
    let (code, out, err) = run(&dir.path().join("config.toml"), &["render", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "no template failed: {err}");
    let headers = out.lines().filter(|l| l.starts_with("== ")).count();
    assert_eq!(headers, 14 * 5, "{out}");
    assert!(
        out.contains("== thousandeyes/alert_clear.json -> teams (teams) =="),
        "{out}"
    );

    let (code, out, _) = run(
        &dir.path().join("config.toml"),
        &["render", "--all", "--to", "slack"],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| l.starts_with("== ")).count(), 14);
    assert!(
        out.contains("== alertmanager/resolved.json -> slack (slack) =="),
        "{out}"
    );
}

/// `alert-relay … | head -1`: the reader of standard output goes away before the command has
/// written all it has. Every command ends quietly, without a panic or a backtrace.
#[test]
fn every_command_ends_quietly_when_its_reader_has_gone() {
    let dir = every_kind(&[]);
    let config = dir.path().join("config.toml");
    let trigger = sample_path("alert_trigger.json");
    for args in [
        &["render", "--all"][..],
        &["render", "--event", &trigger, "--context"],
        &["check"],
        &["--help"],
    ] {
        // The reading end is closed before the command starts: its first write finds no reader.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(output.status.success(), "{args:?}: {err}");
    }
}

#[test]
fn check_passes_the_shipped_templates_and_names_unknown_variables() {
    let dir = every_kind(&[]);
    let (code, out, err) = run(&dir.path().join("config.toml"), &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("warning"),
        "the shipped templates use only what samples provide:\n{out}"
    );
    assert!(
        out.contains("rendered 14 sample events for 5 destinations (110 messages)"),
        "{out}"
    );

    let typo = every_kind(&[]);
    let own = typo.path().join("own/slack");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(
        own.join("alert.trigger.hbs"),
        "{\"text\": \"{{summary.titel}} for {{alert.myTeam}}\"}",
    )
    .unwrap();
    let config = std::fs::read_to_string(typo.path().join("config.toml"))
        .unwrap()
        .replace(
            "url = \"https://hooks.slack.com/services/T/B/X\"",
            "url = \"https://hooks.slack.com/services/T/B/X\"\ntemplates = \"own\"",
        );
    std::fs::write(typo.path().join("config.toml"), config).unwrap();
    let (_, out, _) = run(&typo.path().join("config.toml"), &["check"]);
    assert!(
        out.contains("alert.trigger.hbs uses summary.titel, which no sample event provides"),
        "{out}"
    );
    assert!(
        out.contains("alert.trigger.hbs uses alert.myTeam, which no sample event provides"),
        "{out}"
    );
}

#[test]
fn render_exits_1_when_a_template_fails() {
    let dir = every_kind(&[("own/slack/default.hbs", "{{#if}}")]);
    let config = std::fs::read_to_string(dir.path().join("config.toml"))
        .unwrap()
        .replace(
            "url = \"https://hooks.slack.com/services/T/B/X\"",
            "url = \"https://hooks.slack.com/services/T/B/X\"\ntemplates = \"own\"",
        );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let (code, out, err) = run(
        &dir.path().join("config.toml"),
        &[
            "render",
            "--event",
            &sample_path("alert_trigger.json"),
            "--to",
            "slack",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("own/slack/default.hbs:1"), "{err}");
    assert!(out.contains("\"blocks\""), "the fallback is shown: {out}");
}

#[tokio::test]
async fn deliveries_shows_control_characters_from_event_ids_escaped() {
    let relay = common::TestRelay::start("[destinations.console]\nkind = \"console\"\n").await;
    let body = r#"{"eventType": "WEBHOOK_TEST", "eventId": "evil\u001b[2J\u0007\u202egnp.exe\r\nfake line"}"#;
    assert_eq!(relay.post(body).await.0, 200);
    let (_, out) = common::eventually("not listed yet", async || {
        let (ok, out) = common::command(relay.dir.path(), &["deliveries"]);
        if ok && out.contains("evil") {
            Ok((ok, out))
        } else {
            Err(out)
        }
    })
    .await;
    for raw in ['\u{1b}', '\u{7}', '\u{202e}', '\r'] {
        assert!(!out.contains(raw), "{raw:?} printed raw: {out:?}");
    }
    assert!(
        out.contains("evil\\u{1b}[2J\\u{7}\\u{202e}gnp.exe\\u{d}\\u{a}fake line"),
        "{out}"
    );
    relay.stop().await;
}
