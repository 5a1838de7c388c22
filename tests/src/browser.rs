//! Real headless browsers for the browser-side tests: the built browser peer served over HTTP
//! on loopback, Chromium driven through chromedriver and Firefox through geckodriver
//! (WebDriver), scripts run in their pages.
//!
//! `./scripts/test` installs Debian's `chromium`, `chromium-driver` and `firefox-esr`, and
//! `geckodriver` from crates.io, builds the browser peer into `target/pollen-www` before the
//! tests run, and sets `POLLEN_REQUIRE_BROWSER=1` so a missing piece fails the tests instead
//! of skipping them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

/// Chromium flags for WebRTC on loopback in a closed network, as root.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
];

/// The built browser peer and dashboard (`target/pollen-www`, with `pkg/`), if present.
pub fn www_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pollen-www");
    [
        "pkg/pollen_wasm_bg.wasm",
        "pkg/pollen_web_bg.wasm",
        "index.html",
        "peer.html",
    ]
    .iter()
    .all(|f| root.join(f).is_file())
    .then_some(root)
}

/// Panics unless the machine has an IPv4 default route: Chromium offers WebRTC host
/// candidates only on that route's interface, never on loopback, so two pages on a machine
/// without one cannot connect. `./scripts/test` adds one where it is missing.
pub fn require_default_route() {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let has_default = routes
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some("00000000"));
    assert!(
        has_default,
        "this machine has no IPv4 default route, so Chromium offers no WebRTC candidates for \
         two local pages to connect: run ./scripts/test (source scripts/lib.sh; \
         ensure_browser_route) to add a veth interface with one"
    );
}

/// Firefox preferences for WebRTC on loopback in a closed network.
fn firefox_prefs() -> Value {
    serde_json::json!({
        "media.peerconnection.ice.loopback": true,
        "media.peerconnection.ice.obfuscate_host_addresses": false,
        "media.peerconnection.ice.default_address_only": false,
        "network.proxy.type": 0,
        "app.update.enabled": false,
        "browser.shell.checkDefaultBrowser": false,
        "datareporting.policy.dataSubmissionEnabled": false,
        "toolkit.telemetry.enabled": false,
    })
}

/// geckodriver, installed by `cargo install` (in `~/.cargo/bin`) or on the `PATH`.
fn geckodriver() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let mut candidates: Vec<PathBuf> = home
        .into_iter()
        .map(|h| h.join("bin/geckodriver"))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("geckodriver")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Whether Firefox tests can run; panics with what is missing when browsers are required.
pub fn firefox_available() -> bool {
    if !available() {
        return false;
    }
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/firefox-esr").exists() {
        missing.push("/usr/bin/firefox-esr");
    }
    if geckodriver().is_none() {
        missing.push("geckodriver (cargo install geckodriver)");
    }
    ready_or_skip("Firefox tests", &missing)
}

/// Whether browser tests can run; panics with what is missing when they are required.
pub fn available() -> bool {
    let mut missing = Vec::new();
    if www_dir().is_none() {
        missing.push(
            "the built browser peer and dashboard (target/pollen-www; ./scripts/test builds it)",
        );
    }
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(bin).exists() {
            missing.push(bin);
        }
    }
    ready_or_skip("browser tests", &missing)
}

/// True when nothing is `missing`; otherwise skips (false), or panics when
/// `POLLEN_REQUIRE_BROWSER` is set.
fn ready_or_skip(what: &str, missing: &[&str]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{what} need: {}", missing.join(", "));
    assert!(
        std::env::var_os("POLLEN_REQUIRE_BROWSER").is_none(),
        "{msg} (POLLEN_REQUIRE_BROWSER is set)"
    );
    eprintln!("SKIPPED: {msg}");
    false
}

/// A static file server on loopback for the browser peer's page and module.
pub struct WebServer {
    /// Where it listens.
    pub addr: SocketAddr,
    _thread: std::thread::JoinHandle<()>,
}

