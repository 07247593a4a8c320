//! The template studio's page in a real headless Chromium (`browser.rs`): what it previews, saves
//! and sends, against the relay it runs on; ignored where Chromium is missing, run by `.ci/run`.

use fantoccini::Locator;
use serde_json::json;

use crate::browser::Browser;
use crate::common;
use crate::studio::studio_relay;
use common::{Peer, TestRelay, sample};

/// A relay with the studio (and `extra` config), and the studio's page open in Chromium on the
/// trigger sample.
async fn studio_in_a_browser(peer: &Peer, extra: &str) -> (TestRelay, Browser) {
    let (relay, url) = studio_relay(peer, extra).await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{url}/")).await.unwrap();
    browser
        .select("event", "sample:thousandeyes/alert_trigger.json")
        .await;
    (relay, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver (Debian packages chromium, chromium-driver); .ci/run installs and runs it"]
async fn the_page_previews_every_kind_as_the_template_is_typed_and_saves_it() {
    let peer = Peer::start().await;
    let (relay, browser) = studio_in_a_browser(&peer, "write = true").await;
    let title = "Default Page Load Alert Rule on http://www.thousandeyes111.com";
    browser
        .until(
            "#preview-slack .bk-header",
            "the Slack header shows the title",
            |t| t == format!("🔴 {title}"),
        )
        .await;
    let facts = browser.text("#preview-teams .ac-facts").await;
    assert!(
        facts.contains("Rule") && facts.contains("Default Page Load Alert Rule"),
        "{facts}"
    );
    let subject = browser.text("#preview-email .subject").await;
    assert_eq!(subject, format!("Subject: [TRIGGERED] {title}"));
    std::fs::create_dir_all("target").ok();
    if let Ok(png) = browser.client.screenshot().await {
        let _ = std::fs::write("target/studio.png", png);
    }

    // Typing changes the preview.
    browser.select("template-file", "slack/default.hbs").await;
    browser
        .until("#template-source", "the template is loaded", |t| {
            t.contains("starts from built-in slack/default.hbs")
        })
        .await;
    browser
        .type_into(
            "template",
            r#"{"blocks": [{"type": "header", "text": {"type": "plain_text", "text": {{json (concat "Edited: " summary.title)}}}}]}"#,
        )
        .await;
    browser
        .until(
            "#preview-slack .bk-header",
            "the preview follows the typing",
            |t| t == format!("Edited: {title}"),
        )
        .await;
    // A syntax error shows where it is.
    browser
        .type_into("template", "{\"text\": \"{{#if summary.title}}\"}")
        .await;
    let problem = browser
        .until("#problem", "the error shows", |t| !t.is_empty())
        .await;
    assert!(problem.starts_with("slack/default.hbs:1:"), "{problem}");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // Save writes the file, and the relay's next delivery uses it.
    browser
        .type_into(
            "template",
            r#"{"text": "saved from the studio: {{summary.title}}"}"#,
        )
        .await;
    browser.until("#problem", "no error", str::is_empty).await;
    browser
        .client
        .find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .until("#save-status", "saved", |t| t.starts_with("Saved "))
        .await;
    let saved = relay.dir.path().join("templates/slack/default.hbs");
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .contains("saved from the studio")
    );
    common::eventually("the relay reloaded", async || {
        let (_, metrics) = relay.get("/metrics").await;
        match metrics.contains("alert_relay_config_reloads_total{outcome=\"success\"} 1") {
            true => Ok(()),
            false => Err(metrics),
        }
    })
    .await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    assert_eq!(
        peer.next().await.json()["text"],
        format!("saved from the studio: {title}")
    );

    // Send test reaches the destination now.
    browser.select("destination", "slack").await;
    browser
        .client
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .until("#status", "sent", |t| t.starts_with("Sent: 200"))
        .await;
    assert_eq!(
        peer.next().await.json()["text"],
        format!("saved from the studio: {title}")
    );
    relay.stop().await;
}

/// The email preview is served from its own URL under a policy that lets its inline styles apply
/// (the page's own forbids them): the trigger's header is the red the email has, and the page
/// loads without a console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver (Debian packages chromium, chromium-driver); .ci/run installs and runs it"]
async fn the_email_preview_is_styled_as_the_email_and_the_page_logs_no_error() {
    let peer = Peer::start().await;
    let (relay, browser) = studio_in_a_browser(&peer, "").await;
    browser
        .until("#preview-email .subject", "the email preview", |t| {
            t.contains("[TRIGGERED]")
        })
        .await;
    let client = &browser.client;
    let background = common::eventually("the email's header in its frame", async || {
        let frame = client
            .find(Locator::Css("#preview-email iframe"))
            .await
            .map_err(|e| e.to_string())?;
        frame.enter_frame().await.map_err(|e| e.to_string())?;
        let header = client.find(Locator::Css("table td")).await;
        let colour = match header {
            Ok(header) => header
                .css_value("background-color")
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        client
            .enter_parent_frame()
            .await
            .map_err(|e| e.to_string())?;
        colour
    })
    .await;
    // The built-in template's trigger header: background #c62828.
    assert_eq!(background, "rgba(198, 40, 40, 1)");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver (Debian packages chromium, chromium-driver); .ci/run installs and runs it"]
async fn a_hostile_event_runs_no_script_in_any_preview() {
    let peer = Peer::start().await;
    let (relay, url) = studio_relay(&peer, "").await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{url}/")).await.unwrap();
    browser
        .until("#preview-slack .bk-header", "the page is ready", |t| {
            !t.is_empty()
        })
        .await;
    let hostile = sample("alert_trigger.json").replace(
        "http://www.thousandeyes111.com",
        r#"<img src=x onerror=\"window.__pwned=1\"></script><script>window.__pwned=2</script> <!channel> <https://evil.example|click>"#,
    );
    browser.type_into("event-json", &hostile).await;
    let header = browser
        .until(
            "#preview-slack .bk-header",
            "the hostile title shows",
            |t| t.contains("onerror"),
        )
        .await;
    assert!(
        header.contains("<img src=x onerror=\"window.__pwned=1\">"),
        "shown as text: {header}"
    );
    browser
        .select("template-file", "email/default.html.hbs")
        .await;
    browser
        .until("#template-source", "the email template loaded", |t| {
            !t.is_empty()
        })
        .await;
    let pwned = browser
        .client
        .execute("return [window.__pwned, document.querySelectorAll('#preview-slack img, #preview-teams img, #preview-slack script').length]", vec![])
        .await
        .unwrap();
    assert_eq!(
        pwned,
        json!([null, 0]),
        "no script ran, no element came from the event"
    );
    let sandbox = browser
        .client
        .execute(
            "return document.querySelector('#preview-email iframe').getAttribute('sandbox')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(sandbox, json!(""), "the email frame runs no script");
    relay.stop().await;
}

/// axe-core finds no serious or critical violation at a desktop's size and at a phone's, and at
/// a phone's width the page does not scroll sideways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver (Debian packages chromium, chromium-driver); .ci/run installs and runs it"]
async fn the_page_is_accessible_and_fits_a_phone() {
    let peer = Peer::start().await;
    let (relay, browser) = studio_in_a_browser(&peer, "").await;
    browser
        .until("#preview-slack .bk-header", "the previews", |t| {
            !t.is_empty()
        })
        .await;
    for (width, height) in [(1440, 900), (390, 844)] {
        browser.resize(width, height).await;
        let violations = browser.axe_violations().await;
        assert!(
            violations.is_empty(),
            "at {width}x{height}: {violations:#?}"
        );
        assert_eq!(
            browser.overflow_x().await,
            0,
            "at {width}x{height} the page scrolls sideways: {}",
            browser.too_wide().await
        );
    }
    relay.stop().await;
}
