//! A free upload slot goes to the waiting peer that holds the fewest pieces, not to the one
//! that asked first; the rechoke still rotates slots.

mod common;

use std::time::Duration;

use common::pair::{Mesh, Reads, SEED, config, downloader_swarm, manifest, seed_swarm};
use pollen_core::{Bitfield, Instant, swarm::Swarm, wire::Message};

/// Drives the seed and the downloaders (downloader `k` is node `k` and the seed's link `k`,
/// link 1 on its side) until quiet, and returns the seed's links that were sent an Unchoke
/// (positive) or a Choke (negative) since last time, in order.
fn unchokes(m: &mut Mesh) -> Vec<i64> {
    m.drive();
    m.take_decoded(SEED, |link, msg| match msg {
        Message::Unchoke => Some(link as i64),
        Message::Choke => Some(-(link as i64)),
        _ => None,
    })
}

#[test]
fn a_free_slot_goes_to_the_peer_furthest_behind() {
    let (mut m, at) = one_slot_three_waiting();
    // The first downloader goes away: its slot goes to 3, who holds nothing, although 2
    // has waited longer.
    m.now = at + Duration::from_millis(10);
    m.disconnect(SEED, 1);
    let next = unchokes(&mut m);
    assert_eq!(next, [3]);
}

#[test]
fn the_rechoke_rotates_the_slot_past_the_peer_holding_least() {
    let (mut m, at) = one_slot_three_waiting();
    let interval = config(0).rechoke_interval;
    // Downloader 1 holds nothing, yet at the rechoke it yields its slot to 3 (the neediest
    // of those waiting), and does not take it straight back.
    let at = at + interval;
    m.wake(SEED, at);
    assert_eq!(unchokes(&mut m), [-1, 3]);
    // Next, 2 has waited two intervals: it goes before 1, who holds fewer pieces.
    let at = at + interval;
    m.wake(SEED, at);
    assert_eq!(unchokes(&mut m), [-3, 2]);
}

/// A seed with one upload slot, taken by downloader 1 (holding nothing); downloaders 2
/// (holding half the pieces) and 3 (holding none) wait, 2 since before 3. The seed never
/// reads a piece, so a slot stays taken.
fn one_slot_three_waiting() -> (Mesh, Instant) {
    let manifest = manifest();
    let pieces = manifest.layout().piece_count();
    let mut cfg = config(1);
    cfg.upload_slots = 1;
    let t0 = Instant::ZERO;
    let mut half = Bitfield::new(pieces);
    for p in 0..pieces / 2 {
        half.insert(p);
    }
    let mut m = Mesh::new(vec![
        seed_swarm(cfg),
        downloader_swarm(config(10), t0, 2),
        Swarm::with_manifest(config(11), manifest, half, t0, 3),
        downloader_swarm(config(12), t0, 4),
    ]);
    m.node(SEED).reads = Reads::Hold;
    let mut first = Vec::new();
    for k in 1..=3 {
        m.now = m.now + Duration::from_millis(10);
        m.link(SEED, k as u64, k, 1);
        first.extend(unchokes(&mut m));
    }
    assert_eq!(first, [1], "one slot: only the first asker is unchoked");
    let at = m.now;
    (m, at)
}
