//! End to end in a real browser: `partner-operator sandbox` runs, the example Partners are
//! applied with kubectl, and headless Chromium (Debian's `chromium`, driven over WebDriver by
//! its `chromedriver`) opens contoso's activation link from the `.eml` in the outbox, clicks
//! Activate and sees the confirmation; then the Partner is `Activated`.
//!
//! The browser is required: `hack/browser.sh` installs Debian's `chromium` and
//! `chromium-driver` when they are missing and the test runs as root; otherwise the test fails
//! with one line giving the command that installs them.

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::process::{KillOnDrop, Sandbox, examples, stdout};
use support::webdriver::browser_and_driver;
use support::{Patience, Seen, eventually_blocking};

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in headless Chromium.
struct Browser {
    driver: SocketAddr,
    session: String,
    runtime: tokio::runtime::Runtime,
    _process: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Self {
        let (chromium, chromedriver) = browser_and_driver();
        let driver = support::metrics::free_port();
        let process = KillOnDrop(
            Command::new(&chromedriver)
                .arg(format!("--port={}", driver.port()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        eventually_blocking("chromedriver listening", Patience::PROCESS_EXIT, || {
            std::net::TcpStream::connect(driver).is_ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            session: String::new(),
            runtime,
            _process: process,
            _profile: profile,
        };
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--window-size=900,640",
                        format!("--user-data-dir={}", browser._profile.path().display()),
                    ],
                },
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command (`Value::Null`: no body, as for a GET); its `value`.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = match body {
            Value::Null => String::new(),
            body => body.to_string(),
        };
        let response = self.runtime.block_on(support::http::request(
            self.driver,
            method,
            path,
            &[],
            "application/json; charset=utf-8",
            &body,
        ));
        let value = response.json()["value"].clone();
        assert_eq!(response.status, 200, "{method} {path}: {value}");
        value
    }

    fn session(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn open(&self, url: &str) {
        self.call("POST", &self.session("/url"), json!({"url": url}));
    }

    /// The element matching `css`, if there is one now.
    fn find(&self, css: &str) -> Option<String> {
        let response = self.runtime.block_on(support::http::request(
            self.driver,
            "POST",
            &self.session("/element"),
            &[],
            "application/json; charset=utf-8",
            &json!({"using": "css selector", "value": css}).to_string(),
        ));
        (response.status == 200).then(|| {
            response.json()["value"][ELEMENT]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    fn text(&self, element: &str) -> String {
        self.call(
            "GET",
            &self.session(&format!("/element/{element}/text")),
            Value::Null,
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    fn click(&self, element: &str) {
        self.call(
            "POST",
            &self.session(&format!("/element/{element}/click")),
            json!({}),
        );
    }

    /// The text of `element`, unless it went stale (its page was replaced meanwhile).
    fn text_now(&self, element: &str) -> Option<String> {
        let response = self.runtime.block_on(support::http::request(
            self.driver,
            "GET",
            &self.session(&format!("/element/{element}/text")),
            &[],
            "application/json; charset=utf-8",
            "",
        ));
        (response.status == 200).then(|| {
            response.json()["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    }

    /// The page's heading once it reads `expected` (a click navigates: until the new page is
    /// there, the old heading, or none, is seen).
    fn wait_for_heading(&self, expected: &str) {
        eventually_blocking(
            format!("the page says {expected:?}"),
            Patience::WALKTHROUGH,
            || {
                let heading = self.find("h1#outcome").and_then(|h| self.text_now(&h));
                match heading {
                    Some(text) if text == expected => Ok(()),
                    seen => Err(Seen(format!("{seen:?}"))),
                }
            },
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.runtime.block_on(support::http::request(
                self.driver,
                "DELETE",
                &self.session(""),
                &[],
                "application/json",
                "",
            ));
        }
    }
}

/// The activation links mailed to `to` so far, oldest first, each decoded from the text part of
/// its activation `.eml`; waits for at least `count`.
fn links_in_outbox(outbox: &Path, to: &str, count: usize) -> Vec<String> {
    eventually_blocking(
        format!("{count} activation .eml to {to}"),
        Patience::WALKTHROUGH,
        || {
            let mut emails: Vec<_> = std::fs::read_dir(outbox)
                .map(|dir| dir.map(|e| e.unwrap().path()).collect())
                .unwrap_or_default();
            emails.sort();
            let links: Vec<String> = emails
                .iter()
                .filter(|p| p.to_string_lossy().ends_with("-activation.eml"))
                .filter_map(|path| {
                    let raw = std::fs::read(path).unwrap();
                    let message = mail_parser::MessageParser::default().parse(&raw)?;
                    let address = message.to()?.first()?.address()?.to_string();
                    (address == to).then(|| message.body_text(0).unwrap().into_owned())
                })
                .filter_map(|text| {
                    text.split_whitespace()
                        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/activate?"))
                        .map(str::to_string)
                })
                .collect();
            if links.len() >= count {
                Ok(links)
            } else {
                Err(format!("{emails:?}"))
            }
        },
    )
}

impl Browser {
    /// Saves what the browser shows as `<name>.png`: into `PARTNER_OPERATOR_SCREENSHOTS` when
    /// set (`docs/screenshots` refreshes the README's), else under the target directory.
    fn screenshot(&self, name: &str) {
        use base64::Engine;
        let encoded = self.call("GET", &self.session("/screenshot"), Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 PNG"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::env::var_os("PARTNER_OPERATOR_SCREENSHOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

#[test]
fn a_partner_activates_in_a_browser_from_the_emailed_link() {
    let sandbox = Sandbox::start(&[]);
    stdout(&sandbox.kubectl(&["apply", "-f", examples().to_str().unwrap()]));
    sandbox.wait_for_ready_examples();
    let outbox = sandbox.dir.path().join("outbox");
    let link = links_in_outbox(&outbox, "admin@contoso.example", 1).remove(0);

    let browser = Browser::start();
    browser.open(&link);
    browser.wait_for_heading("Activate your tenant");
    let page = browser.call("GET", &browser.session("/source"), Value::Null);
    let page = page.as_str().unwrap();
    assert!(
        page.contains("Your tenant with Northwind Distribution is ready for Contoso IT Services"),
        "{page}"
    );
    // The distributor's name heads the page; its support contact (the example's) closes it.
    let brand = browser.find("#brand").expect("the distributor's name");
    assert_eq!(browser.text(&brand), "Northwind Distribution");
    let support = browser.find("footer#support").expect("the support contact");
    assert!(
        browser
            .text(&support)
            .contains("partners@northwind.example"),
        "{page}"
    );
    browser.screenshot("activation-page");
    let button = browser
        .find("button#activate")
        .expect("the Activate button");
    assert_eq!(browser.text(&button), "Activate");
    browser.click(&button);
    browser.wait_for_heading("Your tenant is activated");
    browser.screenshot("activation-activated");

    stdout(&sandbox.kubectl(&[
        "wait",
        "partner/contoso",
        "-n",
        "northwind-partners",
        "--for=condition=Activated",
        "--timeout=30s",
    ]));
    // Opened again, the link says it was used.
    browser.open(&link);
    browser.wait_for_heading("Your tenant is already activated");
    browser.screenshot("activation-already-activated");

    // fabrikam asks for a new link: the first one says it was replaced.
    let first = links_in_outbox(&outbox, "it@fabrikam.example", 1).remove(0);
    stdout(&sandbox.kubectl(&[
        "patch",
        "partner/fabrikam",
        "-n",
        "northwind-partners",
        "--type=merge",
        "-p",
        r#"{"spec":{"activation":{"resendRequest":"again"}}}"#,
    ]));
    links_in_outbox(&outbox, "it@fabrikam.example", 2);
    browser.open(&first);
    browser.wait_for_heading("This link was replaced");
    browser.screenshot("activation-replaced");
}
