//! Browser goodput over WebRTC data channels and piece verification in wasm, in real headless
//! Chromium: browser <- native, browser <- browser, browser <- three natives at once; wasm
//! verification against raw BLAKE3 in the same wasm build, and native for comparison.
//!
//! `./scripts/test` (or `source scripts/lib.sh; build_www`) builds the page, then:
//! `cargo build --release -p pollen -p pollen-signal -p pollen-tests --bins &&
//!  target/release/bench-browser [MiB]`

use std::time::{Duration, Instant};

use pollen_core::Manifest;
use pollen_tests::{
    Node, NodeOpts,
    browser::{self, Browser, PAGE_BYTES_JS, SignalServer, WebServer},
    write_artifact,
};
use serde_json::{Value, json};

const FETCH: &str = "
const [url, ticket, done] = arguments;
(async () => {
  const peer = await Pollen.Peer.connect(url, null);
  const t0 = performance.now();
  let first = null, peers = 0;
  const got = await peer.fetch(ticket, (p) => {
    if (first === null && p.haveBytes > 0) first = performance.now();
    peers = Math.max(peers, p.peers);
  });
  const t1 = performance.now();
  done({ len: got.length, id: Pollen.contentId(got), ms: t1 - t0, dataMs: t1 - (first ?? t0), peers });
})().catch(e => done({ error: String(e) }));
";

const SHARE: &str = "
const [url, len, done] = arguments;
(async () => {
  window.peer = await Pollen.Peer.connect(url, null);
  done({ ticket: await window.peer.share(pollenBytes(len, 77), 'bench.bin') });
})().catch(e => done({ error: String(e) }));
";

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    if let Some(err) = v.get("error") {
        panic!("the page failed: {err}");
    }
    &v[key]
}

fn page(web: &WebServer) -> Browser {
    let b = Browser::start();
    b.open(&web.url("peer.html"));
    b.script_timeout(Duration::from_secs(600));
    b
}

/// Fetches `ticket` in a fresh page; returns MB/s over the whole fetch (connection set-up
/// included) and over the data phase (from the first verified piece), and the most peers the
/// fetch had at once.
fn fetch_rate(web: &WebServer, url: &str, ticket: &str, len: usize, id: &str) -> (f64, f64, u64) {
    let b = page(web);
    let got = b.run(FETCH, vec![json!(url), json!(ticket)]);
    assert_eq!(get(&got, "len"), &json!(len));
    assert_eq!(get(&got, "id"), &json!(id));
    let mb = len as f64 / 1e6;
    let ms = get(&got, "ms").as_f64().unwrap_or(f64::NAN);
    let data_ms = get(&got, "dataMs").as_f64().unwrap_or(f64::NAN);
    let peers = get(&got, "peers").as_u64().unwrap_or(0);
    (mb / ms * 1000.0, mb / data_ms * 1000.0, peers)
}

fn main() {
    assert!(
        browser::available(),
        "the browser bench needs Chromium and the built page"
    );
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let len = mib << 20;
    let tmp = tempfile::tempdir().expect("a temp dir");
    let web = WebServer::start(browser::www_dir().expect("checked"));
    let signal = SignalServer::start();
    let (file, data, id) = write_artifact(tmp.path(), len, 9);

    // Verification: native, then wasm in Chromium.
    let manifest = Manifest::of(&data).expect("a manifest");
    let layout = *manifest.layout();
    let t0 = Instant::now();
    for p in 0..layout.piece_count() {
        let r = layout.piece_range(p).expect("in range");
        manifest
            .verify_piece(p, &data[r.start as usize..r.end as usize])
            .expect("verifies");
    }
    let native_verify = len as f64 / t0.elapsed().as_secs_f64() / 1e6;
    let t1 = Instant::now();
    let _ = blake3::hash(&data);
    let native_hash = len as f64 / t1.elapsed().as_secs_f64() / 1e6;
    let b = page(&web);
    let w = b.run(
        "const [mib, done] = arguments; done(Pollen.verifyThroughput(mib));",
        vec![json!(mib)],
    );
    drop(b);
    let wasm_bytes = get(&w, "bytes").as_f64().unwrap_or(f64::NAN);
    let wasm_verify = wasm_bytes / get(&w, "verifyMs").as_f64().unwrap_or(f64::NAN) / 1e3;
    let wasm_hash = wasm_bytes / get(&w, "hashMs").as_f64().unwrap_or(f64::NAN) / 1e3;

    // One native seed, its own signaling.
    let seed_opts = NodeOpts::default();
    let n1 = Node::start(&tmp.path().join("n1"), &seed_opts);
    let ticket = n1.share(&file);
    let own_url = n1.status_http()["signal_url"]
        .as_str()
        .expect("a signaling URL")
        .to_string();
    let (from_native, from_native_data, native_peers) =
        fetch_rate(&web, &own_url, &ticket, len, &id);
    drop(n1);

    // Browser <- browser, through pollen-signal.
    let sharer = page(&web);
    let shared = sharer.run(
        &format!("{PAGE_BYTES_JS}\n{SHARE}"),
        vec![json!(signal.url), json!(len)],
    );
    let bticket = get(&shared, "ticket")
        .as_str()
        .expect("a ticket")
        .to_string();
    let bid = blake3::hash(&browser::page_bytes(len, 77))
        .to_hex()
        .to_string();
    let (from_browser, from_browser_data, browser_peers) =
        fetch_rate(&web, &signal.url, &bticket, len, &bid);
    drop(sharer);

    // Browser <- three native seeds at once, all on pollen-signal.
    let shared_opts = NodeOpts {
        extra: vec!["--no-signal".into(), "--signal".into(), signal.url.clone()],
        ..NodeOpts::default()
    };
    let seeds: Vec<Node> = (0..3)
        .map(|i| Node::start(&tmp.path().join(format!("s{i}")), &shared_opts))
        .collect();
    let mut multi_ticket = String::new();
    for s in &seeds {
        multi_ticket = s.share(&file);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (from_three, from_three_data, three_peers) =
        fetch_rate(&web, &signal.url, &multi_ticket, len, &id);
    drop(seeds);

    println!(
        "browser bench, {mib} MiB, Chromium headless, loopback (MB/s; whole fetch / data phase)"
    );
    println!(
        "  browser <- native (1 seed):   {from_native:7.1} / {from_native_data:7.1}  ({native_peers} peer)"
    );
    println!(
        "  browser <- browser:           {from_browser:7.1} / {from_browser_data:7.1}  ({browser_peers} peer)"
    );
    println!(
        "  browser <- 3 native seeds:    {from_three:7.1} / {from_three_data:7.1}  ({three_peers} peers; {:.2}x one seed)",
        from_three_data / from_native_data
    );
    println!("verification (MB/s):");
    println!(
        "  wasm verify {wasm_verify:7.0}, wasm raw blake3 {wasm_hash:7.0}: ratio {:.2} (goal >= 0.95)",
        wasm_verify / wasm_hash
    );
    println!(
        "  native verify {native_verify:7.0}, native raw blake3 {native_hash:7.0}: wasm verify / native verify {:.2}",
        wasm_verify / native_verify
    );
}
