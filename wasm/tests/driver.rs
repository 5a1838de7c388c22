//! The browser peer's driver, natively: two drivers joined by an in-memory message link
//! exchange a verified artifact, and a link that breaks the framing is closed.

use std::time::Duration;

use pollen_core::{Instant, PeerId, swarm::LinkId};
use pollen_wasm::driver::{Driver, MAX_CHANNEL_MESSAGE, Output, PieceMap};

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Delivers `from`'s outputs on link `from_link` to `to` on `to_link`; returns whether any
/// message moved, and whether `from` asked to close the link.
fn deliver(
    from: &mut Driver,
    from_link: LinkId,
    to: &mut Driver,
    to_link: LinkId,
    now: Instant,
    completed: &mut bool,
) -> (bool, bool) {
    let mut moved = false;
    let mut closed = false;
    while let Some(out) = from.poll_output() {
        match out {
            Output::Send(link, messages) => {
                assert_eq!(link, from_link);
                for m in messages {
                    assert!(m.len() <= MAX_CHANNEL_MESSAGE);
                    to.handle_message(now, to_link, &m);
                    moved = true;
                }
            }
            Output::Close(link) if link == from_link => closed = true,
            Output::Complete(_) => *completed = true,
            _ => {}
        }
    }
    (moved, closed)
}

#[test]
fn a_browser_driver_fetches_a_verified_artifact_from_another() {
    let data = bytes(8 << 20, 7);
    let mut seed = Driver::new(PeerId::from_bytes([1; 32]), 1);
    let mut leech = Driver::new(PeerId::from_bytes([2; 32]), 2);
    let mut now = Instant::ZERO;
    let ticket = seed
        .share(now, data.clone(), Some("data.bin"))
        .expect("shares");
    assert_eq!(ticket.id().as_bytes(), blake3::hash(&data).as_bytes());
    leech.fetch(now, &ticket).expect("fetches");
    let ls = seed.open_link(now, ticket.id()).expect("the seed holds it");
    let ll = leech
        .open_link(now, ticket.id())
        .expect("the leech wants it");
    let mut done = false;
    let mut seed_done = false;
    for _ in 0..100_000 {
        let (a, _) = deliver(&mut seed, ls, &mut leech, ll, now, &mut seed_done);
        let (b, _) = deliver(&mut leech, ll, &mut seed, ls, now, &mut done);
        if done {
            break;
        }
        if !a && !b {
            now = now + Duration::from_millis(10);
            seed.handle_timeout(now);
            leech.handle_timeout(now);
        }
    }
    assert!(done, "the fetch completed");
    let got = leech.bytes(&ticket.id()).expect("complete");
    assert_eq!(got, &data[..]);
    assert_eq!(blake3::hash(got).as_bytes(), ticket.id().as_bytes());
    let progress = leech.progress(&ticket.id()).expect("known");
    assert!(progress.complete);
    assert_eq!(progress.have_bytes, data.len() as u64);
    assert_eq!(progress.peers, 1);
    // Every piece is mapped to the seed, and the seed's own pieces are local.
    let map = leech.piece_map(&ticket.id()).expect("known");
    assert_eq!(map.peers, vec![seed.peer_id()]);
    assert_eq!(map.pieces.len(), progress.pieces as usize);
    assert!(map.pieces.iter().all(|p| *p == PieceMap::FIRST_PEER));
    let seed_map = seed.piece_map(&ticket.id()).expect("held");
    assert!(seed_map.peers.is_empty());
    assert!(seed_map.pieces.iter().all(|p| *p == PieceMap::LOCAL));
    let links = seed.links(&ticket.id());
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].peer, Some(leech.peer_id()));
    assert_eq!(links[0].uploaded, data.len() as u64);
}

#[test]
fn a_link_that_breaks_the_framing_is_closed() {
    let data = bytes(1 << 20, 3);
    let mut seed = Driver::new(PeerId::from_bytes([1; 32]), 1);
    let now = Instant::ZERO;
    let ticket = seed.share(now, data, None).expect("shares");
    let link = seed.open_link(now, ticket.id()).expect("held");
    while seed.poll_output().is_some() {}
    // A length prefix beyond the largest frame.
    seed.handle_message(now, link, &u32::MAX.to_le_bytes());
    let mut closed = false;
    while let Some(out) = seed.poll_output() {
        closed |= out == Output::Close(link);
    }
    assert!(closed);
    assert!(
        seed.open_link(now, pollen_core::ContentId::from_bytes([9; 32]))
            .is_none()
    );
}

#[test]
fn any_file_name_is_fitted_into_a_ticket() {
    use pollen_core::ticket::check_name;
    use pollen_wasm::driver::fit_name;
    assert_eq!(fit_name("report.pdf").as_deref(), Some("report.pdf"));
    assert_eq!(fit_name("a/b\\c\n.txt").as_deref(), Some("a_b_c_.txt"));
    assert_eq!(fit_name("  "), None);
    assert_eq!(fit_name(".."), None);
    let long = format!("{}.tar.gz", "é".repeat(300));
    let fitted = fit_name(&long).expect("fits");
    assert!(fitted.len() <= 255, "{}", fitted.len());
    assert!(fitted.ends_with("….gz"), "{fitted}");
    check_name(&fitted).expect("a valid ticket name");
    // Whatever comes in, what comes out is accepted.
    for name in [
        "x",
        "\u{7f}bad",
        "日本語のファイル名.txt",
        &"a".repeat(1000),
    ] {
        if let Some(n) = fit_name(name) {
            check_name(&n).unwrap_or_else(|e| panic!("{name:?} -> {n:?}: {e}"));
        }
    }
}
