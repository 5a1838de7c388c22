//! The dashboard in real headless Chromium, served by a `pollen node` (which finds the built
//! files in target/pollen-www by itself): a file shared through the file input downloads in
//! a second browser that opens its link; a page fetches what the node holds from the node's
//! own table; a bad ticket is shown plainly; Firefox fetches what Chromium shares and what the
//! node holds. Screenshots of every page are kept in target/test-artifacts/.

use std::time::Duration;

use pollen_tests::{
    Node, NodeOpts,
    browser::{self, Browser},
    write_artifact,
};
use serde_json::{Value, json};

/// Reads the file behind the link `selector` (a blob URL) as `{ len, bytes }`.
const READ_LINK: &str = "
const [selector, done] = arguments;
const a = document.querySelector(selector);
fetch(a.href)
  .then((r) => r.arrayBuffer())
  .then((b) => done({ len: b.byteLength, bytes: Array.from(new Uint8Array(b)), name: a.download }))
  .catch((e) => done({ error: String(e) }));
";

fn page(url: &str) -> Browser {
    setup(Browser::start(), url)
}

fn setup(b: Browser, url: &str) -> Browser {
    b.resize(1280, 1100);
    b.open(url);
    b.script_timeout(Duration::from_secs(120));
    b
}

/// The bytes the page's save link of artifact `id` offers.
fn saved_bytes(b: &Browser, id: &str) -> (Vec<u8>, String) {
    let got = b.run(
        READ_LINK,
        vec![json!(format!(".transfer[data-id=\"{id}\"] a.save"))],
    );
    assert!(got.get("error").is_none(), "reading the saved file: {got}");
    let bytes: Vec<u8> = got["bytes"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .expect("a byte")
        })
        .collect();
    assert_eq!(got["len"], json!(bytes.len()));
    (bytes, got["name"].as_str().unwrap_or_default().to_string())
}

/// Clicks "fetch here" on the node's artifact `id` in the page, waits for the download, and
/// checks the saved bytes and that the node is listed as a native peer.
fn fetch_from_node_table(b: &Browser, id: &str, data: &[u8], node_id: &str) {
    b.wait_for(
        &format!("document.querySelector('#node tr[data-id=\"{id}\"] a.node-link')"),
        Duration::from_secs(30),
        "the node's artifact in its table",
    );
    b.run(
        "const [id, done] = arguments; \
         document.querySelector(`#node tr[data-id=\"${id}\"] a.node-link`).click(); done(null);",
        vec![json!(id)],
    );
    b.wait_for(
        &format!("document.querySelector('.transfer[data-id=\"{id}\"] a.save')"),
        Duration::from_secs(120),
        "the download from the node",
    );
    let (bytes, _) = saved_bytes(b, id);
    assert!(bytes == data, "the saved file equals the node's");
    let row = format!(".transfer[data-id=\"{id}\"] tr[data-peer=\"{node_id}\"]");
    assert_eq!(
        text(
            b,
            &format!("document.querySelector('{row} .kind').textContent")
        ),
        "native"
    );
}

/// Waits until the dashboard in `b` joined the swarm; returns its peer id.
fn join(b: &Browser) -> String {
    b.wait_for(
        "document.getElementById('peer-id')",
        Duration::from_secs(30),
        "the page to join the swarm",
    );
    text(b, "document.getElementById('peer-id').textContent")
}

/// Shares `file` (artifact `id`) through the page's file input; returns the link it shows
/// once it seeds.
fn share_through_input(b: &Browser, file: &std::path::Path, id: &str) -> String {
    b.choose_file("#share-file", file);
    b.wait_for(
        &format!(
            "document.querySelector('.transfer[data-id=\"{id}\"] .pill.seeding') && \
             document.querySelector('.transfer[data-id=\"{id}\"] a.ticket-link').href"
        ),
        Duration::from_secs(60),
        "the shared file's ticket link",
    )
    .as_str()
    .expect("a link")
    .to_string()
}

/// Starts a `pollen node` in `dir`; returns it and its peer id.
fn start_node(dir: &std::path::Path) -> (Node, String) {
    let node = Node::start(&dir.join("node"), &NodeOpts::default());
    let id = node.status_http()["peer_id"]
        .as_str()
        .expect("a peer id")
        .to_string();
    (node, id)
}

