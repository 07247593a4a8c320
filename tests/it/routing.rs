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

/// A destination named by two matching routes goes as the first says (its hold, its group); the
/// group's labels are the values of `group_by`.
#[test]
fn the_first_route_naming_a_destination_says_how() {
    let router = router(&format!(
        "{DESTINATIONS}[[routes]]\nmatch = {{ rule = \"^Lat\" }}\nto = [\"slack\"]\n\
         group_by = [\"test\", \"label:team\"]\ngroup_wait = \"10s\"\ncontinue = true\n\
         [[routes]]\nto = [\"slack\", \"email\"]\nhold = \"1m\"\n"
    ));
    let latency = alert(
        "ALERT_NOTIFICATION_TRIGGER",
        json!({"ruleName": "Latency", "testName": "checkout"}),
    );
    let plan = router.plan(&latency);
    assert_eq!(plan.len(), 2);
    let group = plan[0].group.as_ref().expect("slack groups");
    assert_eq!(
        (plan[0].destination.as_str(), plan[0].hold),
        ("slack", None)
    );
    assert_eq!(group.wait, std::time::Duration::from_secs(10));
    assert_eq!(group.interval, alert_relay::route::GROUP_INTERVAL);
    assert_eq!(
        group.labels(&latency),
        [
            ("test".to_owned(), "checkout".to_owned()),
            ("label:team".to_owned(), String::new())
        ]
    );
    assert_eq!(
        (plan[1].destination.as_str(), plan[1].hold),
        ("email", Some(std::time::Duration::from_secs(60)))
    );
}

#[test]
fn group_and_hold_settings_that_cannot_be_are_refused() {
    for (route, why) in [
        (
            "group_by = [\"colour\"]",
            "routes[0].group_by: unknown field \"colour\"",
        ),
        (
            "group_wait = \"1m\"",
            "routes[0].group_wait: group_wait and group_interval need group_by",
        ),
        (
            "group_by = [\"test\"]\nhold = \"1m\"",
            "routes[0].hold: does not combine with group_by",
        ),
        ("hold = \"0s\"", "routes[0].hold: must be longer than 0s"),
        ("group_by = []", "routes[0].group_by: names no field"),
    ] {
        let config: Config = Figment::from(Toml::string(&format!(
            "{DESTINATIONS}[[routes]]\nto = [\"hook\"]\n{route}\n"
        )))
        .extract()
        .expect("config");
        let error = Router::new(
            &config.routes,
            config.destinations.keys(),
            &config.sources().unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with(why), "{route}: {error}");
    }
}
