//! The swarm recovers from peers that cannot serve what they announced.

mod common;

use common::pair::{DOWN, Pair, Reads, SEED, Stores, config, pieces};

#[test]
fn a_piece_the_seed_lost_is_not_requested_from_it_again_and_again() {
    let mut p = Pair::new(config(2));
    // The seed's storage lost piece 3: it rejects requests for it. Without another source the
    // downloader must stop asking (driving panics on a request loop) and get the rest.
    p.node(SEED).reads = Reads::Answer(|piece| piece != 3);
    p.node(DOWN).stores = Stores::Hold;
    loop {
        p.drive();
        if p.nodes[DOWN].held_stores.is_empty() {
            break;
        }
        while p.complete_store(DOWN).is_some() {}
    }
    let down = &p.nodes[DOWN].swarm;
    let have = down.have();
    assert!(!have.contains(3) && !down.is_complete());
    assert_eq!(have.count(), pieces() - 1, "every other piece arrived");
}