impl WebServer {
    /// Serves `dir` on an OS-picked loopback port.
    pub fn start(dir: PathBuf) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds loopback");
        let addr = listener.local_addr().expect("has an address");
        listener.set_nonblocking(true).expect("non-blocking");
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                    let dir = dir.clone();
                    async move { serve_file(&dir, uri.path()).await }
                });
                let _ = axum::serve(listener, app).await;
            });
        });
        Self {
            addr,
            _thread: thread,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

async fn serve_file(dir: &Path, path: &str) -> axum::response::Response {
    use axum::{http::StatusCode, response::IntoResponse};
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    if rel.split('/').any(|part| part == ".." || part.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mime = match Path::new(rel).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        _ => "application/octet-stream",
    };
    match std::fs::read(dir.join(rel)) {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, mime)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// One headless Chromium or Firefox, driven through its own WebDriver server.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    /// The script timeout set last (`wait_for` restores it).
    script_limit: std::cell::Cell<Duration>,
    client: Option<fantoccini::Client>,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver on a free port and a Chromium session through it.
    pub fn start() -> Self {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": CHROMIUM_ARGS }),
        );
        Self::start_with(Path::new("/usr/bin/chromedriver"), &[], caps)
    }

    /// Starts geckodriver on a free port and a headless Firefox session through it.
    pub fn start_firefox() -> Self {
        let driver = geckodriver().expect("geckodriver is installed (firefox_available)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "moz:firefoxOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/firefox-esr",
                "args": ["-headless"],
                "prefs": firefox_prefs(),
            }),
        );
        Self::start_with(&driver, &["--log", "fatal"], caps)
    }

    fn start_with(
        driver_bin: &Path,
        driver_args: &[&str],
        caps: serde_json::Map<String, Value>,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .args(driver_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", driver_bin.display()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let url = format!("http://127.0.0.1:{port}");
        let client = rt.block_on(async {
            let mut last = None;
            for _ in 0..100 {
                match fantoccini::ClientBuilder::new(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                )
                .capabilities(caps.clone())
                .connect(&url)
                .await
                {
                    Ok(c) => return c,
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no WebDriver session: {last:?}")
        });
        Self {
            rt,
            script_limit: std::cell::Cell::new(Duration::from_secs(30)),
            client: Some(client),
            driver,
        }
    }

    fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("session open until drop")
    }

    /// Opens `url` and waits until the page says it is ready (`body[data-ready]`).
    pub fn open(&self, url: &str) {
        self.rt.block_on(async {
            self.client().goto(url).await.expect("the page loads");
        });
        self.set_script_limit(Duration::from_secs(60));
        let ready = self.run(
            "const done = arguments[arguments.length - 1];
             const t0 = Date.now();
             (function poll() {
               if (document.body && document.body.dataset.ready) return done(true);
               if (Date.now() - t0 > 30000) return done(false);
               setTimeout(poll, 50);
             })();",
            vec![],
        );
        self.set_script_limit(self.script_limit.get());
        assert_eq!(ready, Value::Bool(true), "the page at {url} became ready");
    }

    /// Runs an async script (its last argument is the completion callback) and returns what
    /// it passes to the callback. A script that throws fails the test with the message.
    pub fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(async {
            self.client()
                .execute_async(script, args)
                .await
                .unwrap_or_else(|e| panic!("script failed: {e}"))
        })
    }

    /// Sets how long an async script may run.
    pub fn script_timeout(&self, limit: Duration) {
        self.script_limit.set(limit);
        self.set_script_limit(limit);
    }

    fn set_script_limit(&self, limit: Duration) {
        self.rt.block_on(async {
            let timeouts = fantoccini::wd::TimeoutConfiguration::new(
                Some(limit),
                Some(Duration::from_secs(60)),
                None,
            );
            self.client()
                .update_timeouts(timeouts)
                .await
                .expect("timeouts set");
        });
    }

    /// A PNG screenshot of the current page.
    pub fn screenshot(&self) -> Vec<u8> {
        self.rt
            .block_on(async { self.client().screenshot().await.expect("a screenshot") })
    }

    /// Saves a screenshot as `target/test-artifacts/NAME.png` (kept for people to look at);
    /// returns its path.
    pub fn save_screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
        std::fs::create_dir_all(&dir).expect("the artifacts directory");
        let path = dir.join(format!("{name}.png"));
        let png = self.screenshot();
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// Sets the browser window's size (for screenshots).
    pub fn resize(&self, width: u32, height: u32) {
        self.rt.block_on(async {
            self.client()
                .set_window_size(width, height)
                .await
                .expect("the window resizes");
        });
    }

    /// Chooses `file` in the file input `selector`, as a person picking it would.
    pub fn choose_file(&self, selector: &str, file: &Path) {
        self.rt.block_on(async {
            let input = self
                .client()
                .find(fantoccini::Locator::Css(selector))
                .await
                .unwrap_or_else(|e| panic!("no {selector}: {e}"));
            input
                .send_keys(&file.display().to_string())
                .await
                .expect("the file is chosen");
        });
    }

    /// Waits until the JavaScript expression `condition` is truthy and returns its value;
    /// panics with `what` and the page's text after `limit`.
    pub fn wait_for(&self, condition: &str, limit: Duration, what: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const t0 = Date.now();
             (function poll() {{
               let v = null;
               try {{ v = ({condition}); }} catch (e) {{}}
               if (v) return done({{ ok: true, v }});
               if (Date.now() - t0 > {ms}) return done({{ ok: false, text: document.body.innerText }});
               setTimeout(poll, 100);
             }})();",
            ms = limit.as_millis()
        );
        self.set_script_limit(limit + Duration::from_secs(30));
        let got = self.run(&script, vec![]);
        self.set_script_limit(self.script_limit.get());
        assert_eq!(
            got["ok"],
            Value::Bool(true),
            "timed out waiting for {what}; the page shows:\n{}",
            got["text"].as_str().unwrap_or_default()
        );
        got["v"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A `pollen-signal` process on an OS-picked loopback port.
pub struct SignalServer {
    /// Its WebSocket URL (`ws://127.0.0.1:PORT/signal`).
    pub url: String,
    child: Child,
}

impl SignalServer {
    /// Starts `pollen-signal` (built next to `pollen`) and reads the URL it prints.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    /// Stops the server and starts a new one on the same address (its members are gone).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let addr = self
            .url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        *self = Self::start_on(&addr);
    }

    fn start_on(listen: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let bin = crate::pollen_bin().with_file_name("pollen-signal");
        assert!(
            bin.is_file(),
            "{} is missing: cargo test --workspace builds it",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(["--listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pollen-signal starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.split("listening on ").nth(1).map(str::to_string))
            .expect("pollen-signal prints its URL");
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { url, child }
    }
}

impl Drop for SignalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic bytes that the pages make with [`PAGE_BYTES_JS`] too (32-bit xorshift).
pub fn page_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 4);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `pollenBytes(len, seed)`: the same bytes as [`page_bytes`], in JavaScript.
pub const PAGE_BYTES_JS: &str = "
function pollenBytes(len, seed) {
  const out = new Uint8Array(len);
  let x = (seed | 1) >>> 0;
  for (let i = 0; i < len; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    for (let k = 0; k < 4 && i + k < len; k++) out[i + k] = (x >>> (8 * k)) & 255;
  }
  return out;
}
";
