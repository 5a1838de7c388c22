//! A downloader whose storage falls behind stops starting pieces, so memory stays bounded.

mod common;

use common::{
    PIECE,
    pair::{DOWN, Pair, Stores, config, pieces},
};

#[test]
fn slow_storage_stops_new_pieces_until_stores_complete() {
    let mut cfg = config(2);
    cfg.max_pending_bytes = 4 * PIECE as u64;
    // The limit, plus the pieces already in flight when it was reached (one link's pipeline).
    let bound = 4 + cfg.max_pipeline;
    let pieces = pieces();
    let mut p = Pair::new(cfg);
    p.node(DOWN).stores = Stores::Hold;

    p.drive();
    let stored = p.nodes[DOWN].held_stores.len();
    assert!(stored >= 4, "it downloads up to the limit: {stored}");
    assert!(stored < pieces as usize, "it stopped before the end");
    assert!(stored <= bound, "{stored} pieces pending, bound {bound}");

    // Completing the stores lets the download go on, to the end.
    let mut rounds = 0;
    while p.complete_store(DOWN).is_some() {
        p.drive();
        rounds += 1;
        assert!(rounds <= 10 * pieces as usize, "no progress");
    }
    assert!(p.down().is_complete());
}
