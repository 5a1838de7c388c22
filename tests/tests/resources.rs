//! Hostile sockets cannot exhaust a node: thousands of silent, slow and half-sent
//! connections to its peer port and its HTTP address, under the common 1,024 open-file
//! limit, leave its API answering, an honest fetch completing, and its memory bounded.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use pollen_tests::{Node, NodeOpts, b3, write_artifact};

const LIMIT: Duration = Duration::from_secs(120);
/// What the hostile sockets may add to the node's resident memory at most.
const RSS_GROWTH_BOUND: u64 = 160 << 20;

/// Opens a connection from `from` (another loopback address than honest peers use) to `to`.
fn hostile(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let local: SocketAddr = format!("{from}:0").parse().ok()?;
    sock.bind(&local.into()).ok()?;
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .ok()?;
    Some(sock.into())
}

#[test]
fn thousands_of_hostile_sockets_leave_the_api_up_an_honest_fetch_going_and_memory_bounded() {
    raise_own_fd_limit();
    let tmp = tempfile::tempdir().expect("tmp");
    let (file, _, id) = write_artifact(tmp.path(), 4 << 20, 31);
    let seed = Node::start(
        &tmp.path().join("seed"),
        &NodeOpts {
            nofile: Some(1024),
            ..NodeOpts::default()
        },
    );
    let ticket = seed.share(&file);
    let before = seed.rss();
    let peer_port: SocketAddr = seed.listen.parse().expect("listen address");
    let api: SocketAddr = seed
        .api
        .trim_start_matches("http://")
        .parse()
        .expect("api address");

    // 2,000 to the peer port from many addresses: half silent, half sending a frame's
    // length (the largest) and then a trickle of its body.
    let mut held = Vec::new();
    for i in 0..2000u32 {
        let from = format!("127.1.{}.{}", i / 250, 1 + i % 250);
        if let Some(mut s) = hostile(&from, peer_port) {
            if i % 2 == 1 {
                let mut frame = (256u32 * 1024 - 4).to_le_bytes().to_vec();
                frame.extend_from_slice(&[1, 0, 0, 0]);
                let _ = s.write_all(&frame);
            }
            held.push(s);
        }
    }
    // 1,000 to the HTTP address, each with half a request.
    for i in 0..1000u32 {
        let from = format!("127.2.{}.{}", i / 250, 1 + i % 250);
        if let Some(mut s) = hostile(&from, api) {
            let _ = s.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n");
            held.push(s);
        }
    }
    assert!(
        held.len() > 2500,
        "only {} hostile sockets opened",
        held.len()
    );

    // The API answers, and an honest node fetches.
    let status = seed.status();
    assert!(status["artifacts"].as_array().is_some_and(|a| a.len() == 1));
    let node = Node::start(
        &tmp.path().join("node"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    let out = tmp.path().join("out");
    let get = node.cli_within(LIMIT, &["get", &ticket, "-o", out.to_str().expect("utf-8")]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(b3(&out), id);

    let grown = seed.rss().saturating_sub(before);
    eprintln!("RSS before {} MiB, grown {} MiB", before >> 20, grown >> 20);
    assert!(
        grown < RSS_GROWTH_BOUND,
        "the node grew by {} MiB with {} hostile sockets open",
        grown >> 20,
        held.len()
    );
    drop(held);
    assert!(seed.log().contains("API on"), "still the same node");
}

/// Lets this test open its thousands of sockets.
fn raise_own_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}
