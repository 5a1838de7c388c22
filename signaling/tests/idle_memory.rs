//! Memory held per idle connection: the resident set of a `pollen-signal` process before and
//! after many connections open, say Hello, join a swarm and then say nothing more.
//!
//! `idle_connections_cost_little_memory` runs in the suite with a few hundred connections;
//! the audit's numbers (2,000 connections) come from the ignored benchmark:
//!
//! ```sh
//! cargo test -p pollen-signal --release --test idle_memory -- --ignored --nocapture
//! ```
#![cfg(target_os = "linux")]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use pollen_core::{
    ContentId, PeerId,
    signal::{self, FromServer, PeerKind, ToServer},
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The goal: an idle connection costs the server less than this.
const MAX_BYTES_PER_IDLE_CONNECTION: u64 = 16 * 1024;

/// A `pollen-signal` process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pollen-signal"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--max-connections",
                "100000",
                "--max-connections-per-ip",
                "100000",
                "--idle-timeout",
                "3600",
            ])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts pollen-signal");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("pollen-signal says where it listens")
                .expect("reads stderr");
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep draining stderr so that the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }

    /// The process's resident set in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reads /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmRSS in kB");
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn recv(ws: &mut Ws) -> FromServer {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server answers within 10 s");
        match msg {
            Some(Ok(Message::Binary(bytes))) => {
                return signal::decode_from_server(&bytes).expect("valid messages");
            }
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, msg: &ToServer) {
    let bytes = signal::encode_to_server(msg).expect("encodes");
    ws.send(Message::Binary(bytes.into())).await.expect("sends");
}

/// Opens connection `n`: Hello as a browser, join one of 64 swarms, wait for the answer.
async fn open_idle(url: &str, n: u32) -> Ws {
    // The client's own buffers are the test process's memory, not the server's; keep them small.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .expect("connects");
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    let hello = ToServer::Hello {
        peer: PeerId::from_bytes(id),
        kind: PeerKind::Browser,
    };
    send(&mut ws, &hello).await;
    assert!(matches!(recv(&mut ws).await, FromServer::Welcome { .. }));
    let swarm = ContentId::from_bytes([(n % 64) as u8; 32]);
    send(&mut ws, &ToServer::Join { swarm }).await;
    assert!(matches!(recv(&mut ws).await, FromServer::Members { .. }));
    ws
}

/// Opens `count` connections numbered from `first`, 32 at a time.
async fn open_many(url: &str, first: u32, count: u32) -> Vec<Ws> {
    let mut all = Vec::with_capacity(count as usize);
    let mut n = first;
    while n < first + count {
        let batch = (first + count - n).min(32);
        let opened =
            futures_util::future::join_all((n..n + batch).map(|i| open_idle(url, i))).await;
        all.extend(opened);
        n += batch;
    }
    all
}

/// The server's resident set per idle connection, in bytes, over `count` connections (after
/// warming up with a few, so that one-time allocations are not counted).
async fn bytes_per_idle_connection(count: u32) -> u64 {
    let server = Server::start();
    let _warm = open_many(&server.url, 0, 32).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = server.rss();
    let idle = open_many(&server.url, 1_000_000, count).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss();
    let per = after.saturating_sub(before) / u64::from(count);
    println!(
        "{count} idle connections: server RSS {} KiB -> {} KiB, {:.1} KiB per connection",
        before / 1024,
        after / 1024,
        per as f64 / 1024.0
    );
    drop(idle);
    per
}

#[tokio::test(flavor = "current_thread")]
async fn idle_connections_cost_little_memory() {
    let per = bytes_per_idle_connection(400).await;
    assert!(
        per < MAX_BYTES_PER_IDLE_CONNECTION,
        "an idle connection costs the server {per} bytes; the goal is under {MAX_BYTES_PER_IDLE_CONNECTION}"
    );
}

/// The audit's measurement: 2,000 idle connections.
#[tokio::test(flavor = "current_thread")]
#[ignore = "a benchmark: opens 2,000 connections"]
async fn bench_2000_idle_connections() {
    let count = std::env::var("POLLEN_SIGNAL_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    bytes_per_idle_connection(count).await;
}
