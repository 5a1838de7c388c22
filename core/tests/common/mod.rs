//! Harnesses for tests that drive the state machines by hand: [`pair`] for swarms,
//! [`endpoints`] for whole endpoints.
#![allow(dead_code, unreachable_pub)]

pub mod endpoints;
pub mod pair;

use bytes::Bytes;
use pollen_core::wire;

/// Piece size of [`DATA`] (it is small enough for 16 KiB pieces).
pub const PIECE: usize = 16 * 1024;

thread_local! {
    /// The artifact the swarms share.
    pub static DATA: Vec<u8> = (0..40 * PIECE + 77).map(|i| (i * 13 % 251) as u8).collect();
}

/// The frame bodies of what one `poll_transmit` gave (whole frames, as segments).
pub fn frames(segments: Vec<Bytes>) -> Vec<Bytes> {
    let bytes = Bytes::from(segments.concat());
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(Some((body, used))) = wire::split_frame(&bytes[at..]) {
        out.push(bytes.slice_ref(body));
        at += used;
    }
    out
}

/// Most rounds of frame exchange (or timeouts) before calling it a livelock.
pub const MAX_ROUNDS: usize = 10_000;
