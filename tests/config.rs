//! The config loader: environment overrides, secrets read from files, and an error naming the key
//! for every invalid config. Every test here runs inside a figment `Jail`, which serializes them
//! and restores the environment.

// figment::Jail closures return figment's own (large) error type.
#![allow(clippy::result_large_err)]

#[path = "it/common.rs"]
mod common;

use std::path::Path;

use alert_relay::config::Config;
use alert_relay::event::Event;
use figment::Jail;

/// Loads `config.toml` from the jail and builds the relay; the error text, if any.
fn start_error(jail: &Jail, config: &str) -> Option<String> {
    jail.create_file("config.toml", config)
        .expect("write config");
    match Config::load(Path::new("config.toml")) {
        Err(e) => Some(format!("{e:#}")),
        Ok(config) => config.relay().err().map(|e| e.to_string()),
    }
}

#[test]
fn environment_overrides_the_file_and_secrets_come_from_files() {
    Jail::expect_with(|jail| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let peer = common::Peer::start().await;
            jail.create_file(
                "config.toml",
                "[server]\nlisten = \"127.0.0.1:8080\"\n[destinations.ops]\nkind = \"slack\"\n",
            )?;
            std::fs::create_dir("secrets").expect("mkdir");
            jail.create_file(
                "secrets/slack_url",
                &format!("{}\n", peer.url("/from-file")),
            )?;
            jail.set_env("ALERT_RELAY_SERVER__LISTEN", "127.0.0.1:9999");
            jail.set_env("ALERT_RELAY_DELIVERY__TIMEOUT", "3s");
            jail.set_env(
                "ALERT_RELAY_DESTINATIONS__OPS__URL_FILE",
                "secrets/slack_url",
            );
            let config = Config::load(Path::new("config.toml")).expect("config loads");
            assert_eq!(config.server.listen.to_string(), "127.0.0.1:9999");
            assert_eq!(config.delivery.timeout, std::time::Duration::from_secs(3));
            let relay = config.relay().expect("relay builds");
            let event = Event::parse(
                common::sample("webhook_test.json").as_bytes(),
                chrono::Utc::now(),
            )
            .unwrap();
            let answers = relay.send(&event, None).await.expect("send");
            assert!(answers[0].2.is_ok(), "{:?}", answers[0].2);
            assert_eq!(
                peer.next().await.path,
                "/from-file",
                "the URL came from url_file"
            );
            Ok(())
        })
    });
}

