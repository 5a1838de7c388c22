//! A downloader whose storage falls behind stops starting pieces, so memory stays bounded.

mod common;

use std::collections::VecDeque;

use common::{PIECE, exchange, pair};
use pollen_core::{
    Instant, PeerId,
    swarm::{Stored, SwarmConfig},
};

#[test]
fn slow_storage_stops_new_pieces_until_stores_complete() {
    let now = Instant::ZERO;
    let mut cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    cfg.max_pending_bytes = 4 * PIECE as u64;
    let (mut seed, mut down, pieces) = pair(cfg.clone(), now);

    let mut stored = VecDeque::new();
    exchange(&mut seed, &mut down, now, &mut stored, |_| true);
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
        down.handle_piece_stored(now, piece, Stored::Written);
        exchange(&mut seed, &mut down, now, &mut stored, |_| true);
        rounds += 1;
        assert!(rounds <= 10 * pieces as usize, "no progress");
    }
    assert!(down.is_complete());
}
