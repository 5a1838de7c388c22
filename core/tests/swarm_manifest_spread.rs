//! The manifest spreads like a piece: a seed that spreads first sends it to a few peers and
//! refuses the rest, which fetch it from peers that announce they have it, or from the seed
//! again once no one else had it for `stall_timeout`.

mod common;

use std::time::Duration;

use common::pair::{Mesh, config, downloader_swarm, handshake, manifest, seed_swarm};
use pollen_core::{Instant, wire::Message};

/// What one side sent on a link, as far as these tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    /// A manifest request for `count` hashes from `first`.
    Request {
        first: u32,
        count: u32,
    },
    /// Manifest hashes from `first`.
    Part {
        first: u32,
        hashes: Vec<u8>,
    },
    HaveManifest,
    Refused,
}

/// Steps the lone swarm once and returns what it sent, per link, keeping only the manifest
/// messages.
fn sent(m: &mut Mesh) -> Vec<(u64, Sent)> {
    m.step();
    m.take_decoded(0, |link, msg| {
        let sent = match msg {
            Message::ManifestRequest { first, count } => Sent::Request { first, count },
            Message::ManifestPart { first, hashes } => Sent::Part {
                first,
                hashes: hashes.to_vec(),
            },
            Message::HaveManifest => Sent::HaveManifest,
            Message::ManifestRefused => Sent::Refused,
            _ => return None,
        };
        Some((link, sent))
    })
}

/// A seed (spreading first if `spread`) with `peers` handshaken peers on links `1..=peers`.
fn seed(now: Instant, peers: u64, spread: bool) -> Mesh {
    let mut cfg = config(1);
    if spread {
        cfg.spread_first = true;
        cfg.spread_first_min_links = 2;
    }
    let mut m = Mesh::new(vec![seed_swarm(cfg)]);
    m.now = now;
    for link in 1..=peers {
        m.greet(0, link, link as u8 + 10);
    }
    m
}

/// Asks the seed for the whole manifest on `link`, in two parts, and returns its answer.
fn ask_manifest(m: &mut Mesh, link: u64, pieces: u32) -> Vec<(u64, Sent)> {
    let half = pieces / 2;
    for (first, count) in [(0, half), (half, pieces - half)] {
        m.hear(0, link, &Message::ManifestRequest { first, count });
    }
    sent(m)
}

