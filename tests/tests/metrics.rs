//! `GET /metrics` after a transfer whose bytes the test knows: each metric family says what
//! happened, `promtool check metrics` accepts the page, and a real Prometheus server scrapes
//! it and answers a PromQL query about the transfer.
//!
//! Needs Debian's `prometheus` package (`./scripts/test` installs it and sets
//! `POLLEN_REQUIRE_PROMETHEUS=1`, so a missing one fails instead of skipping).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pollen_tests::{Node, NodeOpts, finish_get, write_artifact};

const SIZE: usize = 4 << 20;
const LIMIT: Duration = Duration::from_secs(60);

/// A plain HTTP GET on loopback; the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The node's metrics page.
fn metrics(node: &Node) -> String {
    http_get(node.api.trim_start_matches("http://"), "/metrics")
}

/// The value of the sample `series` (name and labels exactly as printed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (bounded) until the node's metrics satisfy `pred` (they update every second).
fn metrics_until(node: &Node, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = metrics(node);
        if pred(&text) {
            return text;
        }
        assert!(start.elapsed() < LIMIT, "metrics never got there:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found || std::env::var_os("POLLEN_REQUIRE_PROMETHEUS").is_none(),
        "{tool} is missing (apt-get install prometheus)"
    );
    found
}

#[test]
fn metrics_tell_a_known_transfer_and_prometheus_scrapes_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), SIZE, 41);
    let seed = Node::start(&tmp.path().join("seed"), &NodeOpts::default());
    let ticket = seed.share(&file);
    let node = Node::start(
        &tmp.path().join("node"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    finish_get(node.cli_spawn(&[
        "get",
        &ticket,
        "-o",
        tmp.path().join("out").to_str().expect("utf-8"),
    ]));
    let pieces = node.artifact(&id).expect("held")["pieces"]
        .as_f64()
        .expect("pieces");
    let size = SIZE as f64;

    let received = r#"pollen_received_bytes_total{source="peer_same_zone"}"#;
    let sent = r#"pollen_sent_bytes_total{source="peer_same_zone"}"#;
    let down = metrics_until(&node, |t| sample(t, received) >= Some(size));
    assert_eq!(sample(&down, "pollen_pieces_verified_total"), Some(pieces));
    assert_eq!(
        sample(&down, "pollen_pieces_failed_verification_total"),
        Some(0.0)
    );
    assert_eq!(sample(&down, "pollen_peers_banned_total"), Some(0.0));
    assert_eq!(sample(&down, "pollen_fetches_completed_total"), Some(1.0));
    assert_eq!(
        sample(&down, "pollen_fetch_duration_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(&down, r#"pollen_artifacts{state="complete"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&down, "pollen_stored_bytes"), Some(size));
    assert!(sample(&down, "pollen_storage_free_bytes") > Some(0.0));
    assert!(sample(&down, r#"pollen_connections{transport="tcp",ready="true"}"#) >= Some(1.0));
    let up = metrics_until(&seed, |t| sample(t, sent) >= Some(size));
    assert_eq!(sample(&up, "pollen_fetches_completed_total"), Some(0.0));
    // The two nodes are one cluster: they gossip.
    let gossiping = |t: &str| {
        sample(t, r#"pollen_gossip_packets_total{direction="in"}"#) > Some(0.0)
            && sample(t, r#"pollen_cluster_members{state="alive"}"#) == Some(1.0)
    };
    metrics_until(&node, gossiping);

    if !have("promtool") || !have("prometheus") {
        eprintln!("prometheus is not installed: skipping promtool and the scrape");
        return;
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics(&node).as_bytes())
        .expect("feed promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let prom = Prometheus::start(tmp.path(), node.api.trim_start_matches("http://"));
    let query = "/api/v1/query?query=sum(pollen_received_bytes_total)";
    let start = Instant::now();
    loop {
        let answer = http_get(&prom.addr, query);
        if let Some(v) = answer
            .split("\"value\":[")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .and_then(|v| v.parse::<f64>().ok())
        {
            assert!(v >= size, "prometheus says {v} bytes: {answer}");
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "prometheus never scraped the node: {answer}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A Prometheus server scraping one target every second, in its own directory.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pollen\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write config");
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let start = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(start.elapsed() < LIMIT, "prometheus did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus { child, addr }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
