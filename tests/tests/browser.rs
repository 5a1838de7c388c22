//! Browser peers in real headless Chromium: pollen-wasm over WebRTC data channels, found
//! through the signaling server, with other browsers and with native nodes.

use std::time::Duration;

use pollen_core::Ticket;
use pollen_tests::browser::{self, Browser, PAGE_BYTES_JS, SignalServer, WebServer, page_bytes};
use serde_json::{Value, json};

/// Shares `pollenBytes(len, seed)` from this page; returns `{ticket, peer}` or `{error}`.
const SHARE: &str = "
const [url, len, seed, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const ticket = await window.peer.share(pollenBytes(len, seed), 'data.bin');
  done({ ticket, peer: window.peer.peerId });
})().catch(e => done({ error: String(e) }));
";

/// Fetches a ticket in this page and compares with `pollenBytes(len, seed)`; also returns the
/// peer events seen, the number of progress calls and the last progress.
const FETCH: &str = "
const [url, ticket, len, seed, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const events = [];
  window.peer.onEvent((e) => { if (e.type !== 'progress') events.push(e); });
  let calls = 0, last = null;
  const t0 = performance.now();
  const got = await window.peer.fetch(ticket, (p) => { calls++; last = p; });
  const ms = performance.now() - t0;
  const want = pollenBytes(len, seed);
  let equal = got.length === want.length;
  for (let i = 0; equal && i < got.length; i++) if (got[i] !== want[i]) equal = false;
  done({ equal, len: got.length, id: Pollen.contentId(got), ms, events, calls, last });
})().catch(e => done({ error: String(e) }));
";

fn script(body: &str) -> String {
    format!("{PAGE_BYTES_JS}\n{body}")
}

/// A signaling server, the pages' web server, and two pages on `peer.html` (sharer and
/// fetcher) allowed three minutes a script.
fn two_pages() -> (SignalServer, WebServer, Browser, Browser) {
    let signal = SignalServer::start();
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let sharer = Browser::start();
    let fetcher = Browser::start();
    for b in [&sharer, &fetcher] {
        b.open(&web.url("peer.html"));
        b.script_timeout(Duration::from_secs(180));
    }
    (signal, web, sharer, fetcher)
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
    browser::require_default_route();
    let len = 8 << 20;
    let seed = 11;
    let (signal, _web, sharer, fetcher) = two_pages();
    let shared = sharer.run(
        &script(SHARE),
        vec![json!(signal.url), json!(len), json!(seed)],
    );
    let ticket = field(&shared, "ticket")
        .as_str()
        .expect("a string")
        .to_string();
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
    // Progress reached the caller piece by piece and ended complete.
    let pieces = pollen_core::PieceLayout::for_size(parsed.size())
        .expect("a valid size")
        .piece_count();
    assert!(
        field(&fetched, "calls").as_u64().unwrap_or(0) >= 2,
        "progress was reported: {fetched}"
    );
    let last = field(&fetched, "last");
    assert_eq!(field(last, "complete"), &json!(true));
    assert_eq!(field(last, "havePieces"), &json!(pieces));
    assert_eq!(field(last, "haveBytes"), &json!(len));
    // The page was told about the sharer as a peer, and about completion.
    let id = json!(parsed.id().to_string());
    let sharer_id = field(&shared, "peer");
    let events = field(&fetched, "events").as_array().expect("an array");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "peer-open" && &e["peer"] == sharer_id && e["id"] == id),
        "a peer-open event names the sharer: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "complete" && e["id"] == id),
        "a complete event: {events:?}"
    );
    let ms = field(&fetched, "ms").as_f64().unwrap_or(0.0);
    eprintln!(
        "browser <- browser: {len} bytes in {ms:.0} ms ({:.1} MB/s)",
        len as f64 / ms / 1000.0
    );
}

/// The signaling URL a ticket names.
fn signal_hint(ticket: &str) -> String {
    let t: Ticket = ticket.parse().expect("a valid ticket");
    t.hints()
        .iter()
        .find_map(|h| match h {
            pollen_core::Hint::Signal(url) => Some(url.clone()),
            pollen_core::Hint::Node(_) => None,
        })
        .unwrap_or_else(|| panic!("the ticket names no signaling server: {t:?}"))
}

