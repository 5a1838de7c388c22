//! A seed that spreads first refuses a piece another linked peer holds, and offers it again at
//! a rechoke only to a peer that got no piece since the last one (stalled), not to one that
//! keeps getting pieces elsewhere.

mod common;

use std::time::Duration;

use common::pair::{Mesh, SEED, config, manifest, seed_swarm};
use pollen_core::{
    Instant,
    wire::{BlockRef, Message},
};

/// A seed that spreads first, sending blocks of `block_size` bytes (at most a piece), with
/// peers on links `1..=peers`, handshaken and interested; and the time they linked.
fn linked(block_size: u32, peers: u64) -> (Mesh, Instant) {
    let mut cfg = config(1);
    cfg.spread_first = true;
    cfg.spread_first_min_links = 2;
    cfg.block_size = block_size;
    let mut m = Mesh::new(vec![seed_swarm(cfg)]);
    let t = Instant::ZERO + Duration::from_millis(1);
    m.now = t;
    for link in 1..=peers {
        m.greet(SEED, link, link as u8 + 10);
        m.hear(SEED, link, &Message::Interested);
    }
    drain(&mut m);
    (m, t)
}

/// Asks for the whole of piece `piece` (one block) on `link`.
fn request(m: &mut Mesh, link: u64, piece: u32) {
    let len = manifest().layout().piece_len(piece).expect("in range") as u32;
    request_block(m, link, piece, 0, len);
}

/// Asks for `len` bytes of piece `piece` from `offset` on `link`.
fn request_block(m: &mut Mesh, link: u64, piece: u32, offset: u32, len: u32) {
    let r = BlockRef { piece, offset, len };
    m.hear(SEED, link, &Message::Request(r));
}

/// Drives the seed until quiet (it reads pieces as asked), and returns the messages it sent
/// to each link since last time: (link, Have piece) for Haves, (link, -1 - piece) for
/// Rejects, (link, 1000 + piece) for blocks.
fn drain(m: &mut Mesh) -> Vec<(u64, i64)> {
    m.drive();
    m.take_decoded(SEED, |link, msg| match msg {
        Message::Have { piece } => Some((link, i64::from(piece))),
        Message::Reject(r) => Some((link, -1 - i64::from(r.piece))),
        Message::Block { piece, .. } => Some((link, 1000 + i64::from(piece))),
        _ => None,
    })
}

#[test]
fn a_refused_piece_is_offered_again_only_to_a_peer_that_stalled() {
    let (mut seed, t) = linked(128 * 1024, 3);
    let interval = config(0).rechoke_interval;
    // Peer 1 gets piece 0 and says so.
    request(&mut seed, 1, 0);
    assert_eq!(drain(&mut seed), [(1, 1000)]);
    seed.hear(SEED, 1, &Message::Have { piece: 0 });
    // Peers 2 and 3 are refused it: peer 1 can spread it.
    request(&mut seed, 2, 0);
    request(&mut seed, 3, 0);
    assert_eq!(drain(&mut seed), [(2, -1), (3, -1)]);

    // Before the rechoke, peer 2 gets another piece elsewhere; peer 3 gets nothing.
    seed.hear(SEED, 2, &Message::Have { piece: 5 });
    let t = t + interval;
    seed.wake(SEED, t);
    assert_eq!(
        drain(&mut seed),
        [(3, 0)],
        "offered again to the stalled peer only"
    );
    // Peer 3 asks again and is served.
    request(&mut seed, 3, 0);
    assert_eq!(drain(&mut seed), [(3, 1000)]);

    // Peer 2's refusal waits: at the next rechoke, having got nothing since, it is offered
    // the piece too.
    let t = t + interval;
    seed.wake(SEED, t);
    assert_eq!(drain(&mut seed), [(2, 0)]);
}

#[test]
fn a_refusal_is_forgotten_once_the_peer_got_the_piece_elsewhere() {
    let (mut seed, t) = linked(128 * 1024, 2);
    let interval = config(0).rechoke_interval;
    request(&mut seed, 1, 0);
    assert_eq!(drain(&mut seed), [(1, 1000)]);
    seed.hear(SEED, 1, &Message::Have { piece: 0 });
    request(&mut seed, 2, 0);
    assert_eq!(drain(&mut seed), [(2, -1)]);
    // Peer 2 gets the piece from peer 1.
    seed.hear(SEED, 2, &Message::Have { piece: 0 });
    // Neither rechoke offers it again, stalled or not: peer 2 holds it.
    let mut t = t;
    for _ in 0..2 {
        t = t + interval;
        seed.wake(SEED, t);
        assert_eq!(drain(&mut seed), []);
    }
}

#[test]
fn a_piece_on_its_way_to_one_peer_is_refused_to_others_until_the_stall_timeout() {
    // Pieces of 16 KiB in blocks of 4 KiB.
    let (mut seed, t) = linked(4096, 3);
    let stall = config(0).stall_timeout;
    // Peer 1 gets the first block of piece 0: its first copy is on its way.
    request_block(&mut seed, 1, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(1, 1000)]);
    // Peer 2 is refused piece 0, every block it asks for at once, while peer 1 gets the
    // rest of it.
    request_block(&mut seed, 2, 0, 0, 4096);
    request_block(&mut seed, 2, 0, 4096, 4096);
    request_block(&mut seed, 1, 0, 4096, 4096);
    assert_eq!(drain(&mut seed), [(2, -1), (2, -1), (1, 1000)]);
    // Peer 1 has all of it but has not said so yet: still refused to others.
    request_block(&mut seed, 1, 0, 8192, 4096);
    request_block(&mut seed, 1, 0, 12288, 4096);
    request_block(&mut seed, 3, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(1, 1000), (1, 1000), (3, -1)]);
    // Peer 1 never says it holds the piece (it crashed, say): after the stall timeout the
    // piece is served again, and its first copy now goes to peer 3.
    seed.now = t + stall;
    request_block(&mut seed, 3, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(3, 1000)]);
    request_block(&mut seed, 2, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(2, -1)]);
}

#[test]
fn a_piece_whose_first_copy_went_to_a_closed_link_is_served_at_once() {
    let (mut seed, _) = linked(4096, 3);
    request_block(&mut seed, 1, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(1, 1000)]);
    request_block(&mut seed, 2, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(2, -1)]);
    // Peer 1 goes away before it said it holds the piece: no one spreads it, so the next
    // asker gets it without waiting for the stall timeout.
    seed.disconnect(SEED, 1);
    request_block(&mut seed, 3, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(3, 1000)]);
}

#[test]
fn a_peer_partway_through_a_piece_gets_the_rest_of_it() {
    let (mut seed, t) = linked(4096, 2);
    let stall = config(0).stall_timeout;
    // Peer 1, slow, gets the first block of piece 0.
    request_block(&mut seed, 1, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(1, 1000)]);
    // Past the stall timeout, peer 2 takes over the first copy.
    seed.now = t + stall;
    request_block(&mut seed, 2, 0, 0, 4096);
    assert_eq!(drain(&mut seed), [(2, 1000)]);
    // Peer 1's next block is not refused: it is partway through the piece.
    request_block(&mut seed, 1, 0, 4096, 4096);
    assert_eq!(drain(&mut seed), [(1, 1000)]);
}
