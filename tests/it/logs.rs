//! Logs: JSON lines for collectors, one per accepted event and per delivery outcome, carrying the
//! event id, destination, attempt and latency.

use crate::common;

use common::{ChildRelay, Peer, Reply, eventually, sample};
use serde_json::Value;

fn log_lines(dir: &std::path::Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        if entry.path().extension().is_some_and(|x| x == "log") {
            for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
                lines.push(
                    serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")),
                );
            }
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_fields_an_operator_searches_by() {
    let ok = Peer::start().await;
    let failing = Peer::start().await;
    failing.answer_by_default(Reply::Status(500, "boom"));
    let config = format!(
        "[log]\nformat = \"json\"\nlevel = \"info\"\n[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        ok.url("/s"),
        failing.url("/h")
    );
    let dir = common::config_dir(&config, &[]);
    let relay = ChildRelay::start(dir.path()).await;
    assert_eq!(relay.post(sample("alert_trigger.json")).await.0, 200);
    ok.next().await;
    failing.next().await;
    let lines = eventually("missing log lines", async || {
        let lines = log_lines(dir.path());
        let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
        if messages.contains(&"delivered") && messages.contains(&"delivery failed; will retry") {
            Ok(lines)
        } else {
            Err(format!("{messages:?}"))
        }
    })
    .await;
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line"))
    };
    let accepted = find("accepted");
    assert_eq!(accepted["event"], "49-35541");
    assert_eq!(accepted["kind"], "alert.trigger");
    assert_eq!(accepted["level"], "INFO");
    assert!(accepted["timestamp"].is_string());
    for (message, destination) in [
        ("delivered", "slack"),
        ("delivery failed; will retry", "hook"),
    ] {
        let line = find(message);
        assert_eq!(line["event"], "49-35541", "{line}");
        assert_eq!(line["destination"], destination, "{line}");
        assert_eq!(line["attempt"], 1, "{line}");
        assert!(
            line["latency_ms"].is_u64() && line["took_ms"].is_u64(),
            "{line}"
        );
    }
    assert_eq!(
        find("delivery failed; will retry")["error"],
        "HTTP 500: boom"
    );
}
