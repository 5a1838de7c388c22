//! Browser peers in real headless Chromium: pollen-wasm over WebRTC data channels, found
//! through the signaling server, with other browsers and with native nodes.

use std::time::Duration;

use pollen_core::Ticket;
use pollen_tests::browser::{self, Browser, PAGE_BYTES_JS, SignalServer, WebServer, page_bytes};
use serde_json::{Value, json};

/// Shares `pollenBytes(len, seed)` from this page; returns `{ticket}` or `{error}`.
const SHARE: &str = "
const [url, len, seed, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const ticket = await window.peer.share(pollenBytes(len, seed), 'data.bin');
  done({ ticket });
})().catch(e => done({ error: String(e) }));
";

/// Fetches a ticket in this page and compares with `pollenBytes(len, seed)`.
const FETCH: &str = "
const [url, ticket, len, seed, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const t0 = performance.now();
  const got = await window.peer.fetch(ticket, null);
  const ms = performance.now() - t0;
  const want = pollenBytes(len, seed);
  let equal = got.length === want.length;
  for (let i = 0; equal && i < got.length; i++) if (got[i] !== want[i]) equal = false;
  done({ equal, len: got.length, id: Pollen.contentId(got), ms });
})().catch(e => done({ error: String(e) }));
";

fn script(body: &str) -> String {
    format!("{PAGE_BYTES_JS}\n{body}")
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    if let Some(err) = v.get("error") {
        panic!("the page failed: {err}");
    }
    v.get(key).unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn two_browsers_exchange_8_mib_through_signaling_and_webrtc() {
    if !browser::available() {
        return;
    }
    let len = 8 << 20;
    let seed = 11;
    let signal = SignalServer::start();
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let sharer = Browser::start();
    let fetcher = Browser::start();
    for b in [&sharer, &fetcher] {
        b.open(&web.url("index.html"));
        b.script_timeout(Duration::from_secs(180));
    }
    let shared = sharer.run(&script(SHARE), vec![json!(signal.url), json!(len), json!(seed)]);
    let ticket = field(&shared, "ticket").as_str().expect("a string").to_string();
    let parsed: Ticket = ticket.parse().expect("the page makes valid tickets");
    let data = page_bytes(len, seed);
    assert_eq!(parsed.id().as_bytes(), blake3::hash(&data).as_bytes());
    assert_eq!(parsed.size(), len as u64);

    let fetched = fetcher.run(
        &script(FETCH),
        vec![json!(signal.url), json!(ticket), json!(len), json!(seed)],
    );
    assert_eq!(field(&fetched, "len"), &json!(len));
    assert_eq!(field(&fetched, "equal"), &json!(true));
    assert_eq!(field(&fetched, "id"), &json!(parsed.id().to_string()));
    let ms = field(&fetched, "ms").as_f64().unwrap_or(0.0);
    eprintln!(
        "browser <- browser: {len} bytes in {ms:.0} ms ({:.1} MB/s)",
        len as f64 / ms / 1000.0
    );
}
