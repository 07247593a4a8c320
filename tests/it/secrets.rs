//! Secrets never leak: for every destination kind and every way a delivery can fail (refused,
//! timeout, 4xx, 5xx), the relay's logs, the error kept in the store, `deliveries` output,
//! `check` output and `/metrics` hold no webhook URL, token or password, even when the peer
//! echoes the request it got, and even when an SMTP server echoes the `AUTH` command carrying the
//! password. (mailin offers no AUTH without TLS, so in the 4xx and 5xx cases the email
//! destination, whose URL carries a password, fails at AUTH; SMTP 4xx and 5xx answers themselves
//! are classified in `classify.rs`.)

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;

use base64::Engine;
use common::{ChildRelay, Peer, Reply, SmtpServer, command, sample};

/// Every secret in [`config`], as written and as an SMTP `AUTH PLAIN` sends the mail password.
fn secrets() -> Vec<String> {
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alerts\0MAILSECRET");
    [
        "SLACKSECRET",
        "TEAMSSECRET",
        "HOOKSECRET",
        "HEADERSECRET",
        // Short secrets are secrets too.
        "Sh0rt!",
        "MAILSECRET",
        "INGESTSECRET",
        "BASICSECRET",
        "METRICSSECRET",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([plain])
    .collect()
}

/// Where each destination kind is sent, so that it fails in the way under test.
struct Targets {
    http: SocketAddr,
    smtp: SocketAddr,
}

fn config(targets: &Targets) -> String {
    let http = targets.http;
    format!(
        r#"
[server]
metrics_token = "METRICSSECRET"
[server.auth]
bearer = ["INGESTSECRET"]
basic = [{{ username = "te", password = "BASICSECRET" }}]
[delivery]
timeout = "1s"
[destinations.slack]
kind = "slack"
url = "http://{http}/services/T000/B000/SLACKSECRET"
[destinations.teams]
kind = "teams"
url = "http://{http}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=TEAMSSECRET"
[destinations.hook]
kind = "webhook"
url = "http://{http}/hook?token=HOOKSECRET"
headers = {{ Authorization = "Token HEADERSECRET", X-Short = "Sh0rt!" }}
[destinations.mail]
kind = "email"
smtp_url = "smtp://alerts:MAILSECRET@{}?tls=none"
from = "alerts@example.com"
to = ["oncall@example.com"]
"#,
        targets.smtp
    )
}

/// A port where nothing listens.
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A scripted SMTP server that offers `AUTH PLAIN` and refuses it, quoting the command it got (the
/// base64 of the user name and password) in its answer, as some servers do.
fn echoing_smtp_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes());
                let _ = say("220 smtp.test ready");
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" => "250-smtp.test\r\n250 AUTH PLAIN LOGIN".to_owned(),
                        "AUTH" => format!("535 5.7.8 authentication failed for: {line}"),
                        "QUIT" => "221 bye".to_owned(),
                        _ => "250 ok".to_owned(),
                    };
                    if say(&answer).is_err() || verb == "QUIT" {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A TCP server that accepts and never says a word: SMTP clients wait for a greeting forever.
fn silent_server() -> (SocketAddr, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (listener.local_addr().unwrap(), listener)
}

/// Runs the relay against `targets` and searches everything it shows for a secret; returns what
/// `deliveries` listed.
async fn assert_no_secret_leaks(case: &str, targets: Targets) -> String {
    let dir = common::config_dir(&config(&targets), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    let response = common::client()
        .post(format!("http://{}/", relay.addr))
        .bearer_auth("INGESTSECRET")
        .header("content-type", "application/json")
        .body(sample("alert_trigger.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{case}");
    // Wait until every destination has failed at least once and its error is stored.
    let listed = common::eventually(
        &format!("{case}: not every destination failed yet"),
        async || {
            let (ok, out) = command(dir.path(), &["deliveries"]);
            assert!(ok, "{out}");
            let failed = out
                .lines()
                .skip(1)
                .filter(|l| !l.trim_end().ends_with(" -"))
                .count();
            if failed >= 4 { Ok(out) } else { Err(out) }
        },
    )
    .await;
    let metrics = relay.metrics(Some("METRICSSECRET")).await;
    assert!(
        metrics.contains("alert_relay_delivery_attempts_total"),
        "{case}: {metrics}"
    );
    let (_, check) = command(dir.path(), &["check"]);
    relay.signal("TERM");
    relay.exit_code().await;
    let logs = common::relay_logs(dir.path());
    assert!(
        logs.contains("delivery failed") || logs.contains("delivery refused"),
        "{case}: {logs}"
    );
    let store = std::fs::read(dir.path().join("data/alert-relay.db")).unwrap_or_default();
    let store_wal = std::fs::read(dir.path().join("data/alert-relay.db-wal")).unwrap_or_default();
    for secret in &secrets() {
        for (place, text) in [
            ("logs", &logs),
            ("deliveries", &listed),
            ("metrics", &metrics),
            ("check", &check),
        ] {
            assert!(
                !text.contains(secret),
                "{case}: {secret} in the {place}:\n{text}"
            );
        }
        for (place, bytes) in [("store", &store), ("store WAL", &store_wal)] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{case}: {secret} in the {place}");
        }
    }
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_leak_nothing() {
    assert_no_secret_leaks(
        "refused",
        Targets {
            http: closed_port(),
            smtp: closed_port(),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_leak_nothing() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Hang);
    let (smtp, _silent) = silent_server();
    assert_no_secret_leaks(
        "timeout",
        Targets {
            http: peer.addr,
            smtp,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_leak_nothing_even_when_the_peer_echoes_the_request() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Echo(400));
    let smtp = SmtpServer::start_refusing(Some(550));
    assert_no_secret_leaks(
        "4xx",
        Targets {
            http: peer.addr,
            smtp: smtp.addr,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_leak_nothing_even_when_the_peer_echoes_the_request() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Echo(503));
    let smtp = SmtpServer::start_refusing(Some(451));
    assert_no_secret_leaks(
        "5xx",
        Targets {
            http: peer.addr,
            smtp: smtp.addr,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_echoing_auth_leaks_nothing() {
    let peer = Peer::start().await;
    peer.answer_by_default(Reply::Echo(400));
    let listed = assert_no_secret_leaks(
        "AUTH echoed",
        Targets {
            http: peer.addr,
            smtp: echoing_smtp_server(),
        },
    )
    .await;
    assert!(
        listed.contains("authentication failed for: AUTH PLAIN ***"),
        "the server's answer is kept, without the credentials: {listed}"
    );
}
