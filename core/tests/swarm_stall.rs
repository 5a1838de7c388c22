//! A link that stops sending blocks is given up on after `stall_timeout` (plus two blocks'
//! time at its rate), well before `request_timeout`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::pair::{DOWN, Pair, Reads, SEED, config};
use pollen_core::{Instant, swarm::LinkId, wire::Kind};

/// Whether any of `frames` is a Cancel.
fn cancels(frames: &[(LinkId, Bytes)]) -> bool {
    frames
        .iter()
        .any(|(_, body)| body.get(1) == Some(&(Kind::Cancel as u8)))
}

#[test]
fn requests_to_a_silent_peer_are_cancelled_after_the_stall_timeout() {
    let t0 = Instant::ZERO;
    let cfg = config(2);
    let (stall, patience) = (cfg.stall_timeout, cfg.request_timeout);
    let mut p = Pair::new(cfg);
    // The seed's reads wait until the test answers them.
    p.node(SEED).reads = Reads::Hold;
    // Two blocks at t0 and two 100 ms later, so the link's rate is known; then the seed goes
    // silent (its reads are never answered again).
    for _ in 0..10 {
        p.flush(SEED);
        p.act(DOWN);
        p.flush(DOWN);
        p.act(SEED);
        let budget = 2usize.saturating_sub(p.down().have().count() as usize);
        p.answer_reads(SEED, budget);
    }
    let t1 = t0 + Duration::from_millis(100);
    p.now = t1;
    p.act(SEED);
    p.answer_reads(SEED, 2);
    for _ in 0..10 {
        p.flush(SEED);
        p.act(DOWN);
        p.flush(DOWN);
        p.act(SEED);
    }
    let got = p.down().have().count();
    assert!((3..=4).contains(&got), "{got} pieces before the silence");
    assert!(!p.down().is_complete());

    // The downloader gives up on the link after the stall timeout (plus two blocks' time at
    // its rate), well before the request timeout.
    let due = p.down().poll_timeout().expect("requests are outstanding");
    assert!(due >= t1 + stall && due < t1 + patience, "{due:?}");
    p.down()
        .handle_timeout(t1 + (due.saturating_since(t1) - Duration::from_millis(1)));
    assert!(!cancels(&p.flush(DOWN)));
    p.down().handle_timeout(due);
    p.now = due;
    assert!(
        cancels(&p.flush(DOWN)),
        "the stalled requests are cancelled"
    );
}
