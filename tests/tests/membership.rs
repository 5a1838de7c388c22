//! Gossip membership between real `pollen node` processes on loopback: joins, failure
//! detection, and fetching what gossip says is where.

use std::{path::Path, time::Duration};

use pollen_core::{Hint, Ticket};
use pollen_tests::{Node, NodeOpts, b3, bare_ticket, finish_get, free_ports, write_artifact};

const MIB: usize = 1024 * 1024;
const LIMIT: Duration = Duration::from_secs(120);

fn start(dir: &Path, name: &str, join: Option<&Node>, zone: Option<&str>) -> Node {
    Node::start(
        &dir.join(name),
        &NodeOpts {
            join: join.map(|n| n.listen.clone()).into_iter().collect(),
            zone: zone.map(str::to_string),
            ..NodeOpts::default()
        },
    )
}

#[test]
fn a_chain_of_five_finds_itself_finds_artifacts_and_declares_the_killed_dead() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Each node is told only of the one before it.
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..5 {
        let node = start(tmp.path(), &format!("n{i}"), nodes.last(), None);
        nodes.push(node);
    }
    for n in &nodes {
        n.wait_until(LIMIT, "it sees 4 alive members", |n| {
            n.members_with("alive").len() == 4
        });
    }

    // n4 was never told where the artifact is: the ticket has no addresses.
    let (file, data, id) = write_artifact(tmp.path(), 8 * MIB, 7);
    nodes[0].share(&file);
    let ticket = bare_ticket(&file);
    let out = tmp.path().join("out.bin");
    let get = nodes[4].cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]);
    finish_get(get);
    assert_eq!(b3(&out), id);

    // Any member's address suffices: a new node, told of no cluster, gets a ticket whose only
    // address is n1's, a member without the artifact.
    let n1: std::net::SocketAddr = nodes[1].listen.parse().expect("a socket address");
    let hinted = Ticket::new(id.parse().expect("a content id"), data.len() as u64)
        .and_then(|t| t.with_hint(Hint::Node(n1)))
        .expect("a valid ticket")
        .to_string();
    nodes.push(start(tmp.path(), "n5", None, None));
    let out5 = tmp.path().join("out5.bin");
    let get = nodes[5].cli_spawn(&["get", &hinted, "-o", out5.to_str().expect("utf-8")]);
    finish_get(get);
    assert_eq!(b3(&out5), id);
    for n in &nodes {
        n.wait_until(LIMIT, "it sees 5 alive members", |n| {
            n.members_with("alive").len() == 5
        });
    }

    // Kill n2 without a word: the others declare it dead.
    let victim = nodes[2].peer_id();
    let killed = nodes.remove(2);
    killed.kill();
    for n in &nodes {
        n.wait_until(LIMIT, "it declares the killed node dead", |n| {
            n.members_with("dead").contains(&victim)
        });
        assert_eq!(n.members_with("alive").len(), 4, "the live ones stay alive");
    }
}

#[test]
fn five_nodes_started_at_once_with_chained_joins_converge() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let addrs: Vec<String> = free_ports(5)
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    // All five start together, each told only of the one before it, the last one first (100 ms
    // apart): each first join goes to a node not listening yet, and a node is contacted by the
    // one after it before its own join succeeds.
    let mut nodes: Vec<Node> = std::thread::scope(|s| {
        let started: Vec<_> = (0..5)
            .rev()
            .map(|i| {
                let opts = NodeOpts {
                    listen: Some(addrs[i].clone()),
                    join: i
                        .checked_sub(1)
                        .map(|j| addrs[j].clone())
                        .into_iter()
                        .collect(),
                    ..NodeOpts::default()
                };
                let dir = tmp.path().join(format!("n{i}"));
                let node = s.spawn(move || Node::start(&dir, &opts));
                std::thread::sleep(Duration::from_millis(100));
                node
            })
            .collect();
        started
            .into_iter()
            .map(|t| t.join().expect("a node started"))
            .collect()
    });
    nodes.reverse();
    for n in &nodes {
        n.wait_until(LIMIT, "it sees 4 alive members", |n| {
            n.members_with("alive").len() == 4
        });
    }
}

#[test]
fn an_artifact_crosses_between_two_zones_about_once() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let first = start(tmp.path(), "a0", None, Some("a"));
    let mut a = vec![first];
    let mut b: Vec<Node> = Vec::new();
    for i in 1..4 {
        a.push(start(tmp.path(), &format!("a{i}"), Some(&a[0]), Some("a")));
    }
    for i in 0..4 {
        b.push(start(tmp.path(), &format!("b{i}"), Some(&a[0]), Some("b")));
    }
    for n in a.iter().chain(&b) {
        n.wait_until(LIMIT, "it sees 7 alive members", |n| {
            n.members_with("alive").len() == 7
        });
    }
    let size = 16 * MIB;
    let (file, _, id) = write_artifact(tmp.path(), size, 11);
    a[0].share(&file);
    let ticket = bare_ticket(&file);
    let outs: Vec<_> = (0..4)
        .map(|i| tmp.path().join(format!("out{i}.bin")))
        .collect();
    let gets: Vec<_> = b
        .iter()
        .zip(&outs)
        .map(|(n, out)| n.cli_spawn(&["get", &ticket, "-o", out.to_str().expect("utf-8")]))
        .collect();
    for get in gets {
        finish_get(get);
    }
    for out in &outs {
        assert_eq!(b3(out), id);
    }
    // Only zone a's nodes could send it into zone b; count what they uploaded.
    let crossed: u64 = a
        .iter()
        .filter_map(|n| n.artifact(&id))
        .map(|s| s["uploaded"].as_u64().unwrap_or(0))
        .sum();
    let copies = crossed as f64 / size as f64;
    eprintln!("the artifact crossed between zones {copies:.2} times");
    assert!(
        copies < 1.5,
        "crossed {copies:.2} times; once per node would be 4"
    );
    // And zone b's nodes fetched from each other.
    let within_b: u64 = b
        .iter()
        .filter_map(|n| n.artifact(&id))
        .map(|s| s["uploaded"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        within_b as f64 >= 2.0 * size as f64,
        "zone b shared among itself: {within_b}"
    );
}
