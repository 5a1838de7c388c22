//! A free upload slot goes to the waiting peer that holds the fewest pieces, not to the one
//! that asked first; the rechoke still rotates slots.

mod common;

use std::time::Duration;

use common::DATA;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{LinkId, Swarm, SwarmConfig},
    wire::{self, Message},
};

/// Moves frames between the seed and the downloaders (downloader `i` is the seed's link
/// `i + 1`, and link 1 on its side) until quiet; the seed never reads a piece, so a slot
/// stays taken. Returns the seed's links that were sent an Unchoke (positive) or a Choke
/// (negative), in order.
fn shuttle(seed: &mut Swarm, downs: &mut [Option<Swarm>], now: Instant) -> Vec<i64> {
    let mut unchoked = Vec::new();
    for _ in 0..common::MAX_ROUNDS {
        let mut moved = false;
        while let Some((link, segments)) = seed.poll_transmit() {
            moved = true;
            for body in common::frames(segments) {
                match wire::decode(&body) {
                    Ok(Message::Unchoke) => unchoked.push(link.0 as i64),
                    Ok(Message::Choke) => unchoked.push(-(link.0 as i64)),
                    _ => {}
                }
                if let Some(d) = &mut downs[(link.0 - 1) as usize] {
                    d.handle_frame(now, LinkId(1), body);
                }
            }
        }
        for (i, d) in downs.iter_mut().enumerate() {
            let Some(d) = d else { continue };
            while let Some((_, segments)) = d.poll_transmit() {
                moved = true;
                for body in common::frames(segments) {
                    seed.handle_frame(now, LinkId(i as u64 + 1), body);
                }
            }
            while d.poll_action().is_some() {}
            while d.poll_event().is_some() {}
        }
        while seed.poll_action().is_some() {}
        while seed.poll_event().is_some() {}
        if !moved {
            return unchoked;
        }
    }
    panic!("the swarms never went quiet");
}

#[test]
fn a_free_slot_goes_to_the_peer_furthest_behind() {
    let (mut seed, mut downs, at) = one_slot_three_waiting();
    // The first downloader goes away: its slot goes to 3, who holds nothing, although 2
    // has waited longer.
    downs[0] = None;
    let at = at + Duration::from_millis(10);
    seed.handle_disconnected(at, LinkId(1));
    let next = shuttle(&mut seed, &mut downs, at);
    assert_eq!(next, [3]);
}

#[test]
fn the_rechoke_rotates_the_slot_past_the_peer_holding_least() {
    let (mut seed, mut downs, at) = one_slot_three_waiting();
    let interval = SwarmConfig::new(PeerId::from_bytes([0; 32])).rechoke_interval;
    // Downloader 1 holds nothing, yet at the rechoke it yields its slot to 3 (the neediest
    // of those waiting), and does not take it straight back.
    let at = at + interval;
    seed.handle_timeout(at);
    assert_eq!(shuttle(&mut seed, &mut downs, at), [-1, 3]);
    // Next, 2 has waited two intervals: it goes before 1, who holds fewer pieces.
    let at = at + interval;
    seed.handle_timeout(at);
    assert_eq!(shuttle(&mut seed, &mut downs, at), [-3, 2]);
}

/// A seed with one upload slot, taken by downloader 1 (holding nothing); downloaders 2
/// (holding half the pieces) and 3 (holding none) wait, 2 since before 3.
fn one_slot_three_waiting() -> (Swarm, Vec<Option<Swarm>>, Instant) {
    let data = DATA.with(Clone::clone);
    let manifest = Manifest::of(&data).expect("small");
    let pieces = manifest.layout().piece_count();
    let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
    let mut cfg = SwarmConfig::new(PeerId::from_bytes([1; 32]));
    cfg.upload_slots = 1;
    let t0 = Instant::ZERO;
    let mut seed = Swarm::with_manifest(cfg, manifest.clone(), Bitfield::full(pieces), t0, 1);

    let mut half = Bitfield::new(pieces);
    for p in 0..pieces / 2 {
        half.insert(p);
    }
    let peer = |n: u8| SwarmConfig::new(PeerId::from_bytes([n; 32]));
    let mut downs: Vec<Option<Swarm>> = vec![
        Some(Swarm::new(peer(10), &ticket, t0, 2)),
        Some(Swarm::with_manifest(peer(11), manifest, half, t0, 3)),
        Some(Swarm::new(peer(12), &ticket, t0, 4)),
    ];
    let mut at = t0;
    let mut first = Vec::new();
    for i in 0..3 {
        at = at + Duration::from_millis(10);
        seed.handle_connected(at, LinkId(i as u64 + 1));
        if let Some(d) = &mut downs[i] {
            d.handle_connected(at, LinkId(1));
        }
        first.extend(shuttle(&mut seed, &mut downs, at));
    }
    assert_eq!(first, [1], "one slot: only the first asker is unchoked");
    (seed, downs, at)
}
