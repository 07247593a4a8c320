//! `[server.tls]`: the relay serves HTTPS with a certificate made here, and nothing in clear.

use crate::common;

use common::{TestRelay, sample};

#[tokio::test]
async fn the_relay_serves_https_with_its_certificate() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let relay = TestRelay::start_with_files(
        "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n[destinations.console]\nkind = \"console\"\n",
        &[("tls/cert.pem", &cert_pem), ("tls/key.pem", &key_pem)],
    )
    .await;
    let https = trusting(&cert_pem, relay.addr);
    let url = format!("https://localhost:{}/", relay.addr.port());
    let response = https
        .post(&url)
        .header("content-type", "application/json")
        .body(sample("webhook_test.json"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(answer["status"], "accepted");
    let health = https
        .get(format!("https://localhost:{}/healthz", relay.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A client that does not trust the certificate is refused, and plain HTTP gets no answer.
    let untrusting = common::client();
    assert!(
        untrusting
            .get(format!("https://127.0.0.1:{}/healthz", relay.addr.port()))
            .send()
            .await
            .is_err()
    );
    assert!(untrusting.get(relay.url("/healthz")).send().await.is_err());
    relay.stop().await;
}

#[tokio::test]
async fn a_missing_or_bad_certificate_is_a_config_error() {
    let dir = common::config_dir(
        "[server.tls]\ncert = \"nope.pem\"\nkey = \"nope.key\"\n[destinations.console]\nkind = \"console\"\n",
        &[],
    );
    let config = alert_relay::config::Config::load(&dir.path().join("config.toml")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = alert_relay::run(config, listener, async {})
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("server.tls.cert"), "{error}");
}

/// An HTTPS client that trusts only `cert_pem`, sends `localhost` to `addr`, and opens a new
/// connection (a new handshake) for every request. Built on the relay's own crypto provider.
fn trusting(cert_pem: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(alert_relay::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .tls_backend_preconfigured(tls)
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_applies_after_sighup_without_a_restart() {
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = common::config_dir(
        "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n[destinations.console]\nkind = \"console\"\n",
        &[
            ("tls/cert.pem", &first.cert.pem()),
            ("tls/key.pem", &first.signing_key.serialize_pem()),
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut process = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("ALERT_RELAY_SERVER__LISTEN", addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://localhost:{port}/healthz");
    let old_client = trusting(&first.cert.pem(), addr);
    let new_client = trusting(&renewed.cert.pem(), addr);
    common::eventually("never served HTTPS", async || {
        old_client
            .get(&url)
            .send()
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    assert!(
        new_client.get(&url).send().await.is_err(),
        "the renewed certificate is not in use yet"
    );

    std::fs::write(dir.path().join("tls/cert.pem"), renewed.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("tls/key.pem"),
        renewed.signing_key.serialize_pem(),
    )
    .unwrap();
    common::signal(process.id(), "HUP");
    common::eventually("the renewed certificate never applied", async || {
        new_client
            .get(&url)
            .send()
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    assert!(
        old_client.get(&url).send().await.is_err(),
        "new connections use the renewed certificate"
    );
    let _ = process.kill();
    let _ = process.wait();
}