#[test]
fn each_invalid_config_names_its_key() {
    let slack = "[destinations.ops]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/TOPSECRET\"\n";
    let cases: &[(&str, String, &str)] = &[
        ("unknown section", "[serverr]\nlisten = \"127.0.0.1:1\"\n".into(), "serverr"),
        ("unknown key", "[server]\nlisen = \"127.0.0.1:1\"\n".into(), "lisen"),
        ("bad address", "[server]\nlisten = \"here\"\n".into(), "server.listen"),
        ("bad ingest path", "[server]\ningest_path = \"/healthz\"\n".into(), "server.ingest_path"),
        ("bad duration", "[delivery]\ntimeout = \"ten\"\n".into(), "delivery.timeout"),
        ("bad CIDR", "[server.auth]\nallow_from = [\"10.0.0.0/99\"]\n".into(), "server.auth.allow_from"),
        ("basic without password", "[server.auth]\nbasic = [{ username = \"te\" }]\n".into(), "server.auth.basic[0]"),
        ("bad destination name", "[destinations.Ops-Slack]\nkind = \"console\"\n".into(), "destinations.Ops-Slack"),
        ("unknown kind", "[destinations.ops]\nkind = \"pager\"\n".into(), "destinations.ops"),
        ("key of another kind", format!("{slack}smtp_url = \"smtp://x\"\n"), "smtp_url"),
        ("no url", "[destinations.ops]\nkind = \"slack\"\n".into(), "destinations.ops"),
        ("missing url file", "[destinations.ops]\nkind = \"teams\"\nurl_file = \"nope\"\n".into(), "url_file"),
        ("url not http", "[destinations.ops]\nkind = \"webhook\"\nurl = \"ftp://user:TOPSECRET@x/\"\n".into(), "destinations.ops.url"),
        ("bad rate limit", format!("{slack}rate_limit = \"fast\"\n"), "rate_limit"),
        ("bad from", "[destinations.mail]\nkind = \"email\"\nsmtp_url = \"smtp://u:TOPSECRET@mail.example.com\"\nfrom = \"not an address\"\nto = [\"a@example.com\"]\n".into(), "destinations.mail.from"),
        ("bad smtp scheme", "[destinations.mail]\nkind = \"email\"\nsmtp_url = \"imap://u:TOPSECRET@mail.example.com\"\nfrom = \"a@example.com\"\nto = [\"a@example.com\"]\n".into(), "destinations.mail.smtp_url"),
        ("route to nowhere", format!("{slack}[[routes]]\nto = [\"missing\"]\n"), "routes[0].to"),
        ("bad route regex", format!("{slack}[[routes]]\nmatch = {{ rule = \"(\" }}\nto = [\"ops\"]\n"), "routes[0].match.rule"),
        ("bad route kind", format!("{slack}[[routes]]\nmatch = {{ kind = [\"alert\"] }}\nto = [\"ops\"]\n"), "routes[0].match.kind"),
        ("unknown match key", format!("{slack}[[routes]]\nmatch = {{ colour = \"red\" }}\nto = [\"ops\"]\n"), "colour"),
        ("TOML syntax error on a secret's line", "[destinations.ops]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/TOPSECRET\n".into(), "line 3"),
        ("TOML syntax error after a secret", "[destinations.ops]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/TOPSECRET\" x\n".into(), "line 3"),
        ("a secret where a number goes", format!("{slack}burst = \"TOPSECRET\"\n"), "destinations.ops"),
        ("empty password", "[server.auth]\nbasic = [{ username = \"te\", password = \"\" }]\n".into(), "server.auth.basic[0]"),
        ("empty bearer token", "[server.auth]\nbearer = [\"\"]\n".into(), "server.auth.bearer"),
        ("no destination", "[server]\nlisten = \"127.0.0.1:1\"\n".into(), "destinations: none is configured"),
        ("empty metrics token", "[server]\nmetrics_token = \"\"\n".into(), "server.metrics_token"),
    ];
    Jail::expect_with(|jail| {
        for (case, config, key) in cases {
            let error = start_error(jail, config).unwrap_or_else(|| panic!("{case}: accepted"));
            assert!(
                error.contains(key),
                "{case}: the error does not name {key:?}: {error}"
            );
            assert!(
                !error.contains("TOPSECRET"),
                "{case}: the error shows a secret: {error}"
            );
        }
        assert_eq!(start_error(jail, slack), None, "the valid base config");
        Ok(())
    });
}

fn defaults_studio_enabled() -> bool {
    alert_relay::studio::StudioConfig::default().enabled
}

#[test]
fn the_shipped_config_parses_and_shows_the_defaults() {
    Jail::expect_with(|jail| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let config = Config::load(&path).expect("shipped config.toml parses");
        config.relay().expect("and builds");
        assert!(
            config.destinations.contains_key("console"),
            "it works with no external service"
        );
        assert!(config.studio.enabled && !defaults_studio_enabled());
        // Every value the shipped file writes out is the built-in default: the defaults have one
        // source, and the file shows them as they are.
        jail.create_file(
            "defaults.toml",
            "[destinations.console]\nkind = \"console\"\n",
        )?;
        let defaults = Config::load(Path::new("defaults.toml")).expect("defaults load");
        for (section, shipped, default) in [
            (
                "server",
                format!("{:?}", config.server),
                format!("{:?}", defaults.server),
            ),
            (
                "storage",
                format!("{:?}", config.storage),
                format!("{:?}", defaults.storage),
            ),
            (
                "delivery",
                format!("{:?}", config.delivery),
                format!("{:?}", defaults.delivery),
            ),
            (
                "log",
                format!("{:?}", config.log),
                format!("{:?}", defaults.log),
            ),
            (
                "templates",
                format!("{:?}", config.templates),
                format!("{:?}", defaults.templates),
            ),
            (
                "studio (enabled apart: on in the file, off by default)",
                format!(
                    "{:?}",
                    (
                        config.studio.listen,
                        &config.studio.auth,
                        config.studio.write
                    )
                ),
                format!(
                    "{:?}",
                    (
                        defaults.studio.listen,
                        &defaults.studio.auth,
                        defaults.studio.write
                    )
                ),
            ),
        ] {
            assert_eq!(
                shipped, default,
                "[{section}] in config.toml differs from the defaults"
            );
        }
        Ok(())
    });
}
