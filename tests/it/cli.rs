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
    assert_eq!(headers, 15 * 5, "{out}");
    assert!(
        out.contains("== thousandeyes/alert_clear.json -> teams (teams) =="),
        "{out}"
    );

    let (code, out, _) = run(
        &dir.path().join("config.toml"),
        &["render", "--all", "--to", "slack"],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| l.starts_with("== ")).count(), 15);
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
        out.contains("rendered 15 sample events for 5 destinations (295 messages)"),
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

/// Copies the directory `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The README's authoring loop, run as written on a copy of the shipped config, templates and
/// samples: each command it gives in code, in order, succeeds, and the file it starts is the one
/// the relay renders triggers with.
#[test]
fn the_readme_authoring_loop_runs_on_the_shipped_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("### The authoring loop").unwrap();
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap()];
    let commands: Vec<String> = (section.split('`').skip(1).step_by(2))
        .map(|code| code.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|code| code.starts_with("alert-relay ") || code.starts_with("cp "))
        .collect();
    assert!(commands.len() >= 7, "{commands:?}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("config.toml"), dir.path().join("config.toml")).unwrap();
    copy_tree(&root.join("templates"), &dir.path().join("templates"));
    copy_tree(&root.join("samples"), &dir.path().join("samples"));
    let mut created = None;
    for command in &commands {
        let words: Vec<&str> = command.split(' ').collect();
        if let ["cp", from, to] = words[..] {
            std::fs::copy(dir.path().join(from), dir.path().join(to)).unwrap();
            // The edit of step 2.
            let edited = std::fs::read_to_string(dir.path().join(to)).unwrap();
            std::fs::write(dir.path().join(to), format!("edited in the loop\n{edited}")).unwrap();
            created = Some(to);
            continue;
        }
        let output = Command::new(BIN)
            .args(&words[1..])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if command.contains("alert_trigger.json --to console") {
            assert!(stdout.contains("edited in the loop"), "{command}: {stdout}");
        }
    }
    assert_eq!(created, Some("templates/console/alert.trigger.hbs"));
}

/// A wrong `--to` lists the destinations there are; a body from another sender names the
/// `--source` that reads it.
#[test]
fn render_names_the_destinations_and_the_source_there_are() {
    let dir = every_kind(&[]);
    let config = dir.path().join("config.toml");
    let trigger = sample_path("alert_trigger.json");
    let (code, _, err) = run(
        &config,
        &["render", "--event", &trigger, "--to", "ops_slack"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no destination named \"ops_slack\"; the config has: hook, mail, screen, slack, teams"
        ),
        "{err}"
    );
    for (sample, source) in [
        ("alertmanager/resolved.json", "alertmanager"),
        ("grafana/firing.json", "grafana"),
    ] {
        let body = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(sample);
        let (code, _, err) = run(&config, &["render", "--event", body.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!(
                "not an event the thousandeyes source accepts: body has no string field \"eventType\": not a ThousandEyes classic webhook; it reads as a body of the {source} source: add --source {source}"
            )),
            "{sample}: {err}"
        );
    }
}

/// The shipped Slack template's fields name each fact once, for every source kind's samples.
#[test]
fn the_slack_fields_say_each_thing_once() {
    let dir = every_kind(&[]);
    let config = dir.path().join("config.toml");
    for (sample, source) in [
        ("alertmanager/firing.json", "alertmanager"),
        ("alertmanager/resolved.json", "alertmanager"),
        ("grafana/firing.json", "grafana"),
        ("thousandeyes/alert_trigger.json", "thousandeyes"),
        ("thousandeyes/agent_alert_trigger.json", "thousandeyes"),
    ] {
        let body = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(sample);
        let (code, out, err) = run(
            &config,
            &[
                "render",
                "--event",
                body.to_str().unwrap(),
                "--source",
                source,
                "--to",
                "slack",
            ],
        );
        assert_eq!(code, 0, "{sample}: {err}");
        // One message per event of the body, each after its `== slack (slack) ==`.
        for json in out.split("== slack (slack) ==\n").skip(1) {
            let message: serde_json::Value = serde_json::from_str(json).unwrap();
            let names: Vec<&str> = (message["blocks"].as_array().unwrap().iter())
                .flat_map(|block| block["fields"].as_array().into_iter().flatten())
                .filter_map(|field| field["text"].as_str()?.split('\n').next())
                .collect();
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{sample}: {names:?}");
        }
    }
}
