//! The send window holds block data back until the driver reports bytes sent, and the slot
//! rate fits the upload slots to the upload rate.

mod common;

use common::{
    PIECE,
    pair::{Reads, SEED, Star, config, pieces},
};
use pollen_core::swarm::LinkId;

#[test]
fn blocks_wait_for_the_window_and_go_once_bytes_are_sent() {
    let mut cfg = config(1);
    cfg.send_window = Some(2 * PIECE as u64);
    let mut s = Star::new(cfg, 1);

    // Nothing reported sent: the seed stops once its window is full.
    s.drive();
    let handed = s.nodes[SEED].handed[&LinkId(1)];
    let have = s.down(1).have().count();
    assert!(have >= 1, "the first blocks go out");
    assert!(have <= 3, "at most a window of blocks, not {have}");
    assert!(handed <= 3 * PIECE as u64 + 4096, "{handed} bytes handed");
    assert!(
        s.seed().stats().uploaded <= 3 * PIECE as u64,
        "held blocks are not counted as uploaded"
    );

    // Reporting what was handed out opens the window again, to the end.
    s.seed().handle_sent(LinkId(1), handed);
    s.node(SEED).report_sent = true;
    s.drive();
    assert!(s.down(1).is_complete());
    assert_eq!(s.down(1).have().count(), pieces());
}

#[test]
fn without_a_window_everything_is_handed_out_at_once() {
    let mut s = Star::new(config(1), 1);
    s.drive();
    assert!(s.down(1).is_complete());
}

#[test]
fn a_slot_rate_gives_a_slow_uplink_fewer_slots() {
    let count_unchoked = |slot_rate: Option<u64>, capacity: Option<u64>| {
        let mut cfg = config(1);
        cfg.slot_rate = slot_rate;
        cfg.upload_capacity = capacity;
        let mut s = Star::new(cfg, 4);
        // Handshakes and interest only: the seed's reads are never answered, so every
        // downloader stays interested.
        s.node(SEED).reads = Reads::Hold;
        s.drive();
        s.seed()
            .stats()
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
