//! A link that stops sending blocks is given up on after `stall_timeout` (plus two blocks'
//! time at its rate), well before `request_timeout`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{DATA, PIECE, pair};
use pollen_core::{
    Instant, PeerId,
    swarm::{Action, LinkId, Stored, Swarm, SwarmConfig},
    wire::Kind,
};

/// Moves frames from `src` to `dst` (link 1 on both); returns the kinds moved.
fn carry(src: &mut Swarm, dst: &mut Swarm, now: Instant) -> Vec<u8> {
    let mut kinds = Vec::new();
    while let Some((_, segments)) = src.poll_transmit() {
        for body in common::frames(segments) {
            kinds.extend(body.get(1).copied());
            dst.handle_frame(now, LinkId(1), body);
        }
    }
    kinds
}

/// Checks and stores what the downloader received.
fn settle(down: &mut Swarm, now: Instant) {
    while let Some(action) = down.poll_action() {
        match action {
            Action::CheckPiece(check) => down.handle_piece_checked(now, check.run()),
            Action::StorePiece { piece, .. } => {
                down.handle_piece_stored(now, piece, Stored::Written)
            }
            _ => {}
        }
    }
}

/// Answers up to `budget` of the seed's pending piece reads at `now`.
fn serve(seed: &mut Swarm, pending: &mut Vec<u32>, budget: usize, now: Instant) {
    while let Some(action) = seed.poll_action() {
        if let Action::ReadPiece { piece } = action {
            pending.push(piece);
        }
    }
    for piece in pending
        .drain(..budget.min(pending.len()))
        .collect::<Vec<_>>()
    {
        let data = DATA.with(|d| {
            let start = piece as usize * PIECE;
            Bytes::copy_from_slice(&d[start..(start + PIECE).min(d.len())])
        });
        seed.handle_piece_read(now, piece, Some(data));
    }
}

#[test]
fn requests_to_a_silent_peer_are_cancelled_after_the_stall_timeout() {
    let t0 = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([2; 32]));
    let (stall, patience) = (cfg.stall_timeout, cfg.request_timeout);
    let (mut seed, mut down, _) = pair(cfg, t0);
    let mut pending = Vec::new();
    // Two blocks at t0 and two 100 ms later, so the link's rate is known; then the seed goes
    // silent (its reads are never answered again).
    for _ in 0..10 {
        carry(&mut seed, &mut down, t0);
        settle(&mut down, t0);
        carry(&mut down, &mut seed, t0);
        let budget = 2usize.saturating_sub(down.have().count() as usize);
        serve(&mut seed, &mut pending, budget, t0);
    }
    let t1 = t0 + Duration::from_millis(100);
    serve(&mut seed, &mut pending, 2, t1);
    for _ in 0..10 {
        carry(&mut seed, &mut down, t1);
        settle(&mut down, t1);
        carry(&mut down, &mut seed, t1);
        serve(&mut seed, &mut pending, 0, t1);
    }
    let got = down.have().count();
    assert!((3..=4).contains(&got), "{got} pieces before the silence");
    assert!(!down.is_complete());

    // The downloader gives up on the link after the stall timeout (plus two blocks' time at
    // its rate), well before the request timeout.
    let due = down.poll_timeout().expect("requests are outstanding");
    assert!(due >= t1 + stall && due < t1 + patience, "{due:?}");
    down.handle_timeout(t1 + (due.saturating_since(t1) - Duration::from_millis(1)));
    assert!(!carry(&mut down, &mut seed, t1).contains(&(Kind::Cancel as u8)));
    down.handle_timeout(due);
    assert!(
        carry(&mut down, &mut seed, due).contains(&(Kind::Cancel as u8)),
        "the stalled requests are cancelled"
    );
}
