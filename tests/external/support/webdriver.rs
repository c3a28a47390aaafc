//! Headless Chromium over WebDriver, for tests that run async beside an in-process operator:
//! Debian's `chromium` and `chromedriver` from `hack/browser.sh` (installed on first use when
//! the tests run as root), or those `PARTNER_OPERATOR_BROWSER` and
//! `PARTNER_OPERATOR_WEBDRIVER` name. Fails with the script's one line (the exact command to
//! run) when neither can be had; never skips.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::process::KillOnDrop;
use super::{Patience, Seen, eventually};

/// The browser and its WebDriver, from `hack/browser.sh`.
pub fn browser_and_driver() -> (String, String) {
    let script = super::project("hack/browser.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}", stderr.trim());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines().map(str::to_string);
    let browser = lines.next().expect("hack/browser.sh prints the browser");
    let driver = lines.next().expect("hack/browser.sh prints the driver");
    (browser, driver)
}

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in headless Chromium, closed when dropped with its driver.
pub struct WebDriver {
    driver: SocketAddr,
    session: String,
    _process: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl WebDriver {
    pub async fn start() -> Self {
        let (chromium, chromedriver) = browser_and_driver();
        let driver = super::metrics::free_port();
        let process = KillOnDrop(
            Command::new(&chromedriver)
                .arg(format!("--port={}", driver.port()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        eventually("chromedriver listening", Patience::PROCESS_EXIT, || async {
            tokio::net::TcpStream::connect(driver).await.map(|_| ())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            session: String::new(),
            _process: process,
            _profile: profile,
        };
        let created = browser
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=1400,900",
                            format!("--user-data-dir={}", browser._profile.path().display()),
                        ],
                    },
                }}}),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = match body {
            Value::Null => String::new(),
            body => body.to_string(),
        };
        let response = super::http::request(
            self.driver,
            method,
            path,
            &[],
            "application/json; charset=utf-8",
            &body,
        )
        .await;
        (response.status, response.json()["value"].clone())
    }

    /// One WebDriver command (`Value::Null`: no body); its `value`, after asserting success.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.raw(method, path, &body).await;
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }

    fn session(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn open(&self, url: &str) {
        self.call("POST", &self.session("/url"), json!({"url": url}))
            .await;
    }

    /// The element matching `css`, if there is one now.
    pub async fn find(&self, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css});
        let (status, value) = self.raw("POST", &self.session("/element"), &body).await;
        (status == 200).then(|| value[ELEMENT].as_str().unwrap().to_string())
    }

    /// The element matching `css`, once there is one.
    pub async fn wait_for(&self, css: &str) -> String {
        eventually(
            format!("an element {css}"),
            Patience::WALKTHROUGH,
            || async { self.find(css).await.ok_or(Seen(css.to_string())) },
        )
        .await
    }

    /// The visible text of the element matching `css` (empty when there is none).
    pub async fn text_of(&self, css: &str) -> String {
        let Some(element) = self.find(css).await else {
            return String::new();
        };
        let (status, value) = self
            .raw(
                "GET",
                &self.session(&format!("/element/{element}/text")),
                &Value::Null,
            )
            .await;
        if status == 200 {
            value.as_str().unwrap_or_default().to_string()
        } else {
            String::new()
        }
    }

    /// Waits until the text of `css` satisfies `check`; the text.
    pub async fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(format!("{css}: {what}"), Patience::WALKTHROUGH, || async {
            let text = self.text_of(css).await;
            if check(&text) {
                Ok(text)
            } else {
                Err(Seen(text))
            }
        })
        .await
    }

    /// Clicks the element matching `css`, finding it again if the page replaced it meanwhile
    /// (a live update).
    pub async fn click(&self, css: &str) {
        eventually(
            format!("a click on {css}"),
            Patience::WALKTHROUGH,
            || async {
                let element = self.find(css).await.ok_or(Seen(format!("no {css}")))?;
                let path = self.session(&format!("/element/{element}/click"));
                match self.raw("POST", &path, &json!({})).await {
                    (200, _) => Ok(()),
                    (_, value) if value["error"] == "stale element reference" => {
                        Err(Seen(format!("{css} replaced")))
                    }
                    (status, value) => panic!("POST {path}: {status} {value}"),
                }
            },
        )
        .await
    }

    /// Types `text` into the element matching `css` (cleared first).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        let path = self.session(&format!("/element/{element}"));
        self.call("POST", &format!("{path}/clear"), json!({})).await;
        self.call("POST", &format!("{path}/value"), json!({"text": text}))
            .await;
    }

    /// Runs `script` in the page (its arguments `args`); its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session("/execute/sync"),
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The browser's cookies for the current page, `name=value` each (`HttpOnly` ones too).
    pub async fn cookies(&self) -> Vec<String> {
        let cookies = self
            .call("GET", &self.session("/cookie"), Value::Null)
            .await;
        cookies
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap(),
                    c["value"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// The page as a PNG, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self
            .call("GET", &self.session("/screenshot"), Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if self.session.is_empty() {
            return;
        }
        // Blocking, outside the test's runtime: the session is closed before its driver.
        let driver = self.driver;
        let path = self.session("");
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(super::http::request(
                driver,
                "DELETE",
                &path,
                &[],
                "application/json",
                "",
            ))
        })
        .join();
    }
}
