//! The send window holds block data back until the driver reports bytes sent, and the slot
//! rate fits the upload slots to the upload rate.

mod common;

use bytes::Bytes;
use common::{DATA, PIECE};
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, LinkId, Stored, Swarm, SwarmConfig},
};

/// A seed configured by `cfg` and `n` downloaders; the seed's link `i + 1` is downloader
/// `i`'s link 1.
fn star(cfg: SwarmConfig, n: usize, now: Instant) -> (Swarm, Vec<Swarm>, u32) {
    let data = DATA.with(Clone::clone);
    let manifest = Manifest::of(&data).expect("small");
    let pieces = manifest.layout().piece_count();
    let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
    let mut seed = Swarm::with_manifest(cfg, manifest, Bitfield::full(pieces), now, 1);
    let downs = (0..n)
        .map(|i| {
            let mut d = Swarm::new(
                SwarmConfig::new(PeerId::from_bytes([10 + i as u8; 32])),
                &ticket,
                now,
                2 + i as u64,
            );
            seed.handle_connected(now, LinkId(i as u64 + 1));
            d.handle_connected(now, LinkId(1));
            d
        })
        .collect();
    (seed, downs, pieces)
}

/// Moves frames between the seed and every downloader until quiet; bytes the seed hands out
/// are counted in `handed` (per link) and reported sent only if `report`. The seed's reads
/// are answered only if `serve`.
fn shuttle(
    seed: &mut Swarm,
    downs: &mut [Swarm],
    now: Instant,
    report: bool,
    serve: bool,
    handed: &mut [u64],
) {
    for _ in 0..common::MAX_ROUNDS {
        let mut moved = false;
        while let Some((link, segments)) = seed.poll_transmit() {
            moved = true;
            let i = (link.0 - 1) as usize;
            let len: u64 = segments.iter().map(|b| b.len() as u64).sum();
            handed[i] += len;
            for body in common::frames(segments) {
                downs[i].handle_frame(now, LinkId(1), body);
            }
            if report {
                seed.handle_sent(link, len);
            }
        }
        for (i, d) in downs.iter_mut().enumerate() {
            while let Some((_, segments)) = d.poll_transmit() {
                moved = true;
                for body in common::frames(segments) {
                    seed.handle_frame(now, LinkId(i as u64 + 1), body);
                }
            }
            while let Some(action) = d.poll_action() {
                moved = true;
                match action {
                    Action::CheckPiece(check) => d.handle_piece_checked(now, check.run()),
                    Action::StorePiece { piece, .. } => {
                        d.handle_piece_stored(now, piece, Stored::Written)
                    }
                    _ => {}
                }
            }
            while d.poll_event().is_some() {}
        }
        while let Some(action) = seed.poll_action() {
            moved = true;
            if let Action::ReadPiece { piece } = action
                && serve
            {
                let data = DATA.with(|d| {
                    let start = piece as usize * PIECE;
                    Bytes::copy_from_slice(&d[start..(start + PIECE).min(d.len())])
                });
                seed.handle_piece_read(now, piece, Some(data));
            }
        }
        while seed.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
    panic!("the swarms never went quiet");
}

#[test]
fn blocks_wait_for_the_window_and_go_once_bytes_are_sent() {
    let now = Instant::ZERO;
    let mut cfg = SwarmConfig::new(PeerId::from_bytes([1; 32]));
    cfg.send_window = Some(2 * PIECE as u64);
    let (mut seed, mut downs, pieces) = star(cfg, 1, now);
    let mut handed = [0u64];

    // Nothing reported sent: the seed stops once its window is full.
    shuttle(&mut seed, &mut downs, now, false, true, &mut handed);
    let have = downs[0].have().count();
    assert!(have >= 1, "the first blocks go out");
    assert!(have <= 3, "at most a window of blocks, not {have}");
    assert!(
        handed[0] <= 3 * PIECE as u64 + 4096,
        "{} bytes handed",
        handed[0]
    );
    assert!(
        seed.stats().uploaded <= 3 * PIECE as u64,
        "held blocks are not counted as uploaded"
    );

    // Reporting what was handed out opens the window again, to the end.
    seed.handle_sent(LinkId(1), handed[0]);
    shuttle(&mut seed, &mut downs, now, true, true, &mut handed);
    assert!(downs[0].is_complete());
    assert_eq!(downs[0].have().count(), pieces);
}

#[test]
fn without_a_window_everything_is_handed_out_at_once() {
    let now = Instant::ZERO;
    let cfg = SwarmConfig::new(PeerId::from_bytes([1; 32]));
    let (mut seed, mut downs, _) = star(cfg, 1, now);
    let mut handed = [0u64];
    shuttle(&mut seed, &mut downs, now, false, true, &mut handed);
    assert!(downs[0].is_complete());
}

#[test]
fn a_slot_rate_gives_a_slow_uplink_fewer_slots() {
    let now = Instant::ZERO;
    let count_unchoked = |slot_rate: Option<u64>, capacity: Option<u64>| {
        let mut cfg = SwarmConfig::new(PeerId::from_bytes([1; 32]));
        cfg.slot_rate = slot_rate;
        cfg.upload_capacity = capacity;
        let (mut seed, mut downs, _) = star(cfg, 4, now);
        // Handshakes and interest only: the seed's reads are never answered, so every
        // downloader stays interested.
        let mut handed = [0u64; 4];
        shuttle(&mut seed, &mut downs, now, false, false, &mut handed);
        seed.stats()
            .links
            .iter()
            .filter(|l| l.unchoked_by_us)
            .count()
    };
    const MB: u64 = 1_000_000;
    // 2.5 MB/s at 1 MB/s a slot: two slots (never fewer than two).
    assert_eq!(count_unchoked(Some(MB), Some(5 * MB / 2)), 2);
    assert_eq!(count_unchoked(Some(MB), Some(MB / 10)), 2);
    // 3 MB/s: three.
    assert_eq!(count_unchoked(Some(MB), Some(3 * MB)), 3);
    // A fast uplink, no capacity or no slot rate: every interested peer fits in the 8 slots.
    assert_eq!(count_unchoked(Some(MB), Some(100 * MB)), 4);
    assert_eq!(count_unchoked(Some(MB), None), 4);
    assert_eq!(count_unchoked(None, Some(MB)), 4);
}
