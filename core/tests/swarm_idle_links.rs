//! A link that holds pieces we want and never sends one is dropped once nothing arrives from
//! anyone for `idle_link_timeout`, so the driver can link to other holders; while another
//! link delivers, it is kept.

mod common;

use std::time::Duration;

use common::pair::{Mesh, Reads, config, downloader_swarm, manifest, pieces, seed_swarm};
use pollen_core::{
    Bitfield, Instant,
    swarm::{DisconnectReason, LinkId, Swarm},
    wire::Message,
};

const DOWN: usize = 0;
const HONEST: usize = 1;
const IDLE: Duration = Duration::from_secs(10);

/// A downloader that has the manifest and drops idle links after [`IDLE`], and an honest
/// seed whose reads wait for the test (on the downloader's link 2). On link 1 the test
/// speaks for a liar that claims every piece and never unchokes it.
fn mesh() -> Mesh {
    let mut down = config(2);
    down.idle_link_timeout = Some(IDLE);
    let down = Swarm::with_manifest(down, manifest(), Bitfield::new(pieces()), Instant::ZERO, 2);
    let mut m = Mesh::new(vec![down, seed_swarm(config(3))]);
    m.node(HONEST).reads = Reads::Hold;
    m.link(DOWN, 2, HONEST, 1);
    lie_on(&mut m, 1, false);
    m
}

/// Opens the downloader's `link` to a liar (peer 9) that says it holds every piece (and the
/// manifest, if `manifest`).
fn lie_on(m: &mut Mesh, link: u64, manifest: bool) {
    m.greet(DOWN, link, 9);
    let all = Bitfield::full(pieces());
    m.hear(
        DOWN,
        link,
        &Message::Bitfield {
            bits: all.as_bytes(),
        },
    );
    if manifest {
        m.hear(DOWN, link, &Message::HaveManifest);
    }
}

fn unproductive(m: &mut Mesh) -> Vec<(Instant, LinkId)> {
    m.node(DOWN)
        .disconnects
        .iter()
        .filter(|(_, _, r)| *r == DisconnectReason::Unproductive)
        .map(|&(at, link, _)| (at, link))
        .collect()
}

#[test]
fn a_link_that_sends_nothing_is_kept_while_another_delivers() {
    let mut m = mesh();
    // The honest seed serves a piece a second for 25 s, far longer than the timeout.
    for _ in 0..25 {
        m.advance(Duration::from_secs(1));
        m.answer_reads(HONEST, 1);
        m.drive();
    }
    let got = m.swarm(DOWN).have().count();
    assert!(got >= 10 && !m.swarm(DOWN).is_complete(), "{got} pieces");
    assert_eq!(unproductive(&mut m), []);
}

#[test]
fn a_link_that_sends_nothing_is_dropped_once_nothing_arrives_from_anyone() {
    let mut m = mesh();
    for _ in 0..5 {
        m.advance(Duration::from_secs(1));
        m.answer_reads(HONEST, 1);
        m.drive();
    }
    assert!(m.swarm(DOWN).have().count() >= 1);
    let last_block = m.now;
    // The honest seed falls silent too: after the timeout, the liar's link goes.
    m.advance(IDLE * 2);
    let dropped = unproductive(&mut m);
    assert!(
        dropped.contains(&(last_block + IDLE, LinkId(1))),
        "{dropped:?}"
    );
    assert!(!m.swarm(DOWN).is_complete());
}

#[test]
fn a_fetch_linked_only_to_a_peer_that_never_serves_drops_it_at_the_timeout() {
    // Not even the manifest comes: the downloader cannot tell what it wants yet.
    let mut down = config(2);
    down.idle_link_timeout = Some(IDLE);
    let mut m = Mesh::new(vec![downloader_swarm(down, Instant::ZERO, 2)]);
    lie_on(&mut m, 1, true);
    m.advance(IDLE * 3);
    assert_eq!(
        unproductive(&mut m),
        [(Instant::ZERO + IDLE, LinkId(1))],
        "dropped once, when the timeout ran out"
    );
    // Nothing left to wait for: no timer spins at a time already past.
    if let Some(t) = m.swarm(DOWN).poll_timeout() {
        assert!(t > m.now, "{t:?} is not after {:?}", m.now);
    }
}

#[test]
fn a_peer_that_refuses_once_and_then_chokes_for_ever_is_still_dropped() {
    let mut down = config(2);
    down.idle_link_timeout = Some(IDLE);
    let down = Swarm::with_manifest(down, manifest(), Bitfield::new(pieces()), Instant::ZERO, 2);
    let mut m = Mesh::new(vec![down]);
    lie_on(&mut m, 1, false);
    m.hear(DOWN, 1, &Message::Unchoke);
    m.drive();
    let asked = m.take_decoded(DOWN, |_, msg| match msg {
        Message::Request(r) => Some(r),
        _ => None,
    });
    let first = *asked.first().expect("the downloader asks the liar");
    m.hear(DOWN, 1, &Message::Reject(first));
    m.hear(DOWN, 1, &Message::Choke);
    m.advance(IDLE * 4);
    assert!(
        unproductive(&mut m).iter().any(|&(_, l)| l == LinkId(1)),
        "{:?}",
        m.node(DOWN).disconnects
    );
}