#[test]
fn a_spreading_seed_sends_a_few_copies_then_refuses_once_per_peer() {
    let t = Instant::ZERO + Duration::from_millis(1);
    let mut seed = seed(t, 12, true);
    let manifest = manifest();
    let pieces = manifest.layout().piece_count();
    let hashes = manifest.piece_cv_bytes().to_vec();
    // Every linked peer heard that the seed has the manifest.
    let announced: Vec<u64> = sent(&mut seed)
        .into_iter()
        .filter(|(_, m)| *m == Sent::HaveManifest)
        .map(|(link, _)| link)
        .collect();
    assert_eq!(announced, (1..=12).collect::<Vec<_>>());

    let served = |answer: &[(u64, Sent)]| {
        let parts: Vec<u8> = answer
            .iter()
            .filter_map(|(_, m)| match m {
                Sent::Part { hashes, .. } => Some(hashes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        parts == hashes
    };
    // A request for one hash uses up no more than that of the copies.
    seed.hear(0, 1, &Message::ManifestRequest { first: 0, count: 1 });
    assert!(matches!(
        sent(&mut seed)[..],
        [(1, Sent::Part { first: 0, .. })]
    ));
    let mut copies = Vec::new();
    for link in 1..=12 {
        let answer = ask_manifest(&mut seed, link, pieces);
        if served(&answer) {
            copies.push(link);
        } else {
            // The whole request is refused, with one message.
            assert_eq!(answer, [(link, Sent::Refused)], "peer {link}");
        }
    }
    assert_eq!(
        copies,
        [1, 2, 3, 4, 5, 6, 7, 8],
        "the first 8 askers get a copy"
    );
    // A refused peer found no one else: asked again, it is served.
    let answer = ask_manifest(&mut seed, 12, pieces);
    assert!(served(&answer), "a second request is served: {answer:?}");
}

#[test]
fn a_seed_that_does_not_spread_first_serves_every_peer() {
    let t = Instant::ZERO + Duration::from_millis(1);
    let pieces = manifest().layout().piece_count();
    let mut seed = seed(t, 12, false);
    sent(&mut seed);
    for link in 1..=12 {
        let answer = ask_manifest(&mut seed, link, pieces);
        assert!(
            answer.iter().all(|(_, m)| matches!(m, Sent::Part { .. })) && answer.len() == 2,
            "peer {link}: {answer:?}"
        );
    }
}

/// A downloader with links 1 and 2 connected; neither peer handshaken yet.
fn downloader(now: Instant) -> Mesh {
    let mut m = Mesh::new(vec![downloader_swarm(config(2), now, 2)]);
    m.now = now;
    for link in [1, 2] {
        m.open(0, link);
    }
    sent(&mut m);
    m
}

/// The links `down` asked for the manifest, each once per request started at piece 0.
fn asked(out: &[(u64, Sent)]) -> Vec<u64> {
    out.iter()
        .filter(|(_, m)| matches!(m, Sent::Request { first: 0, .. }))
        .map(|(link, _)| *link)
        .collect()
}

#[test]
fn a_refused_peer_asks_one_that_announces_the_manifest_and_passes_it_on() {
    let t = Instant::ZERO + Duration::from_millis(1);
    let mut down = downloader(t);
    let manifest = manifest();
    let pieces = manifest.layout().piece_count();
    // Peer 1 (the seed) says it has the manifest; peer 2 has nothing yet.
    down.hear(0, 1, &handshake(11));
    down.hear(0, 1, &Message::HaveManifest);
    down.hear(0, 2, &handshake(12));
    assert_eq!(asked(&sent(&mut down)), [1]);
    // The seed refuses: no one else has the manifest, so the downloader waits.
    down.hear(0, 1, &Message::ManifestRefused);
    assert_eq!(asked(&sent(&mut down)), Vec::<u64>::new());
    // Peer 2 got it elsewhere and says so: the downloader asks it.
    down.hear(0, 2, &Message::HaveManifest);
    let out = sent(&mut down);
    assert_eq!(asked(&out), [2]);
    let requested: u32 = out
        .iter()
        .map(|(_, m)| match m {
            Sent::Request { count, .. } => *count,
            _ => 0,
        })
        .sum();
    assert_eq!(requested, pieces);
    // Peer 2 sends it; once verified, the downloader tells both its peers it has it.
    down.hear(
        0,
        2,
        &Message::ManifestPart {
            first: 0,
            hashes: manifest.piece_cv_bytes(),
        },
    );
    assert!(down.swarm(0).manifest().is_some(), "the manifest verified");
    let told: Vec<u64> = sent(&mut down)
        .into_iter()
        .filter(|(_, m)| *m == Sent::HaveManifest)
        .map(|(link, _)| link)
        .collect();
    assert_eq!(told, [1, 2]);
}

#[test]
fn a_refused_peer_that_finds_no_other_source_asks_the_seed_again_after_the_stall_timeout() {
    let t = Instant::ZERO + Duration::from_millis(1);
    let mut down = downloader(t);
    let stall = config(0).stall_timeout;
    down.hear(0, 1, &handshake(11));
    down.hear(0, 1, &Message::HaveManifest);
    down.hear(0, 2, &handshake(12));
    assert_eq!(asked(&sent(&mut down)), [1]);
    down.hear(0, 1, &Message::ManifestRefused);
    sent(&mut down);
    // The downloader wakes up to ask again no later than the stall timeout.
    let wake = down.swarm(0).poll_timeout().expect("a timeout is pending");
    assert!(wake <= t + stall, "{wake:?} is after {:?}", t + stall);
    let early = t + (stall - Duration::from_millis(1));
    down.wake(0, early);
    assert_eq!(asked(&sent(&mut down)), Vec::<u64>::new(), "too early");
    down.wake(0, t + stall);
    assert_eq!(asked(&sent(&mut down)), [1]);
}

#[test]
fn a_refusal_from_a_peer_not_asked_is_ignored_and_a_closed_source_is_replaced() {
    let t = Instant::ZERO + Duration::from_millis(1);
    let mut down = downloader(t);
    down.hear(0, 1, &handshake(11));
    down.hear(0, 1, &Message::HaveManifest);
    assert_eq!(asked(&sent(&mut down)), [1]);
    down.hear(0, 2, &handshake(12));
    down.hear(0, 2, &Message::HaveManifest);
    // Peer 2 refuses a request we never sent it: the fetch from peer 1 goes on.
    down.hear(0, 2, &Message::ManifestRefused);
    assert_eq!(asked(&sent(&mut down)), Vec::<u64>::new());
    // Peer 1 goes away mid-fetch: peer 2 is asked at once.
    down.disconnect(0, 1);
    assert_eq!(asked(&sent(&mut down)), [2]);
}

#[test]
fn a_refusing_peer_that_drops_its_pieces_leaves_no_timer_in_the_past() {
    let t = Instant::ZERO + Duration::from_millis(1);
    let mut down = downloader(t);
    let stall = config(0).stall_timeout;
    // Peer 1 holds a piece (so it has the manifest), refuses it, then says it holds nothing.
    down.hear(0, 1, &handshake(11));
    down.hear(0, 1, &Message::Have { piece: 0 });
    assert_eq!(asked(&sent(&mut down)), [1]);
    down.hear(0, 1, &Message::ManifestRefused);
    let bits = vec![0u8; manifest().layout().piece_count().div_ceil(8) as usize];
    down.hear(0, 1, &Message::Bitfield { bits: &bits });
    sent(&mut down);
    let later = t + stall + Duration::from_millis(1);
    down.wake(0, later);
    assert_eq!(asked(&sent(&mut down)), Vec::<u64>::new(), "no source");
    assert!(
        down.swarm(0).poll_timeout().is_none_or(|at| at > later),
        "a timer at or before {later:?} would spin the driver"
    );
}
