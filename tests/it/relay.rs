//! End to end: ThousandEyes samples posted to the running relay reach a real peer of every
//! destination kind, in the format that destination accepts.

use crate::common;

use common::{Peer, SmtpServer, TestRelay, sample, sample_names, strings};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

struct Peers {
    slack: Peer,
    teams: Peer,
    hook: Peer,
    smtp: SmtpServer,
}

impl Peers {
    async fn start() -> Peers {
        Peers {
            slack: Peer::start().await,
            teams: Peer::start().await,
            hook: Peer::start().await,
            smtp: SmtpServer::start(),
        }
    }

    fn config(&self) -> String {
        format!(
            r#"
[destinations.slack]
kind = "slack"
url = "{}"
rate_limit = "unlimited"

[destinations.teams]
kind = "teams"
url = "{}"

[destinations.hook]
kind = "webhook"
url = "{}"
headers = {{ Authorization = "Token hook-token" }}

[destinations.mail]
kind = "email"
smtp_url = "{}"
from = "alerts@example.com"
to = ["oncall@example.com", "noc@example.com"]

[destinations.screen]
kind = "console"
"#,
            self.slack.url("/services/T000/B000/XXXX"),
            self.teams.url("/workflows/abc"),
            self.hook.url("/hook"),
            self.smtp.url()
        )
    }
}

fn teams_schema() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&common::fixture("schemas/adaptive-card-1.4.json")).expect("schema");
    jsonschema::draft6::new(&schema).expect("schema compiles")
}

/// What the Slack Block Kit limits and our contract require of every message.
fn assert_slack_message(body: &Value, sample: &str) {
    let text = body["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{sample}: no text fallback"));
    assert!(!text.trim().is_empty(), "{sample}: empty text");
    let blocks = body["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("{sample}: no blocks"));
    assert!(
        !blocks.is_empty() && blocks.len() <= 50,
        "{sample}: {} blocks",
        blocks.len()
    );
    for block in blocks {
        if block["type"] == "section" {
            let len = block["text"]["text"]
                .as_str()
                .map_or(0, |t| t.chars().count());
            assert!(len <= 3000, "{sample}: section text of {len} characters");
        }
    }
}

fn assert_teams_message(body: &Value, schema: &jsonschema::Validator, sample: &str) {
    assert_eq!(body["type"], "message", "{sample}");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"], "application/vnd.microsoft.card.adaptive",
        "{sample}"
    );
    let card = &attachment["content"];
    assert_eq!(card["version"], "1.4", "{sample}");
    let errors: Vec<String> = schema
        .iter_errors(card)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{sample}: card fails the Adaptive Card 1.4 schema: {errors:#?}\n{card:#}"
    );
}

#[tokio::test]
async fn every_sample_reaches_every_destination_kind_in_its_format() {
    let peers = Peers::start().await;
    let relay = TestRelay::start(&peers.config()).await;
    let schema = teams_schema();
    for name in sample_names() {
        let body = sample(&name);
        let raw: Value = serde_json::from_str(&body).expect("sample JSON");
        let (status, answer) = relay.post(&body).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["status"], "accepted", "{name}");
        assert_eq!(answer["eventId"], raw["eventId"], "{name}");
        assert_eq!(answer["deliveries"], 5, "{name}");

        let slack = peers.slack.next().await;
        assert_eq!(slack.path, "/services/T000/B000/XXXX");
        assert_eq!(slack.headers["content-type"], "application/json");
        assert_slack_message(&slack.json(), &name);

        assert_teams_message(&peers.teams.next().await.json(), &schema, &name);

        let hook = peers.hook.next().await;
        assert_eq!(hook.headers["authorization"], "Token hook-token");
        let hook = hook.json();
        assert_eq!(hook["event"]["id"], raw["eventId"], "{name}");
        assert_eq!(
            hook["payload"], raw,
            "{name}: the payload is the body as received"
        );

        let mail = peers.smtp.next().await;
        let mail = MessageParser::default()
            .parse(&mail)
            .expect("a parsable email");
        let content_type = mail.content_type().expect("content type");
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("multipart", Some("alternative")),
            "{name}"
        );
        let subject = mail.subject().expect("subject");
        assert!(!subject.contains('\n'), "{name}: {subject:?}");
        let alert = raw.get("alert").or(raw.get("agentAlert"));
        if let Some(rule) = alert.and_then(|a| a["ruleName"].as_str()) {
            assert!(
                subject.contains(rule),
                "{name}: subject {subject:?} names no rule"
            );
        }
        let state = match raw["eventType"].as_str().unwrap() {
            t if t.ends_with("TRIGGER") => "TRIGGERED",
            t if t.ends_with("CLEAR") => "CLEARED",
            _ => "TEST",
        };
        assert!(
            subject.contains(state),
            "{name}: subject {subject:?} names no state"
        );
        assert!(
            mail.body_text(0).is_some() && mail.body_html(0).is_some(),
            "{name}"
        );
        assert_eq!(mail.to().expect("to").iter().count(), 2);
    }
    relay.stop().await;
}

