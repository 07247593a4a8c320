//! Every answer a peer can give, against every destination kind: delivered, retried later, or
//! refused for good. One table, so that a kind cannot drift from the others.

use crate::common;

use alert_relay::config::Config;
use alert_relay::deliver::DeliveryError;
use alert_relay::event::Event;
use common::{Peer, Reply, SmtpServer, sample};

#[derive(Debug, PartialEq)]
enum Outcome {
    Delivered,
    Retry,
    Permanent,
}

fn outcome(result: &Result<alert_relay::deliver::Sent, DeliveryError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Delivered,
        Err(e) if e.is_retryable() => Outcome::Retry,
        Err(_) => Outcome::Permanent,
    }
}

/// Builds the destination `name` of `config` and renders the trigger sample for it.
async fn deliver_once(
    config: &str,
    name: &str,
) -> Result<alert_relay::deliver::Sent, DeliveryError> {
    let dir = common::config_dir(config, &[]);
    let config = Config::load(&dir.path().join("config.toml")).expect("config");
    let relay = config.relay().expect("relay");
    let event =
        Event::parse(sample("alert_trigger.json").as_bytes(), chrono::Utc::now()).expect("event");
    let message = relay.renderer.render(&event, name).message;
    relay.destinations[name]
        .destination
        .deliver(&alert_relay::deliver::Outgoing::new(&event, message))
        .await
}

#[tokio::test]
async fn every_http_status_against_every_http_destination_kind() {
    use Outcome::*;
    let table: &[(u16, Outcome)] = &[
        (200, Delivered),
        (202, Delivered),
        (204, Delivered),
        (301, Permanent), // redirects are never followed
        (400, Permanent),
        (401, Permanent),
        (403, Permanent),
        (404, Permanent),
        (408, Retry),
        (410, Permanent),
        (413, Permanent),
        (429, Retry),
        (500, Retry),
        (502, Retry),
        (503, Retry),
        (504, Retry),
    ];
    for kind in ["slack", "teams", "webhook"] {
        let peer = Peer::start().await;
        let config = format!(
            "[destinations.d]\nkind = \"{kind}\"\nurl = \"{}\"\n",
            peer.url("/hook")
        );
        for (status, expected) in table {
            peer.reply([match status {
                301 => Reply::Redirect("/elsewhere"),
                status => Reply::Status(*status, "answer"),
            }]);
            let result = deliver_once(&config, "d").await;
            assert_eq!(
                &outcome(&result),
                expected,
                "{kind} answered {status}: {result:?}"
            );
            assert_eq!(
                peer.next().await.path,
                "/hook",
                "{kind} {status}: one request, not redirected"
            );
            if let Err(e) = result {
                assert!(e.to_string().contains(&status.to_string()), "{kind}: {e}");
            }
        }
    }
}

#[tokio::test]
async fn connection_refused_is_retried_for_every_kind() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for kind in ["slack", "teams", "webhook"] {
        let config =
            format!("[destinations.d]\nkind = \"{kind}\"\nurl = \"http://127.0.0.1:{port}/x\"\n");
        let result = deliver_once(&config, "d").await;
        assert_eq!(outcome(&result), Outcome::Retry, "{kind}: {result:?}");
    }
    let config = format!(
        "[destinations.d]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:{port}?tls=none\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n"
    );
    let result = deliver_once(&config, "d").await;
    assert_eq!(outcome(&result), Outcome::Retry, "email: {result:?}");
}

#[tokio::test]
async fn smtp_answers_are_classified_by_their_class() {
    for (code, expected) in [
        (None, Outcome::Delivered),
        (Some(451), Outcome::Retry),
        (Some(550), Outcome::Permanent),
    ] {
        let smtp = SmtpServer::start_refusing(code);
        let config = format!(
            "[destinations.d]\nkind = \"email\"\nsmtp_url = \"{}\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
            smtp.url()
        );
        let result = deliver_once(&config, "d").await;
        assert_eq!(outcome(&result), expected, "SMTP {code:?}: {result:?}");
    }
}
