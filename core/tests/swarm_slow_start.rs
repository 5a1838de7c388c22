//! A new link's pipeline grows by a block per block received until its first rate sample:
//! requests double every round trip instead of idling at the minimum.

mod common;

use bytes::Bytes;
use common::{DATA, PIECE, pair};
use pollen_core::{
    Instant, PeerId,
    swarm::{Action, LinkId, Stored, Swarm, SwarmConfig},
    wire::{self, Message},
};

/// Delivers every frame `src` transmits to `dst`; returns how many were block requests.
fn deliver(src: &mut Swarm, dst: &mut Swarm, now: Instant) -> usize {
    let mut requests = 0;
    while let Some((_, segments)) = src.poll_transmit() {
        for body in common::frames(segments) {
            if matches!(wire::decode(&body), Ok(Message::Request(_))) {
                requests += 1;
            }
            dst.handle_frame(now, LinkId(1), body);
        }
    }
    requests
}

#[test]
fn requests_double_each_round_trip_before_the_first_rate_sample() {
    // The clock never moves, so no rate sample is ever taken.
    let now = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    let (min, max) = (cfg.min_pipeline, cfg.max_pipeline);
    let (mut seed, mut down, pieces) = pair(cfg, now);

    let mut per_round = Vec::new();
    for _ in 0..1000 {
        if down.is_complete() {
            break;
        }
        let requests = deliver(&mut down, &mut seed, now);
        if requests > 0 {
            per_round.push(requests);
        }
        while let Some(action) = seed.poll_action() {
            if let Action::ReadPiece { piece } = action {
                let start = piece as usize * PIECE;
                let data =
                    DATA.with(|d| Bytes::copy_from_slice(&d[start..(start + PIECE).min(d.len())]));
                seed.handle_piece_read(now, piece, Some(data));
            }
        }
        deliver(&mut seed, &mut down, now);
        while let Some(action) = down.poll_action() {
            match action {
                Action::CheckPiece(check) => down.handle_piece_checked(now, check.run()),
                Action::StorePiece { piece, .. } => {
                    down.handle_piece_stored(now, piece, Stored::Written)
                }
                _ => {}
            }
        }
    }
    assert!(down.is_complete(), "the download finishes");
    // One block per piece here (16 KiB pieces), so the first rounds ask for min, 2 min, ...
    assert!(
        pieces as usize >= 4 * min + min,
        "the artifact outlasts three doublings"
    );
    assert_eq!(
        per_round[..3],
        [min, 2 * min, 4 * min],
        "requests per round trip: {per_round:?}"
    );
    assert!(per_round.iter().all(|&n| n <= max), "{per_round:?}");
}
