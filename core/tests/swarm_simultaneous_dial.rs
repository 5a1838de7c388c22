//! Two peers that dial each other at once end up with two links; both ends must keep the
//! same one. Each keeping the link whose handshake came first could close both.

mod common;

use common::pair::{Mesh, config, downloader_swarm, seed_swarm};
use pollen_core::{
    Instant,
    swarm::{DisconnectReason, LinkId},
};

/// Seed A and downloader B in a [`Mesh`].
const A: usize = 0;
const B: usize = 1;

/// The links node `i` closed as duplicates since last time.
fn closed(m: &mut Mesh, i: usize) -> Vec<u64> {
    std::mem::take(&mut m.node(i).disconnects)
        .into_iter()
        .map(|(_, link, reason)| {
            assert_eq!(reason, DisconnectReason::Duplicate);
            link.0
        })
        .collect()
}

/// Seed A (the smaller id) and downloader B, each with link 1 opened by A's dial and link 2
/// by B's, the handshakes delivered so that each end hears first on the link the other
/// dialed. Returns the links each closed.
fn simultaneous(dialed: bool) -> (Vec<u64>, Vec<u64>) {
    let now = Instant::ZERO;
    let mut m = Mesh::new(vec![
        seed_swarm(config(1)),
        downloader_swarm(config(2), now, 2),
    ]);
    m.pipe(A, 1, B, 1);
    m.pipe(A, 2, B, 2);
    if dialed {
        m.swarm(A).handle_dialed(now, LinkId(1));
        m.swarm(B).handle_dialed(now, LinkId(2));
    } else {
        m.swarm(A).handle_connected(now, LinkId(1));
        m.swarm(B).handle_connected(now, LinkId(2));
    }
    m.swarm(A).handle_connected(now, LinkId(2));
    m.swarm(B).handle_connected(now, LinkId(1));
    // One step moves what each queued, in the order queued: A hears B on link 2 (B's dial)
    // first; B hears A on link 1 (A's dial) first.
    m.step();
    (closed(&mut m, A), closed(&mut m, B))
}

#[test]
fn peers_that_dial_each_other_keep_the_link_the_smaller_id_dialed() {
    // Both close link 2 (B's dial), so link 1 (A's) survives at both ends.
    assert_eq!(simultaneous(true), (vec![2], vec![2]));
}

#[test]
fn without_dial_directions_each_end_keeps_its_first_link() {
    // The old rule, for drivers that do not say which links they dialed: here it closes
    // both links, which is why the node says.
    assert_eq!(simultaneous(false), (vec![1], vec![2]));
}

#[test]
fn a_link_older_than_the_handshake_timeout_is_not_replaced() {
    // A (the smaller id) has had a link from B for a while; a link it dials to B, or one
    // from someone claiming B's id, does not take its place.
    let cfg = config(1);
    let late = Instant::ZERO + cfg.handshake_timeout;
    let mut m = Mesh::new(vec![seed_swarm(cfg)]);
    m.greet(A, 2, 2);
    m.act(A);
    assert_eq!(closed(&mut m, A), Vec::<u64>::new());
    m.now = late;
    m.swarm(A).handle_dialed(late, LinkId(1));
    m.hear(A, 1, &common::pair::handshake(2));
    m.act(A);
    assert_eq!(closed(&mut m, A), [1]);
}