/// Fetches a ticket in this page; returns its length, content id and first bytes.
const FETCH_SUMMARY: &str = "
const [url, ticket, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const t0 = performance.now();
  const got = await window.peer.fetch(ticket, null);
  const ms = performance.now() - t0;
  done({ len: got.length, id: Pollen.contentId(got), head: Array.from(got.slice(0, 64)), ms });
})().catch(e => done({ error: String(e) }));
";

#[test]
fn a_browser_fetches_32_mib_from_a_native_node() {
    if !browser::available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let node = pollen_tests::Node::start(&tmp.path().join("node"), &Default::default());
    let (file, data, id) = pollen_tests::write_artifact(tmp.path(), 32 << 20, 5);
    let ticket = node.share(&file);
    let url = signal_hint(&ticket);
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let page = Browser::start();
    page.open(&web.url("peer.html"));
    page.script_timeout(Duration::from_secs(240));
    let got = page.run(FETCH_SUMMARY, vec![json!(url), json!(ticket)]);
    assert_eq!(field(&got, "len"), &json!(data.len()));
    assert_eq!(field(&got, "id"), &json!(id));
    assert_eq!(field(&got, "head"), &json!(data[..64].to_vec()));
    let ms = field(&got, "ms").as_f64().unwrap_or(0.0);
    eprintln!(
        "browser <- native: {} bytes in {ms:.0} ms ({:.1} MB/s)",
        data.len(),
        data.len() as f64 / ms / 1000.0
    );
}

#[test]
fn a_native_node_fetches_what_only_a_browser_holds() {
    if !browser::available() {
        return;
    }
    let len = 8 << 20;
    let seed = 23;
    let tmp = tempfile::tempdir().expect("a temp dir");
    let node = pollen_tests::Node::start(&tmp.path().join("node"), &Default::default());
    // The node's own signaling server: the browser shares through it.
    let status = node.status_http();
    let url = status["signal_url"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("the node reports its signaling URL: {status}"));
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let page = Browser::start();
    page.open(&web.url("peer.html"));
    page.script_timeout(Duration::from_secs(60));
    let shared = page.run(&script(SHARE), vec![json!(url), json!(len), json!(seed)]);
    let ticket = field(&shared, "ticket")
        .as_str()
        .expect("a string")
        .to_string();
    assert_eq!(signal_hint(&ticket), url);

    let out = tmp.path().join("fetched.bin");
    let get = node.cli_spawn(&["get", "-o", out.to_str().expect("utf-8"), &ticket]);
    pollen_tests::finish_get(get);
    let data = page_bytes(len, seed);
    assert_eq!(std::fs::read(&out).expect("the output exists"), data);
    assert_eq!(
        pollen_tests::b3(&out),
        blake3::hash(&data).to_hex().to_string()
    );
    // The browser was the only holder, so every byte came over its data channel.
}

/// From a page: sends a raw WebSocket oversize, malformed and text messages, then a Ping;
/// returns the first bytes of each reply and whether the socket is still open.
const ABUSE: &str = "
const [url, done] = arguments;
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';
const replies = [];
ws.onmessage = (ev) => {
  replies.push(Array.from(new Uint8Array(ev.data).slice(0, 3)));
  if (replies.length === 4) done({ replies, open: ws.readyState === WebSocket.OPEN });
};
ws.onclose = () => done({ replies, open: false });
ws.onopen = () => {
  ws.send(new Uint8Array(100 * 1024).fill(1));   // over the 64 KiB limit
  ws.send(new Uint8Array([1, 250, 250, 250]));    // not a message
  ws.send('hello');                               // text
  ws.send(new Uint8Array([1, 4]));                // Ping
};
";

#[test]
fn signaling_answers_abuse_from_a_page_with_errors_and_keeps_serving() {
    if !browser::available() {
        return;
    }
    browser::require_default_route();
    let signal = SignalServer::start();
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let page = Browser::start();
    page.open(&web.url("peer.html"));
    page.script_timeout(Duration::from_secs(60));
    let got = page.run(ABUSE, vec![json!(signal.url)]);
    // FromServer::Error is variant 4; ErrorCode::TooLarge is 1, Malformed 0. Pong is 3.
    assert_eq!(
        field(&got, "replies"),
        &json!([[1, 4, 1], [1, 4, 0], [1, 4, 0], [1, 3]])
    );
    assert_eq!(field(&got, "open"), &json!(true));
    // The server still serves others: two peers in another page exchange an artifact.
    let shared = page.run(
        &script(SHARE),
        vec![json!(signal.url), json!(1 << 20), json!(3)],
    );
    let ticket = field(&shared, "ticket")
        .as_str()
        .expect("a string")
        .to_string();
    let other = Browser::start();
    other.open(&web.url("peer.html"));
    other.script_timeout(Duration::from_secs(120));
    let fetched = other.run(
        &script(FETCH),
        vec![json!(signal.url), json!(ticket), json!(1 << 20), json!(3)],
    );
    assert_eq!(field(&fetched, "equal"), &json!(true));
}

