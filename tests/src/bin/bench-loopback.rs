//! Loopback goodput of one seed to one node, against a plain TCP copy of the same bytes in the
//! same run. Both receivers write to disk and sync before the clock stops.
//!
//! `cargo build --release -p pollen -p pollen-tests && target/release/bench-loopback [MiB]`

use std::{
    fs::File,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use pollen_tests::{Node, NodeOpts, pseudo_random};

const ROUNDS: usize = 5;

/// Copies `src` to `dst` over a loopback TCP connection; returns the elapsed time.
fn tcp_copy(src: &Path, dst: &Path) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dst = dst.to_path_buf();
    let receiver = thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        let mut out = File::create(&dst).expect("create");
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = sock.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).expect("write");
        }
        out.sync_all().expect("sync");
    });
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr).expect("connect");
    let mut file = File::open(src).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        sock.write_all(&buf[..n]).expect("send");
    }
    drop(sock);
    receiver.join().expect("receiver");
    start.elapsed()
}

/// Fetches the artifact from a fresh seed through a fresh node; returns the time from the
/// request to the node holding every piece durably.
fn pollen_fetch(dir: &Path, src: &Path, round: usize) -> Duration {
    let seed = Node::start(&dir.join(format!("seed{round}")), &NodeOpts::default());
    let ticket = seed.share(src);
    let node = Node::start(
        &dir.join(format!("node{round}")),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    let id = ticket_id(&seed);
    let start = Instant::now();
    let get = node.cli_spawn(&[
        "get",
        &ticket,
        "-o",
        dir.join(format!("out{round}")).to_str().expect("utf-8"),
    ]);
    node.wait_for(&id, Duration::from_secs(600), |s| s["complete"] == true);
    let elapsed = start.elapsed();
    pollen_tests::finish_get(get);
    elapsed
}

/// Removes the previous round's outputs and waits for their writeback, so one measurement
/// does not pay for the last one's dirty pages.
fn settle(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let name = entry.file_name();
        if name != "artifact.bin" {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
    let _ = std::process::Command::new("sync").status();
}

fn ticket_id(seed: &Node) -> String {
    seed.status()["artifacts"][0]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("artifact.bin");
    std::fs::write(&src, pseudo_random(mib << 20, 7)).expect("write artifact");
    let bytes = (mib << 20) as f64;
    let mut tcp = Duration::MAX;
    let mut pollen = Duration::MAX;
    for round in 0..ROUNDS {
        settle(tmp.path());
        tcp = tcp.min(tcp_copy(&src, &tmp.path().join("tcp.out")));
        settle(tmp.path());
        pollen = pollen.min(pollen_fetch(tmp.path(), &src, round));
    }
    let rate = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!("artifact: {mib} MiB, best of {ROUNDS} rounds each");
    println!(
        "plain TCP copy:     {:>7.3} s  {:>8.1} MB/s",
        tcp.as_secs_f64(),
        rate(tcp)
    );
    println!(
        "pollen seed->node:  {:>7.3} s  {:>8.1} MB/s",
        pollen.as_secs_f64(),
        rate(pollen)
    );
    println!(
        "ratio (pollen goodput / TCP goodput): {:.2}",
        tcp.as_secs_f64() / pollen.as_secs_f64()
    );
}
