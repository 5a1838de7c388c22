//! A seed that spreads first refuses a piece another linked peer holds, and offers it again at
//! a rechoke only to a peer that got no piece since the last one (stalled), not to one that
//! keeps getting pieces elsewhere.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::DATA;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId,
    swarm::{Action, LinkId, Swarm, SwarmConfig},
    wire::{self, BlockRef, Handshake, Message},
};

/// The seed and what it needs to be driven by hand.
struct Seed {
    swarm: Swarm,
    manifest: Manifest,
}

impl Seed {
    /// A seed of blocks of `block_size` bytes with peers on links `1..=peers`, handshaken and
    /// interested, and the time they linked.
    fn linked(block_size: u32, peers: u64) -> (Self, Instant) {
        let mut seed = Self::with_blocks(block_size);
        let t = Instant::ZERO + Duration::from_millis(1);
        for link in 1..=peers {
            seed.link_peer(t, link);
        }
        seed.drain(t);
        (seed, t)
    }

    /// A seed sending blocks of `block_size` bytes (at most a piece).
    fn with_blocks(block_size: u32) -> Self {
        let data = DATA.with(Clone::clone);
        let manifest = Manifest::of(&data).expect("small");
        let pieces = manifest.layout().piece_count();
        let mut cfg = SwarmConfig::new(PeerId::from_bytes([1; 32]));
        cfg.spread_first = true;
        cfg.spread_first_min_links = 2;
        cfg.block_size = block_size;
        let swarm = Swarm::with_manifest(
            cfg,
            manifest.clone(),
            Bitfield::full(pieces),
            Instant::ZERO,
            1,
        );
        Self { swarm, manifest }
    }

    /// Delivers `msg` from the peer on `link`.
    fn hear(&mut self, now: Instant, link: u64, msg: &Message<'_>) {
        let mut frame = Vec::new();
        wire::encode(msg, &mut frame).expect("valid message");
        for body in common::frames(vec![Bytes::from(frame)]) {
            self.swarm.handle_frame(now, LinkId(link), body);
        }
    }

    /// Connects a peer on `link` and has it handshake and ask to download.
    fn link_peer(&mut self, now: Instant, link: u64) {
        self.swarm.handle_connected(now, LinkId(link));
        let hs = Handshake {
            peer_id: PeerId::from_bytes([link as u8 + 10; 32]),
            swarm: Some(self.manifest.id()),
            listen_port: None,
        };
        self.hear(now, link, &Message::Handshake(hs));
        self.hear(now, link, &Message::Interested);
    }

    /// Asks for the whole of piece `piece` (one block) on `link`.
    fn request(&mut self, now: Instant, link: u64, piece: u32) {
        let len = self.manifest.layout().piece_len(piece).expect("in range") as u32;
        self.request_block(now, link, piece, 0, len);
    }

    /// Asks for `len` bytes of piece `piece` from `offset` on `link`.
    fn request_block(&mut self, now: Instant, link: u64, piece: u32, offset: u32, len: u32) {
        let r = BlockRef { piece, offset, len };
        self.hear(now, link, &Message::Request(r));
    }

    /// Reads pieces as asked, and returns the messages sent to each link since last time:
    /// (link, Have piece) for Haves, (link, -1 - piece) for Rejects, (link, 1000 + piece)
    /// for blocks.
    fn drain(&mut self, now: Instant) -> Vec<(u64, i64)> {
        let data = DATA.with(Clone::clone);
        let mut out = Vec::new();
        loop {
            let mut moved = false;
            while let Some(action) = self.swarm.poll_action() {
                moved = true;
                if let Action::ReadPiece { piece } = action {
                    let r = self.manifest.layout().piece_range(piece).expect("in range");
                    let bytes = Bytes::copy_from_slice(&data[r.start as usize..r.end as usize]);
                    self.swarm.handle_piece_read(now, piece, Some(bytes));
                }
            }
            while let Some((link, segments)) = self.swarm.poll_transmit() {
                moved = true;
                for body in common::frames(segments) {
                    match wire::decode(&body) {
                        Ok(Message::Have { piece }) => out.push((link.0, i64::from(piece))),
                        Ok(Message::Reject(r)) => out.push((link.0, -1 - i64::from(r.piece))),
                        Ok(Message::Block { piece, .. }) => {
                            out.push((link.0, 1000 + i64::from(piece)));
                        }
                        _ => {}
                    }
                }
            }
            while self.swarm.poll_event().is_some() {}
            if !moved {
                return out;
            }
        }
    }
}

