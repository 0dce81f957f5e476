//! A real headless Chromium driven over the Chrome DevTools Protocol, for tests of pages
//! that live on (a chat between two tabs, a dashboard fed by server-sent events), which
//! `--dump-dom` cannot show: it waits for the page to go quiet, and a live page never does.
//! The browser listens on a port it picks (`--remote-debugging-port=0`, named in its
//! profile's `DevToolsActivePort`); commands go over one WebSocket (tungstenite), each page
//! a flattened session. Every wait has a deadline. Without Chromium, [`Browser::launch`]
//! says so and returns `None`, unless `PARTYLINE_REQUIRE_CHROMIUM` is set (as `.ci/run`
//! sets it).

use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocket;

/// The Chromium binary, if installed.
pub fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        assert!(
            std::env::var_os("PARTYLINE_REQUIRE_CHROMIUM").is_none(),
            "Chromium is required (PARTYLINE_REQUIRE_CHROMIUM) but not installed"
        );
        eprintln!("SKIPPED: chromium is not installed (apt install chromium)");
    }
    found
}

/// A page (tab) of the browser: its DevTools session.
#[derive(Debug, Clone)]
pub struct Page {
    session: String,
}

/// A headless Chromium under test control; killed (and its profile removed) on drop.
pub struct Browser {
    child: Child,
    devtools: WebSocket<TcpStream>,
    next_id: u64,
    profile: PathBuf,
}

impl Browser {
    /// Starts headless Chromium, or returns `None` when it is not installed.
    pub fn launch() -> Option<Browser> {
        let binary = chromium()?;
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "chromium-cdp-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile folder");
        let child = Command::new(binary)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            .args(["--no-first-run", "--no-default-browser-check", "--window-size=1280,900"])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        // Chromium names its port and browser path in the profile once it listens.
        let active = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&active)
                && let [port, path] = text.lines().collect::<Vec<_>>()[..]
            {
                break format!("ws://127.0.0.1:{port}{path}");
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        let addr = url.trim_start_matches("ws://").split('/').next().expect("host:port").to_owned();
        let stream = TcpStream::connect(addr).expect("connect to DevTools");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let (devtools, _) = tungstenite::client::client(url.as_str(), stream)
            .unwrap_or_else(|e| panic!("DevTools handshake: {e}"));
        Some(Browser { child, devtools, next_id: 1, profile })
    }

    /// Sends a DevTools command (to a page's session, or to the browser) and returns its
    /// result; events that arrive meanwhile are skipped.
    pub fn command(&mut self, page: Option<&Page>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(page) = page {
            message["sessionId"] = json!(page.session);
        }
        self.devtools
            .send(tungstenite::Message::text(message.to_string()))
            .expect("DevTools command sent");
        loop {
            // Bounded by the socket's 30 s read timeout.
            let reply = self.devtools.read().unwrap_or_else(|e| panic!("{method}: {e}"));
            let tungstenite::Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
            if value["id"] != json!(id) {
                continue;
            }
            assert!(value.get("error").is_none(), "{method} failed: {}", value["error"]);
            return value["result"].clone();
        }
    }

    /// Opens `url` in a new tab.
    pub fn open(&mut self, url: &str) -> Page {
        let target = self.command(None, "Target.createTarget", json!({ "url": url }));
        let attached = self.command(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        Page { session: attached["sessionId"].as_str().expect("a session id").to_owned() }
    }

    /// Evaluates `expression` in the page (promises awaited); returns its value. A thrown
    /// exception fails the test.
    pub fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let result = self.command(
            Some(page),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = result.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        result["result"]["value"].clone()
    }

    /// Waits (at most `within`) until `expression` is true in the page; fails the test with
    /// `what` and the page's text otherwise.
    pub fn wait_until(&mut self, page: &Page, expression: &str, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        let guarded =
            format!("(() => {{ try {{ return !!({expression}); }} catch {{ return false; }} }})()");
        loop {
            if self.eval(page, &guarded) == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                let text = self.eval(page, "document.body ? document.body.innerText : ''");
                panic!("{what}: not so within {within:?}; the page says:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