#[test]
fn a_page_reconnects_to_a_restarted_signaling_server_and_is_found_again() {
    if !browser::available() {
        return;
    }
    browser::require_default_route();
    let len = 1 << 20;
    let seed = 13;
    let mut signal = SignalServer::start();
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let sharer = Browser::start();
    sharer.open(&web.url("peer.html"));
    sharer.script_timeout(Duration::from_secs(120));
    let shared = sharer.run(
        &script(&format!("window.seen = []; {SHARE}")),
        vec![json!(signal.url), json!(len), json!(seed)],
    );
    let ticket = field(&shared, "ticket")
        .as_str()
        .expect("a string")
        .to_string();
    sharer.run(
        "const done = arguments[0]; window.peer.onEvent((e) => window.seen.push(e.type)); done(null);",
        vec![],
    );
    // Signaling goes away and comes back empty: the page reopens its socket and rejoins.
    signal.restart();
    let events = sharer.wait_for(
        "window.seen.includes('signaling-open') && window.seen",
        Duration::from_secs(30),
        "the page to reconnect",
    );
    assert!(
        events
            .as_array()
            .is_some_and(|e| e.contains(&json!("signaling-closed"))),
        "the page saw the socket close: {events}"
    );
    // A new page finds the sharer through the new server.
    let fetcher = Browser::start();
    fetcher.open(&web.url("peer.html"));
    fetcher.script_timeout(Duration::from_secs(120));
    let fetched = fetcher.run(
        &script(FETCH),
        vec![json!(signal.url), json!(ticket), json!(len), json!(seed)],
    );
    assert_eq!(field(&fetched, "equal"), &json!(true));
}

/// Shares `count` artifacts `pollenBytes(len, seed + i)`; returns `{tickets}`.
const SHARE_MANY: &str = "
const [url, count, len, seed, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const tickets = [];
  for (let i = 0; i < count; i++) {
    tickets.push(await window.peer.share(pollenBytes(len, seed + i), 'a' + i + '.bin'));
  }
  done({ tickets });
})().catch(e => done({ error: String(e) }));
";

/// Fetches every ticket at once and checks each against `pollenBytes(len, seed + i)`;
/// returns how many matched and how many peer connections the page holds.
const FETCH_MANY: &str = "
const [url, tickets, len, seed, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  const got = await Promise.all(tickets.map((t) => window.peer.fetch(t, null)));
  let equal = 0;
  got.forEach((bytes, i) => {
    const want = pollenBytes(len, seed + i);
    let same = bytes.length === want.length;
    for (let j = 0; same && j < bytes.length; j++) if (bytes[j] !== want[j]) same = false;
    if (same) equal++;
  });
  done({ equal, connections: window.peer.connections(), made: window.peer.connectionsMade() });
})().catch(e => done({ error: String(e) }));
";

#[test]
fn two_pages_sharing_thirty_artifacts_hold_one_peer_connection() {
    if !browser::available() {
        return;
    }
    browser::require_default_route();
    let (count, len, seed) = (30, 64 * 1024 + 123, 40);
    let (signal, _web, sharer, fetcher) = two_pages();
    let shared = sharer.run(
        &script(SHARE_MANY),
        vec![json!(signal.url), json!(count), json!(len), json!(seed)],
    );
    let tickets = field(&shared, "tickets").clone();
    let fetched = fetcher.run(
        &script(FETCH_MANY),
        vec![json!(signal.url), tickets, json!(len), json!(seed)],
    );
    assert_eq!(field(&fetched, "equal"), &json!(count), "{fetched}");
    // One peer connection carries all 30, and no other was ever offered.
    assert_eq!(field(&fetched, "connections"), &json!(1), "{fetched}");
    assert_eq!(field(&fetched, "made"), &json!(1), "{fetched}");
    let sharer_conns = sharer.run(
        "arguments[0]([window.peer.connections(), window.peer.connectionsMade()])",
        vec![],
    );
    assert_eq!(sharer_conns, json!([1, 1]));
}