#[test]
fn a_refused_piece_is_offered_again_only_to_a_peer_that_stalled() {
    let (mut seed, t) = Seed::linked(128 * 1024, 3);
    let interval = SwarmConfig::new(PeerId::from_bytes([0; 32])).rechoke_interval;
    // Peer 1 gets piece 0 and says so.
    seed.request(t, 1, 0);
    assert_eq!(seed.drain(t), [(1, 1000)]);
    seed.hear(t, 1, &Message::Have { piece: 0 });
    // Peers 2 and 3 are refused it: peer 1 can spread it.
    seed.request(t, 2, 0);
    seed.request(t, 3, 0);
    assert_eq!(seed.drain(t), [(2, -1), (3, -1)]);

    // Before the rechoke, peer 2 gets another piece elsewhere; peer 3 gets nothing.
    seed.hear(t, 2, &Message::Have { piece: 5 });
    let t = t + interval;
    seed.swarm.handle_timeout(t);
    assert_eq!(
        seed.drain(t),
        [(3, 0)],
        "offered again to the stalled peer only"
    );
    // Peer 3 asks again and is served.
    seed.request(t, 3, 0);
    assert_eq!(seed.drain(t), [(3, 1000)]);

    // Peer 2's refusal waits: at the next rechoke, having got nothing since, it is offered
    // the piece too.
    let t = t + interval;
    seed.swarm.handle_timeout(t);
    assert_eq!(seed.drain(t), [(2, 0)]);
}

#[test]
fn a_refusal_is_forgotten_once_the_peer_got_the_piece_elsewhere() {
    let (mut seed, t) = Seed::linked(128 * 1024, 2);
    let interval = SwarmConfig::new(PeerId::from_bytes([0; 32])).rechoke_interval;
    seed.request(t, 1, 0);
    assert_eq!(seed.drain(t), [(1, 1000)]);
    seed.hear(t, 1, &Message::Have { piece: 0 });
    seed.request(t, 2, 0);
    assert_eq!(seed.drain(t), [(2, -1)]);
    // Peer 2 gets the piece from peer 1.
    seed.hear(t, 2, &Message::Have { piece: 0 });
    // Neither rechoke offers it again, stalled or not: peer 2 holds it.
    let mut t = t;
    for _ in 0..2 {
        t = t + interval;
        seed.swarm.handle_timeout(t);
        assert_eq!(seed.drain(t), []);
    }
}

#[test]
fn a_piece_on_its_way_to_one_peer_is_refused_to_others_until_the_stall_timeout() {
    // Pieces of 16 KiB in blocks of 4 KiB.
    let (mut seed, t) = Seed::linked(4096, 3);
    let stall = SwarmConfig::new(PeerId::from_bytes([0; 32])).stall_timeout;
    // Peer 1 gets the first block of piece 0: its first copy is on its way.
    seed.request_block(t, 1, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(1, 1000)]);
    // Peer 2 is refused piece 0, every block it asks for at once, while peer 1 gets the
    // rest of it.
    seed.request_block(t, 2, 0, 0, 4096);
    seed.request_block(t, 2, 0, 4096, 4096);
    seed.request_block(t, 1, 0, 4096, 4096);
    assert_eq!(seed.drain(t), [(2, -1), (2, -1), (1, 1000)]);
    // Peer 1 has all of it but has not said so yet: still refused to others.
    seed.request_block(t, 1, 0, 8192, 4096);
    seed.request_block(t, 1, 0, 12288, 4096);
    seed.request_block(t, 3, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(1, 1000), (1, 1000), (3, -1)]);
    // Peer 1 never says it holds the piece (it crashed, say): after the stall timeout the
    // piece is served again, and its first copy now goes to peer 3.
    let t = t + stall;
    seed.request_block(t, 3, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(3, 1000)]);
    seed.request_block(t, 2, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(2, -1)]);
}

#[test]
fn a_piece_whose_first_copy_went_to_a_closed_link_is_served_at_once() {
    let (mut seed, t) = Seed::linked(4096, 3);
    seed.request_block(t, 1, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(1, 1000)]);
    seed.request_block(t, 2, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(2, -1)]);
    // Peer 1 goes away before it said it holds the piece: no one spreads it, so the next
    // asker gets it without waiting for the stall timeout.
    seed.swarm.handle_disconnected(t, LinkId(1));
    seed.request_block(t, 3, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(3, 1000)]);
}

#[test]
fn a_peer_partway_through_a_piece_gets_the_rest_of_it() {
    let (mut seed, t) = Seed::linked(4096, 2);
    let stall = SwarmConfig::new(PeerId::from_bytes([0; 32])).stall_timeout;
    // Peer 1, slow, gets the first block of piece 0.
    seed.request_block(t, 1, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(1, 1000)]);
    // Past the stall timeout, peer 2 takes over the first copy.
    let t = t + stall;
    seed.request_block(t, 2, 0, 0, 4096);
    assert_eq!(seed.drain(t), [(2, 1000)]);
    // Peer 1's next block is not refused: it is partway through the piece.
    seed.request_block(t, 1, 0, 4096, 4096);
    assert_eq!(seed.drain(t), [(1, 1000)]);
}
