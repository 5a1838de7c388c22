//! The real swarm state machines over the simulated network.

use std::time::Duration;

use pollen_sim::net::{Behavior, Capacity, Net};
use pollen_tests::pseudo_random;

const MB: u64 = 1_000_000;

fn capacity(up_mb: u64) -> Capacity {
    Capacity {
        up: up_mb * MB,
        down: 4 * up_mb * MB,
    }
}

/// One seed and `peers` peers, each connected to the seed and to a few random others.
fn swarm_of(seed: u64, data: &[u8], peers: usize) -> Net {
    let mut net = Net::new(seed, Duration::from_millis(5));
    let (s, ticket) = net.add_seed(data, capacity(10), Behavior::Honest);
    for _ in 0..peers {
        let p = net.add_peer(&ticket, capacity(5), Behavior::Honest);
        net.connect(s, p);
    }
    net.connect_random(5);
    net
}

#[test]
fn one_seed_and_twenty_peers_all_complete_with_correct_content() {
    let data = pseudo_random(3 * 1024 * 1024 + 123, 1);
    let mut net = swarm_of(42, &data, 20);
    net.run(Duration::from_secs(600));
    for node in 0..net.len() {
        assert!(
            net.completed_at(node).is_some(),
            "node {node} did not complete"
        );
        assert_eq!(
            net.assembled(node).as_deref(),
            Some(&data[..]),
            "node {node}"
        );
    }
    assert!(net.bad_stores().is_empty());
    // The peers served each other: the seed sent far fewer than one copy per peer.
    let f = data.len() as u64;
    assert!(
        net.bytes_sent(0) < 20 * f / 2,
        "seed sent {} bytes = {:.1} copies",
        net.bytes_sent(0),
        net.bytes_sent(0) as f64 / f as f64
    );
}

#[test]
fn a_peer_serving_corrupt_blocks_is_banned_and_nobody_stores_its_bytes() {
    let data = pseudo_random(1024 * 1024, 2);
    let mut net = Net::new(3, Duration::from_millis(5));
    let (honest, ticket) = net.add_seed(&data, capacity(5), Behavior::Honest);
    let (liar, _) = net.add_seed(&data, capacity(50), Behavior::CorruptBlocks);
    let peers: Vec<usize> = (0..10)
        .map(|_| net.add_peer(&ticket, capacity(5), Behavior::Honest))
        .collect();
    for &p in &peers {
        net.connect(honest, p);
        net.connect(liar, p);
    }
    net.run(Duration::from_secs(600));
    assert!(
        net.bad_stores().is_empty(),
        "corrupt pieces stored: {:?}",
        net.bad_stores()
    );
    let liar_id = net.peer_id(liar);
    let mut banners = 0;
    for &p in &peers {
        assert_eq!(net.assembled(p).as_deref(), Some(&data[..]), "peer {p}");
        let banned = net.banned_by(p);
        assert!(
            banned.iter().all(|b| *b == liar_id),
            "peer {p} banned an honest peer"
        );
        banners += usize::from(!banned.is_empty());
        assert!(!net.swarm(p).is_banned(&net.peer_id(honest)));
    }
    // The liar is fast and unchokes everyone, so every peer tried it and caught it.
    assert_eq!(banners, peers.len());
}

#[test]
fn requests_to_a_peer_that_never_answers_time_out_and_go_elsewhere() {
    let data = pseudo_random(512 * 1024, 4);
    let mut net = Net::new(5, Duration::from_millis(5));
    let (honest, ticket) = net.add_seed(&data, capacity(2), Behavior::Honest);
    let (silent, _) = net.add_seed(&data, capacity(50), Behavior::WithholdBlocks);
    let peers: Vec<usize> = (0..4)
        .map(|_| net.add_peer(&ticket, capacity(2), Behavior::Honest))
        .collect();
    for &p in &peers {
        net.connect(silent, p);
        net.connect(honest, p);
    }
    net.run(Duration::from_secs(3600));
    for &p in &peers {
        assert_eq!(net.assembled(p).as_deref(), Some(&data[..]), "peer {p}");
    }
    assert!(
        net.bytes_sent(silent) < data.len() as u64,
        "the silent peer sent no blocks"
    );
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let data = pseudo_random(1024 * 1024 + 7, 3);
    let run = |seed| {
        let mut net = swarm_of(seed, &data, 12);
        net.run(Duration::from_secs(600));
        assert!((0..net.len()).all(|n| net.completed_at(n).is_some()));
        (net.trace_digest(), net.now())
    };
    let first = run(9);
    assert!(first.0.1 > 12, "the trace records events");
    assert_eq!(first, run(9));
    assert_ne!(first.0, run(10).0, "another seed takes another path");
}

#[test]
fn one_or_two_threads_give_the_same_run() {
    let data = pseudo_random(1024 * 1024 + 7, 4);
    let run = |threads| {
        let mut net = swarm_of(9, &data, 12);
        net.set_threads(threads);
        net.run(Duration::from_secs(600));
        let nodes: Vec<_> = (0..net.len())
            .map(|n| (net.completed_at(n), net.bytes_sent(n), net.assembled(n)))
            .collect();
        (net.trace_digest(), net.now(), nodes)
    };
    let one = run(1);
    assert!(
        one.2
            .iter()
            .all(|(done, _, data)| done.is_some() && data.is_some())
    );
    assert_eq!(one, run(2));
}

#[test]
fn latencies_below_the_clocks_microsecond_run_to_the_end() {
    let data = pseudo_random(256 * 1024, 5);
    for latency in [Duration::ZERO, Duration::from_nanos(500)] {
        let mut net = Net::new(2, latency);
        let (s, ticket) = net.add_seed(&data, capacity(10), Behavior::Honest);
        for _ in 0..4 {
            let p = net.add_peer(&ticket, capacity(5), Behavior::Honest);
            net.connect(s, p);
        }
        net.connect_random(2);
        net.set_threads(2);
        net.run(Duration::from_secs(600));
        let last = (0..net.len()).filter_map(|n| net.completed_at(n)).max();
        assert!(
            (0..net.len()).all(|n| net.completed_at(n).is_some()),
            "{latency:?}"
        );
        // Below a microsecond there is one partition, which stops at the last completion.
        assert_eq!(Some(net.now()), last, "{latency:?}");
    }
}

#[test]
fn tiny_and_empty_artifacts_need_no_manifest_exchange() {
    for size in [0, 1, 16 * 1024] {
        let data = pseudo_random(size, 5);
        let mut net = swarm_of(1, &data, 3);
        net.run(Duration::from_secs(60));
        for node in 0..net.len() {
            assert_eq!(
                net.assembled(node).as_deref(),
                Some(&data[..]),
                "size {size} node {node}"
            );
        }
    }
}

#[test]
fn a_peer_that_never_sends_the_manifest_is_given_up_for_another() {
    let data = pseudo_random(256 * 1024, 6);
    let mut net = Net::new(8, Duration::from_millis(5));
    // The withholding seed connects first, so it is asked first.
    let (mute, ticket) = net.add_seed(&data, capacity(5), Behavior::WithholdManifest);
    let (honest, _) = net.add_seed(&data, capacity(5), Behavior::Honest);
    let peer = net.add_peer(&ticket, capacity(5), Behavior::Honest);
    net.connect(mute, peer);
    net.connect(honest, peer);
    net.run(Duration::from_secs(600));
    assert_eq!(net.assembled(peer).as_deref(), Some(&data[..]));
}
