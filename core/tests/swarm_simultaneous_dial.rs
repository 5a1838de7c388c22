//! Two peers that dial each other at once end up with two links; both ends must keep the
//! same one. Each keeping the link whose handshake came first could close both.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::DATA;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, DisconnectReason, LinkId, Swarm, SwarmConfig},
    wire::{self, Handshake, Message},
};

/// A's and B's transmits so far, by link.
fn transmits(swarm: &mut Swarm) -> BTreeMap<u64, Vec<Bytes>> {
    let mut out: BTreeMap<u64, Vec<Bytes>> = BTreeMap::new();
    while let Some((link, segments)) = swarm.poll_transmit() {
        out.entry(link.0)
            .or_default()
            .extend(common::frames(segments));
    }
    out
}

/// The links a swarm closed as duplicates.
fn closed(swarm: &mut Swarm) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(action) = swarm.poll_action() {
        if let Action::Disconnect { link, reason } = action {
            assert_eq!(reason, DisconnectReason::Duplicate);
            out.push(link.0);
        }
    }
    out
}

/// Seed A (the smaller id) and downloader B, each with link 1 opened by A's dial and link 2
/// by B's, the handshakes delivered so that each end hears first on the link the other
/// dialed. Returns the links each closed.
fn simultaneous(dialed: bool) -> (Vec<u64>, Vec<u64>) {
    let now = Instant::ZERO;
    let data = DATA.with(Clone::clone);
    let manifest = Manifest::of(&data).expect("small");
    let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
    let pieces = manifest.layout().piece_count();
    let (a_id, b_id) = (PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32]));
    let mut a = Swarm::with_manifest(
        SwarmConfig::new(a_id),
        manifest,
        Bitfield::full(pieces),
        now,
        1,
    );
    let mut b = Swarm::new(SwarmConfig::new(b_id), &ticket, now, 2);
    if dialed {
        a.handle_dialed(now, LinkId(1));
        b.handle_dialed(now, LinkId(2));
    } else {
        a.handle_connected(now, LinkId(1));
        b.handle_connected(now, LinkId(2));
    }
    a.handle_connected(now, LinkId(2));
    b.handle_connected(now, LinkId(1));
    let from_a = transmits(&mut a);
    let from_b = transmits(&mut b);
    // A hears B on link 2 (B's dial) first; B hears A on link 1 (A's dial) first.
    for link in [2, 1] {
        for body in from_b.get(&link).into_iter().flatten() {
            a.handle_frame(now, LinkId(link), body.clone());
        }
    }
    for link in [1, 2] {
        for body in from_a.get(&link).into_iter().flatten() {
            b.handle_frame(now, LinkId(link), body.clone());
        }
    }
    (closed(&mut a), closed(&mut b))
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
    let t = Instant::ZERO;
    let data = DATA.with(Clone::clone);
    let manifest = Manifest::of(&data).expect("small");
    let pieces = manifest.layout().piece_count();
    let cfg = SwarmConfig::new(PeerId::from_bytes([1; 32]));
    let late = t + cfg.handshake_timeout;
    let mut a = Swarm::with_manifest(cfg, manifest.clone(), Bitfield::full(pieces), t, 1);
    let mut hello = Vec::new();
    let hs = Handshake {
        peer_id: PeerId::from_bytes([2; 32]),
        swarm: Some(manifest.id()),
        listen_port: None,
    };
    wire::encode(&Message::Handshake(hs), &mut hello).expect("valid");
    let hello = &hello[wire::LEN_PREFIX..];
    a.handle_connected(t, LinkId(2));
    a.handle_frame(t, LinkId(2), Bytes::copy_from_slice(hello));
    assert_eq!(closed(&mut a), Vec::<u64>::new());
    a.handle_dialed(late, LinkId(1));
    a.handle_frame(late, LinkId(1), Bytes::copy_from_slice(hello));
    assert_eq!(closed(&mut a), [1]);
}
