//! A link that stops sending blocks is given up on after `stall_timeout`, well before
//! `request_timeout`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::pair;
use pollen_core::{
    Instant, PeerId,
    swarm::{LinkId, Swarm, SwarmConfig},
    wire::{self, Kind},
};

/// Moves frames from `src` to `dst` (link 1 on both); returns the kinds moved.
fn carry(src: &mut Swarm, dst: &mut Swarm, now: Instant) -> Vec<u8> {
    let mut kinds = Vec::new();
    while let Some((_, segments)) = src.poll_transmit() {
        let bytes = Bytes::from(segments.concat());
        let mut at = 0;
        while let Ok(Some((body, used))) = wire::split_frame(&bytes[at..]) {
            kinds.extend(body.get(1).copied());
            dst.handle_frame(now, LinkId(1), bytes.slice_ref(body));
            at += used;
        }
    }
    kinds
}

#[test]
fn requests_to_a_silent_peer_are_cancelled_after_the_stall_timeout() {
    let now = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    let stall = cfg.stall_timeout;
    assert!(stall < cfg.request_timeout);
    let (mut seed, mut down, _) = pair(cfg, now);
    // Handshakes, bitfield, interest, unchoke and requests; the seed never reads a piece, so
    // no block ever comes back.
    let mut requested = false;
    for _ in 0..10 {
        carry(&mut seed, &mut down, now);
        requested |= carry(&mut down, &mut seed, now).contains(&(Kind::Request as u8));
    }
    assert!(requested, "the downloader asked for blocks");
    assert_eq!(down.poll_timeout(), Some(now + stall));

    // Just before the stall timeout nothing is cancelled; at it, every request is.
    down.handle_timeout(now + (stall - Duration::from_millis(1)));
    assert!(!carry(&mut down, &mut seed, now).contains(&(Kind::Cancel as u8)));
    down.handle_timeout(now + stall);
    assert!(
        carry(&mut down, &mut seed, now + stall).contains(&(Kind::Cancel as u8)),
        "the stalled requests are cancelled"
    );
}
