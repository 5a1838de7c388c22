//! A link whose peer never says hello is dropped after the handshake timeout, and only such
//! links keep a handshake deadline in `poll_timeout`.

mod common;

use common::pair::{DOWN, Mesh, Pair, SEED, Stores, config, seed_swarm};
use pollen_core::{
    Instant,
    swarm::{Action, DisconnectReason, LinkId},
};

#[test]
fn a_silent_link_is_dropped_at_its_handshake_deadline_and_only_then() {
    let timeout = config(2).handshake_timeout;
    // The seed's link 1 never hears back: its deadline is the handshake timeout (the next
    // rechoke may come first, so look past it).
    let mut m = Mesh::new(vec![seed_swarm(config(1))]);
    m.open(SEED, 1);
    let deadline = Instant::ZERO + timeout;
    m.run_until(|m| {
        assert!(
            m.now <= deadline,
            "the handshake deadline is reported: {:?}",
            m.now
        );
        !m.nodes[SEED].disconnects.is_empty()
    });
    assert_eq!(
        m.nodes[SEED].disconnects.first(),
        Some(&(deadline, LinkId(1), DisconnectReason::HandshakeTimeout))
    );
    m.disconnect(SEED, 1);
}

#[test]
fn links_past_their_handshake_are_never_dropped_for_it() {
    let cfg = config(2);
    let timeout = cfg.handshake_timeout;
    let mut p = Pair::new(cfg);
    p.node(DOWN).stores = Stores::Hold;
    p.drive();
    for i in [SEED, DOWN] {
        let swarm = p.swarm(i);
        let later = Instant::ZERO + timeout + timeout;
        swarm.handle_timeout(later);
        while let Some(action) = swarm.poll_action() {
            assert!(
                !matches!(
                    action,
                    Action::Disconnect {
                        reason: DisconnectReason::HandshakeTimeout,
                        ..
                    }
                ),
                "{action:?}"
            );
        }
    }
}
