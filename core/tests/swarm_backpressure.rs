//! A downloader whose storage falls behind stops starting pieces, so memory stays bounded.

use std::collections::VecDeque;

use bytes::Bytes;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, LinkId, Swarm, SwarmConfig},
    wire,
};

const PIECE: usize = 16 * 1024;

/// Moves every transmitted frame from one swarm to the other until both are quiet; returns
/// the pieces the downloader asked to store.
fn exchange(seed: &mut Swarm, down: &mut Swarm, now: Instant, stored: &mut VecDeque<u32>) {
    loop {
        let mut moved = false;
        for (from_seed, link) in [(true, LinkId(1)), (false, LinkId(1))] {
            let (src, dst) = if from_seed {
                (&mut *seed, &mut *down)
            } else {
                (&mut *down, &mut *seed)
            };
            while let Some((_, segments)) = src.poll_transmit() {
                moved = true;
                let bytes = Bytes::from(segments.concat());
                let mut at = 0;
                while let Ok(Some((body, used))) = wire::split_frame(&bytes[at..]) {
                    dst.handle_frame(now, link, bytes.slice_ref(body));
                    at += used;
                }
            }
        }
        while let Some(action) = seed.poll_action() {
            moved = true;
            if let Action::ReadPiece { piece } = action {
                let data = DATA.with(|d| {
                    let start = piece as usize * PIECE;
                    Bytes::copy_from_slice(&d[start..(start + PIECE).min(d.len())])
                });
                seed.handle_piece_read(now, piece, Some(data));
            }
        }
        while let Some(action) = down.poll_action() {
            moved = true;
            match action {
                Action::CheckPiece(check) => down.handle_piece_checked(now, check.run()),
                // Storage is "slow": the test decides when stores complete.
                Action::StorePiece { piece, .. } => stored.push_back(piece),
                _ => {}
            }
        }
        while seed.poll_event().is_some() || down.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
}

thread_local! {
    static DATA: Vec<u8> = (0..40 * PIECE + 77).map(|i| (i * 13 % 251) as u8).collect();
}

#[test]
fn slow_storage_stops_new_pieces_until_stores_complete() {
    let data = DATA.with(Clone::clone);
    let manifest = Manifest::of(&data).expect("small");
    let pieces = manifest.layout().piece_count();
    let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
    let now = Instant::ZERO;
    let mut seed = Swarm::with_manifest(
        SwarmConfig::new(PeerId::from_bytes([1; 32])),
        manifest,
        Bitfield::full(pieces),
        now,
        1,
    );
    let mut cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    cfg.max_pending_bytes = 4 * PIECE as u64;
    let mut down = Swarm::new(cfg.clone(), &ticket, now, 2);
    seed.handle_connected(now, LinkId(1));
    down.handle_connected(now, LinkId(1));

    let mut stored = VecDeque::new();
    exchange(&mut seed, &mut down, now, &mut stored);
    // The limit, plus the pieces already in flight when it was reached (one link's pipeline).
    let bound = 4 + cfg.max_pipeline;
    assert!(
        stored.len() >= 4,
        "it downloads up to the limit: {}",
        stored.len()
    );
    assert!(stored.len() < pieces as usize, "it stopped before the end");
    assert!(
        stored.len() <= bound,
        "{} pieces pending, bound {bound}",
        stored.len()
    );

    // Completing the stores lets the download go on, to the end.
    let mut rounds = 0;
    while let Some(piece) = stored.pop_front() {
        down.handle_piece_stored(now, piece, true);
        exchange(&mut seed, &mut down, now, &mut stored);
        rounds += 1;
        assert!(rounds <= 10 * pieces as usize, "no progress");
    }
    assert!(down.is_complete());
}