#[tokio::test]
async fn event_data_reaches_slack_inert_and_html_escaped() {
    let peers = Peers::start().await;
    let relay = TestRelay::start(&peers.config()).await;
    let hostile = "<!channel> <@U123> \"quoted\" back\\slash\nnew line </script><b>x</b> & <https://evil.example|click> [click](https://evil.example)\r\nBcc: victim@example.com ![pixel](https://evil.example/p.png) [click here][r] [here][] [shortcut]\n[r]: https://evil.example\n[here]: https://evil.example \"t\"\n[shortcut]: <https://evil.example>";
    let mut event: Value =
        serde_json::from_str(&sample("alert_trigger_http_many_agents.json")).unwrap();
    event["alert"]["ruleName"] = json!(hostile);
    event["alert"]["testName"] = json!(hostile);
    event["alert"]["agents"][0]["agentName"] = json!(hostile);
    event["alert"]["agents"][0]["metricsAtStart"] = json!(hostile);
    let (status, _) = relay.post(&event.to_string()).await;
    assert_eq!(status, 200);

    let slack = peers.slack.next().await.json();
    assert_slack_message(&slack, "hostile");
    // Slack parses mentions and links in mrkdwn text and in the top-level text: there, every `<`
    // from the event must arrive as an entity.
    let mut mrkdwn: Vec<&str> = vec![slack["text"].as_str().unwrap()];
    collect_mrkdwn(&slack["blocks"], &mut mrkdwn);
    assert!(
        mrkdwn
            .iter()
            .any(|t| t.contains("&lt;!channel&gt; &lt;@U123&gt; \"quoted\" back\\slash"))
    );
    for text in &mrkdwn {
        assert!(
            !text.contains('<') && !text.contains('>'),
            "unescaped in Slack mrkdwn: {text:?}"
        );
    }
    // plain_text (the header) is shown as typed, never parsed: there it stays as it was.
    assert!(
        strings(&slack["blocks"][0])
            .iter()
            .any(|t| t.contains("<!channel>"))
    );

    let teams = peers.teams.next().await.json();
    assert!(
        strings(&teams)
            .iter()
            .any(|t| t.contains(hostile.split('\n').next().unwrap()))
    );
    // Teams renders markdown in card text: inline links and images, and reference links with
    // their definitions, all arrive broken.
    for text in strings(&teams) {
        for syntax in ["](", "][", "]:"] {
            assert!(
                !text.contains(syntax),
                "{syntax:?} from the event in a card text: {text:?}"
            );
        }
    }
    peers.hook.next().await;

    let mail = peers.smtp.next().await;
    let mail = MessageParser::default().parse(&mail).unwrap();
    let html = mail.body_html(0).unwrap();
    assert!(
        !html.contains("</script>") && !html.contains("<b>x</b>") && !html.contains("<!channel>")
    );
    assert!(html.contains("&lt;/script&gt;"), "{html}");
    assert!(!mail.subject().unwrap().contains('\n'));
    assert!(
        mail.subject().unwrap().contains("Bcc: victim@example.com"),
        "kept as text"
    );
    assert!(
        mail.header("Bcc").is_none() && mail.bcc().is_none(),
        "event data added a header"
    );
    let text = mail.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        text.contains(&hostile.replace("\r\n", "\n")),
        "plain text is raw: {text}"
    );
    relay.stop().await;
}

fn collect_mrkdwn<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("mrkdwn")
                && let Some(text) = map.get("text").and_then(Value::as_str)
            {
                out.push(text);
            }
            map.values().for_each(|v| collect_mrkdwn(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_mrkdwn(v, out)),
        _ => {}
    }
}

/// Only Slack and the webhook, to compare messages per event.
async fn slack_and_hook() -> (Peer, Peer, TestRelay) {
    let slack = Peer::start().await;
    let hook = Peer::start().await;
    let config = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"{}\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        slack.url("/s"),
        hook.url("/h")
    );
    let relay = TestRelay::start(&config).await;
    (slack, hook, relay)
}

#[tokio::test]
async fn trigger_and_clear_read_differently() {
    let (slack, hook, relay) = slack_and_hook().await;
    relay.post(&sample("alert_trigger.json")).await;
    relay.post(&sample("alert_clear.json")).await;
    let trigger = slack.next().await.json();
    let clear = slack.next().await.json();
    assert_ne!(trigger["blocks"], clear["blocks"]);
    assert!(
        trigger["text"].as_str().unwrap().starts_with("🔴 Alert"),
        "{}",
        trigger["text"]
    );
    assert!(
        clear["text"].as_str().unwrap().starts_with("✅ Cleared"),
        "{}",
        clear["text"]
    );
    assert_eq!(hook.next().await.json()["event"]["kind"], "alert.trigger");
    assert_eq!(hook.next().await.json()["summary"]["duration"], "8m 4s");
    relay.stop().await;
}

#[tokio::test]
async fn agent_alerts_of_both_eras_render_as_agent_alerts() {
    let (slack, hook, relay) = slack_and_hook().await;
    for name in ["agent_alert_trigger.json", "agent_alert_trigger_v2021.json"] {
        let (status, _) = relay.post(&sample(name)).await;
        assert_eq!(status, 200);
        let message = slack.next().await.json();
        let texts = strings(&message["blocks"]);
        assert!(texts.contains(&"*Agent*"), "{name}: {texts:?}");
        assert!(
            texts.iter().any(|t| t.starts_with("*Packet1*")),
            "{name}: {texts:?}"
        );
        let body = hook.next().await.json();
        assert_eq!(body["event"]["kind"], "agent.trigger", "{name}");
        assert_eq!(body["summary"]["type"], "Agent", "{name}");
        assert_eq!(body["summary"]["targets"][0]["name"], "Packet1", "{name}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_unknown_event_type_is_delivered_with_the_default_template() {
    let (slack, hook, relay) = slack_and_hook().await;
    let body = json!({"eventType": "ALERT_SUPPRESSION_WINDOW_START", "eventId": "w-1", "window": {"name": "maintenance"}});
    let (status, answer) = relay.post(&body.to_string()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let message = slack.next().await.json();
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("ALERT_SUPPRESSION_WINDOW_START")
    );
    let delivered = hook.next().await.json();
    assert_eq!(delivered["event"]["kind"], "unknown");
    assert_eq!(
        delivered["payload"]["window"]["name"], "maintenance",
        "unknown fields are kept"
    );
    relay.stop().await;
}
