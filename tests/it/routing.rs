//! `[[routes]]`: one table of events against one set of routes, covering kinds, rule and test
//! regexes, types, severities, labels and `continue`.

use alert_relay::config::Config;
use alert_relay::event::Event;
use alert_relay::route::Router;
use figment::Figment;
use figment::providers::{Format, Toml};
use serde_json::{Value, json};

const DESTINATIONS: &str = r#"
[destinations.slack]
kind = "console"
[destinations.email]
kind = "console"
[destinations.teams]
kind = "console"
[destinations.hook]
kind = "console"
[destinations.pager]
kind = "console"
[destinations.fallback]
kind = "console"
"#;

const ROUTES: &str = r#"
[[routes]]
match = { kind = ["alert.trigger", "alert.clear"], severity = ["Major", "Critical"] }
to = ["slack", "email"]
continue = true

[[routes]]
match = { rule = "^Default" }
to = ["teams"]

[[routes]]
match = { test = "(?i)checkout", type = ["HTTP Server"] }
to = ["hook", "email"]

[[routes]]
match = { label = ["Production"] }
to = ["pager"]

[[routes]]
to = ["fallback"]
"#;

fn router(toml: &str) -> Router {
    let config: Config = Figment::from(Toml::string(toml)).extract().expect("config");
    Router::new(
        &config.routes,
        config.destinations.keys(),
        &config.sources().expect("sources"),
    )
    .expect("routes")
}

fn event(body: Value) -> Event {
    Event::parse(body.to_string().as_bytes(), chrono::Utc::now()).expect("event")
}

fn alert(event_type: &str, alert: Value) -> Event {
    event(json!({"eventType": event_type, "eventId": "1", "alert": alert}))
}

#[test]
fn routes_choose_destinations_in_order() {
    let router = router(&format!("{DESTINATIONS}{ROUTES}"));
    let trigger = "ALERT_NOTIFICATION_TRIGGER";
    let cases: Vec<(&str, Event, &[&str])> = vec![
        (
            "major HTTP alert: route 1 continues, route 3 stops (hook; email only once)",
            alert(
                trigger,
                json!({"severity": "Major", "ruleName": "Checkout errors", "testName": "Checkout API", "type": "HTTP Server", "testLabels": [{"name": "Production"}]}),
            ),
            &["slack", "email", "hook"],
        ),
        (
            "severity compares without case; then the label route",
            alert(
                "ALERT_NOTIFICATION_CLEAR",
                json!({"severity": "critical", "ruleName": "Custom", "testLabels": [{"name": "production"}]}),
            ),
            &["slack", "email", "pager"],
        ),
        (
            "no severity: route 1 does not hold; the rule regex does",
            alert(trigger, json!({"ruleName": "Default Page Load Alert Rule"})),
            &["teams"],
        ),
        (
            "Info severity with a Default rule",
            alert(
                trigger,
                json!({"severity": "Info", "ruleName": "Default Network Alert Rule", "testLabels": [{"name": "Production"}]}),
            ),
            &["teams"],
        ),
        (
            "test regex holds but the type does not",
            alert(
                trigger,
                json!({"ruleName": "Custom", "testName": "checkout page", "type": "Page Load"}),
            ),
            &["fallback"],
        ),
        (
            "agent alert with a Major severity: kind does not match route 1",
            event(
                json!({"eventType": "AGENT_ALERT_NOTIFICATION_TRIGGER", "eventId": "2", "agentAlert": {"severity": "Major", "ruleName": "Agent Offline"}}),
            ),
            &["fallback"],
        ),
        (
            "webhook test: only the catch-all",
            event(json!({"eventType": "WEBHOOK_TEST", "eventId": "3"})),
            &["fallback"],
        ),
        (
            "unknown event type",
            event(json!({"eventType": "NEW_THING", "eventId": "4"})),
            &["fallback"],
        ),
    ];
    for (case, event, expected) in cases {
        assert_eq!(router.destinations_for(&event), expected.to_vec(), "{case}");
    }
}

#[test]
fn kinds_and_missing_catch_all() {
    let router = router(&format!(
        "{DESTINATIONS}[[routes]]\nmatch = {{ kind = [\"test\", \"unknown\"] }}\nto = [\"hook\"]\n"
    ));
    assert_eq!(
        router.destinations_for(&event(json!({"eventType": "WEBHOOK_TEST"}))),
        ["hook"]
    );
    assert_eq!(
        router.destinations_for(&event(json!({"eventType": "OTHER"}))),
        ["hook"]
    );
    let nothing = alert("ALERT_NOTIFICATION_TRIGGER", json!({"ruleName": "x"}));
    assert!(
        router.destinations_for(&nothing).is_empty(),
        "no route matches: nowhere"
    );
}

#[test]
fn without_routes_every_event_goes_everywhere() {
    let router = router(DESTINATIONS);
    let all = router.destinations_for(&event(json!({"eventType": "WEBHOOK_TEST"})));
    assert_eq!(
        all,
        ["email", "fallback", "hook", "pager", "slack", "teams"]
    );
}
