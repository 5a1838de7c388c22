//! A new link's pipeline grows by a block per block received until its first rate sample:
//! requests double every round trip instead of idling at the minimum.

mod common;

use common::pair::{DOWN, Pair, SEED, config, pieces};
use pollen_core::wire::{self, Message};

#[test]
fn requests_double_each_round_trip_before_the_first_rate_sample() {
    // The clock never moves, so no rate sample is ever taken.
    let cfg = config(2);
    let (min, max) = (cfg.min_pipeline, cfg.max_pipeline);
    let pieces = pieces();
    let mut p = Pair::new(cfg);

    let mut per_round = Vec::new();
    for _ in 0..1000 {
        if p.down().is_complete() {
            break;
        }
        // One round trip: the downloader's requests, the seed's reads, its blocks, the
        // downloader's checks and stores.
        let requests = p
            .flush(DOWN)
            .iter()
            .filter(|(_, body)| matches!(wire::decode(body), Ok(Message::Request(_))))
            .count();
        if requests > 0 {
            per_round.push(requests);
        }
        p.act(SEED);
        p.flush(SEED);
        p.act(DOWN);
    }
    assert!(p.down().is_complete(), "the download finishes");
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
