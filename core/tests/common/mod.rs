//! A two-swarm harness for tests that drive the state machines by hand.
#![allow(dead_code, unreachable_pub)]

pub mod endpoints;

use std::collections::VecDeque;

use bytes::Bytes;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, LinkId, Swarm, SwarmConfig},
    wire,
};

/// Piece size of [`DATA`] (it is small enough for 16 KiB pieces).
pub const PIECE: usize = 16 * 1024;

thread_local! {
    /// The artifact both swarms share.
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

/// Most rounds of frame exchange before calling it a livelock.
pub const MAX_ROUNDS: usize = 10_000;

/// Moves every transmitted frame between a seed and a downloader (link 1 on both) until
/// both are quiet; the downloader's store requests go to `stored`. `serve(piece)` says whether
/// the seed can read a piece from its storage. Panics after [`MAX_ROUNDS`] (a livelock).
pub fn exchange(
    seed: &mut Swarm,
    down: &mut Swarm,
    now: Instant,
    stored: &mut VecDeque<u32>,
    serve: impl Fn(u32) -> bool,
) {
    for _ in 0..MAX_ROUNDS {
        let mut moved = false;
        for (from_seed, link) in [(true, LinkId(1)), (false, LinkId(1))] {
            let (src, dst) = if from_seed {
                (&mut *seed, &mut *down)
            } else {
                (&mut *down, &mut *seed)
            };
            while let Some((_, segments)) = src.poll_transmit() {
                moved = true;
                for body in frames(segments) {
                    dst.handle_frame(now, link, body);
                }
            }
        }
        while let Some(action) = seed.poll_action() {
            moved = true;
            if let Action::ReadPiece { piece } = action {
                let data = serve(piece).then(|| {
                    DATA.with(|d| {
                        let start = piece as usize * PIECE;
                        Bytes::copy_from_slice(&d[start..(start + PIECE).min(d.len())])
                    })
                });
                seed.handle_piece_read(now, piece, data);
            }
        }
        while let Some(action) = down.poll_action() {
            moved = true;
            match action {
                Action::CheckPiece(check) => down.handle_piece_checked(now, check.run()),
                // Storage is "slow": the test decides when stores complete.
                Action::StorePiece { piece, .. } => stored.push_back(piece),
                _ => {}
            }
        }
        while seed.poll_event().is_some() || down.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
    panic!("the swarms never went quiet: a request loop");
}

/// A seed holding [`DATA`] and a downloader (configured by `cfg`) linked as link 1 on both;
/// returns them and the piece count.
pub fn pair(cfg: SwarmConfig, now: Instant) -> (Swarm, Swarm, u32) {
    let data = DATA.with(Clone::clone);
    let manifest = Manifest::of(&data).expect("small");
    let pieces = manifest.layout().piece_count();
    let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
    let mut seed = Swarm::with_manifest(
        SwarmConfig::new(PeerId::from_bytes([1; 32])),
        manifest,
        Bitfield::full(pieces),
        now,
        1,
    );
    let mut down = Swarm::new(cfg, &ticket, now, 2);
    seed.handle_connected(now, LinkId(1));
    down.handle_connected(now, LinkId(1));
    (seed, down, pieces)
}
