//! A link whose peer never says hello is dropped after the handshake timeout, and only such
//! links keep a handshake deadline in `poll_timeout`.

mod common;

use std::collections::VecDeque;

use common::{exchange, pair};
use pollen_core::{
    Instant, PeerId,
    swarm::{Action, DisconnectReason, LinkId, SwarmConfig},
};

#[test]
fn a_silent_link_is_dropped_at_its_handshake_deadline_and_only_then() {
    let now = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    let timeout = cfg.handshake_timeout;
    let (mut seed, _down, _) = pair(cfg, now);
    // The seed's link 1 never hears back: its deadline is the handshake timeout (the next
    // rechoke may come first, so look past it).
    while seed.poll_transmit().is_some() {}
    let deadline = now + timeout;
    let mut t = now;
    let mut dropped = None;
    while t <= deadline {
        let Some(next) = seed.poll_timeout() else {
            break;
        };
        assert!(
            next <= deadline,
            "the handshake deadline is reported: {next:?}"
        );
        t = next;
        seed.handle_timeout(t);
        while let Some(action) = seed.poll_action() {
            if let Action::Disconnect { link, reason } = action {
                dropped = Some((t, link, reason));
            }
        }
        if dropped.is_some() {
            break;
        }
    }
    assert_eq!(
        dropped,
        Some((deadline, LinkId(1), DisconnectReason::HandshakeTimeout))
    );
    seed.handle_disconnected(deadline, LinkId(1));
}

#[test]
fn links_past_their_handshake_are_never_dropped_for_it() {
    let now = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    let timeout = cfg.handshake_timeout;
    let (mut seed, mut down, _) = pair(cfg, now);
    let mut stored = VecDeque::new();
    exchange(&mut seed, &mut down, now, &mut stored, |_| true);
    for swarm in [&mut seed, &mut down] {
        let later = now + timeout + timeout;
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
