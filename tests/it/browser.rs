//! Headless Chromium driven through chromedriver (Debian's `chromium` and `chromium-driver`), for
//! the tests of the relay's pages; and axe-core, carried in `tests/fixtures/axe/` (no network),
//! to check a page's accessibility.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common;

/// axe-core 4.14.1 (MPL-2.0, its LICENSE beside it), injected into a page to test.
const AXE: &str = include_str!("../fixtures/axe/axe.min.js");

/// Headless Chromium through chromedriver, both stopped on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    /// Stops chromedriver and the Chromium it started, which stopping chromedriver alone leaves
    /// running (each holding inotify instances, of which a user has 128).
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub async fn start() -> Browser {
        let port = common::free_port();
        // In a process group of its own, with the browser it starts: stopped together.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver)");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"] }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let webdriver = format!("http://127.0.0.1:{port}");
        let client = common::eventually("chromedriver starts a session", async || {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        Browser { client, driver }
    }

    /// The text of the first element `css` finds, once it is not empty.
    pub async fn text(&self, css: &str) -> String {
        self.until(css, &format!("{css} has text"), |text| !text.is_empty())
            .await
    }

    /// Waits until the first element `css` finds has text satisfying `check`.
    pub async fn until(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let client = &self.client;
        common::eventually(what, async || {
            let element = client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            let text = element.text().await.map_err(|e| e.to_string())?;
            if check(&text) { Ok(text) } else { Err(text) }
        })
        .await
    }

    /// Replaces the content of the text area `id` by typing `text`.
    pub async fn type_into(&self, id: &str, text: &str) {
        let area = self.client.find(Locator::Id(id)).await.unwrap();
        area.clear().await.unwrap();
        area.send_keys(text).await.unwrap();
    }

    pub async fn select(&self, id: &str, value: &str) {
        let select = self.client.find(Locator::Id(id)).await.unwrap();
        select.select_by_value(value).await.unwrap();
    }

    pub async fn click(&self, id: &str) {
        let button = self.client.find(Locator::Id(id)).await.unwrap();
        button.click().await.unwrap();
    }

    /// The value of the form control `id` (what a text area holds).
    pub async fn value(&self, id: &str) -> String {
        let control = self.client.find(Locator::Id(id)).await.unwrap();
        control.prop("value").await.unwrap().unwrap_or_default()
    }

    /// The text of the element `id` now, empty or not.
    pub async fn content(&self, id: &str) -> String {
        let script = format!("return document.getElementById({id:?}).textContent;");
        self.js(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// What `script` returns, run in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The browser's console messages at level SEVERE (errors).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or(Value::Null);
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Sets the window's outer size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// axe-core's serious and critical violations on the page now: each rule's id, what it says
    /// and the elements it found.
    pub async fn axe_violations(&self) -> Vec<String> {
        // Injected through WebDriver, which the page's Content-Security-Policy does not govern.
        self.client
            .execute(&format!("{AXE}\nreturn true;"), vec![])
            .await
            .expect("axe-core loads");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, { resultTypes: ['violations'] }).then(done, (e) => done({ error: String(e) }));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        assert!(result.get("error").is_none(), "axe-core: {result}");
        result["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let targets: Vec<String> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n["target"].to_string())
                    .collect();
                format!("{} ({}): {}", v["id"], v["impact"], targets.join(" "))
            })
            .collect()
    }

    /// The elements that reach past the window's right edge (for a failure's message).
    pub async fn too_wide(&self) -> Value {
        self.client
            .execute(
                "const w = document.documentElement.clientWidth; return [w, document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth].concat([...document.querySelectorAll('body *')]\
                 .filter(e => e.getBoundingClientRect().right > w + 1 || e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX == 'visible')\
                 .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + e.scrollWidth + '/' + e.clientWidth).slice(0, 12));",
                vec![],
            )
            .await
            .unwrap_or_default()
    }

    /// How far the page scrolls sideways: its width beyond the window's.
    pub async fn overflow_x(&self) -> i64 {
        self.client
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap()
            .as_i64()
            .unwrap_or(0)
    }

    /// Fails unless the page, in `state`, passes axe-core without a violation and does not
    /// scroll sideways, on a desktop and at a phone's width; then back to the usual size.
    pub async fn assert_accessible_and_fits(&self, state: &str) {
        for (width, height) in [(1440, 900), (390, 844)] {
            self.resize(width, height).await;
            let violations = self.axe_violations().await;
            assert!(
                violations.is_empty(),
                "{state}, at {width}x{height}: {violations:#?}"
            );
            assert_eq!(
                self.overflow_x().await,
                0,
                "{state}, at {width}x{height} the page scrolls sideways: {}",
                self.too_wide().await
            );
        }
        self.resize(1400, 1100).await;
    }
}

/// chromedriver's console log (`POST /session/{id}/se/log`), which the W3C protocol lacks.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}
