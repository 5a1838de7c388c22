//! The swarm recovers from peers that cannot serve what they announced.

mod common;

use std::collections::VecDeque;

use common::{exchange, pair};
use pollen_core::{
    Instant, PeerId,
    swarm::{Stored, SwarmConfig},
};

#[test]
fn a_piece_the_seed_lost_is_not_requested_from_it_again_and_again() {
    let now = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    let (mut seed, mut down, pieces) = pair(cfg, now);
    // The seed's storage lost piece 3: it rejects requests for it. Without another source the
    // downloader must stop asking (exchange panics on a request loop) and get the rest.
    let mut stored = VecDeque::new();
    loop {
        exchange(&mut seed, &mut down, now, &mut stored, |piece| piece != 3);
        if stored.is_empty() {
            break;
        }
        while let Some(p) = stored.pop_front() {
            down.handle_piece_stored(now, p, Stored::Written);
        }
    }
    let have = down.have();
    assert!(!have.contains(3) && !down.is_complete());
    assert_eq!(have.count(), pieces - 1, "every other piece arrived");
}