fn text(b: &Browser, expr: &str) -> String {
    b.run(
        &format!(
            "const done = arguments[arguments.length - 1]; \
             const v = ({expr}); done(v == null ? null : String(v));"
        ),
        vec![],
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn a_file_shared_from_the_dashboard_downloads_in_another_browser_by_its_link() {
    if !browser::available() {
        return;
    }
    browser::require_default_route();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (node, node_id) = start_node(tmp.path());
    // An odd size: the last piece is short.
    let (file, data, id) = write_artifact(tmp.path(), (2 << 20) + 1234, 31);

    let sharer = page(&format!("{}/", node.api));
    let sharer_id = join(&sharer);
    // The node card reads the node's status.
    sharer.wait_for(
        &format!("document.getElementById('node')?.textContent.includes('{node_id}')"),
        Duration::from_secs(30),
        "the node's status",
    );
    let link = share_through_input(&sharer, &file, &id);
    assert!(
        link.starts_with(&format!("{}/#pollen", node.api)),
        "the link opens this dashboard with the ticket: {link}"
    );
    let shared_map = sharer.wait_for(
        &format!(
            "document.querySelector('.transfer[data-id=\"{id}\"] svg.piece-map')?.dataset.held"
        ),
        Duration::from_secs(10),
        "the sharer's piece map",
    );
    assert_eq!(
        shared_map,
        json!("129"),
        "every piece is held from the start"
    );
    sharer.save_screenshot("dashboard-share");

    let fetcher = page(&link);
    fetcher.wait_for(
        &format!("document.querySelector('.transfer[data-id=\"{id}\"] a.save')"),
        Duration::from_secs(120),
        "the download to finish",
    );
    let (bytes, name) = saved_bytes(&fetcher, &id);
    assert_eq!(bytes.len(), data.len());
    assert!(bytes == data, "the saved file equals the shared one");
    assert_eq!(name, "artifact.bin");
    // The piece map is full, and every piece came from the sharer, whom the swarm view lists
    // as a connected browser.
    let map = fetcher.run(
        "const [id, done] = arguments; \
         const svg = document.querySelector(`.transfer[data-id=\"${id}\"] svg.piece-map`); \
         done({ held: svg.dataset.held, pieces: svg.dataset.pieces });",
        vec![json!(id)],
    );
    assert_eq!(map, json!({ "held": "129", "pieces": "129" }));
    let row = format!(".transfer[data-id=\"{id}\"] tr[data-peer=\"{sharer_id}\"]");
    assert_eq!(
        text(
            &fetcher,
            &format!("document.querySelector('{row} .kind').textContent")
        ),
        "browser"
    );
    assert_eq!(
        text(
            &fetcher,
            &format!("document.querySelector('{row} td:nth-child(4)').textContent")
        ),
        "connected"
    );
    assert_eq!(
        text(
            &fetcher,
            &format!("document.querySelector('.transfer[data-id=\"{id}\"]').dataset.complete")
        ),
        "true"
    );
    fetcher.save_screenshot("dashboard-fetch");
}

#[test]
fn the_dashboard_fetches_what_the_node_holds_and_shows_bad_tickets_plainly() {
    if !browser::available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (node, node_id) = start_node(tmp.path());
    let (file, data, id) = write_artifact(tmp.path(), 3 << 20, 32);
    node.share(&file);

    let b = page(&format!("{}/", node.api));
    join(&b);
    // The node's table lists the artifact with a link that fetches it in this page.
    fetch_from_node_table(&b, &id, &data, &node_id);

    // A ticket nobody reachable holds: the page says it has no peers, and keeps looking.
    let lonely = std::fs::write(tmp.path().join("nobody.bin"), b"held by nobody")
        .map(|()| pollen_tests::bare_ticket(&tmp.path().join("nobody.bin")))
        .expect("a ticket");
    let lonely_id = lonely
        .parse::<pollen_core::Ticket>()
        .expect("a valid ticket")
        .id()
        .to_string();
    b.run(
        "const [t, done] = arguments; location.hash = t; done(null);",
        vec![json!(lonely)],
    );
    let warning = b.wait_for(
        &format!("document.querySelector('.transfer[data-id=\"{lonely_id}\"] .warn')?.textContent"),
        Duration::from_secs(30),
        "the no-peers warning",
    );
    assert!(
        warning
            .as_str()
            .unwrap_or_default()
            .contains("No peers yet"),
        "{warning}"
    );

    // A bad ticket, typed or opened, is named as such.
    let got = b.run(
        "const done = arguments[0]; location.hash = 'pollen-not-a-ticket'; done(null);",
        vec![],
    );
    assert_eq!(got, Value::Null);
    let error = b.wait_for(
        "document.getElementById('fetch-error')?.textContent",
        Duration::from_secs(10),
        "the bad ticket's error",
    );
    assert!(
        error
            .as_str()
            .unwrap_or_default()
            .contains("not a valid Pollen ticket"),
        "{error}"
    );
    b.save_screenshot("dashboard-node");
}

#[test]
fn firefox_fetches_what_chromium_shares_and_what_the_node_holds() {
    if !browser::firefox_available() {
        return;
    }
    browser::require_default_route();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (node, node_id) = start_node(tmp.path());
    std::fs::create_dir_all(tmp.path().join("a")).expect("a dir");
    let (held, held_data, held_id) = write_artifact(&tmp.path().join("a"), 3 << 20, 41);
    node.share(&held);
    let (file, data, id) = write_artifact(tmp.path(), (1 << 20) + 77, 42);

    let chromium = page(&format!("{}/", node.api));
    join(&chromium);
    let link = share_through_input(&chromium, &file, &id);

    let firefox = setup(Browser::start_firefox(), &link);
    firefox.wait_for(
        &format!("document.querySelector('.transfer[data-id=\"{id}\"] a.save')"),
        Duration::from_secs(120),
        "Firefox's download from Chromium",
    );
    let (bytes, _) = saved_bytes(&firefox, &id);
    assert!(bytes == data, "Firefox saved what Chromium shared");

    fetch_from_node_table(&firefox, &held_id, &held_data, &node_id);
    firefox.save_screenshot("dashboard-firefox");
}
