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
                let mut sent = 0;
                for m in messages {
                    assert!(m.len() <= MAX_CHANNEL_MESSAGE);
                    to.handle_message(now, to_link, &m);
                    sent += m.len() as u64;
                    moved = true;
                }
                from.handle_sent(now, link, sent);
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
    let ls = seed
        .open_link(now, ticket.id(), false)
        .expect("the seed holds it");
    let ll = leech
        .open_link(now, ticket.id(), true)
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
    let link = seed.open_link(now, ticket.id(), false).expect("held");
    while seed.poll_output().is_some() {}
    // A length prefix beyond the largest frame.
    seed.handle_message(now, link, &u32::MAX.to_le_bytes());
    let mut closed = false;
    while let Some(out) = seed.poll_output() {
        closed |= out == Output::Close(link);
    }
    assert!(closed);
    assert!(
        seed.open_link(now, pollen_core::ContentId::from_bytes([9; 32]), false)
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

/// Two drivers and the links between them: `pairs[i]` joins `a`'s link to `b`'s.
struct Pages {
    a: Driver,
    b: Driver,
    pairs: Vec<(LinkId, LinkId)>,
    now: Instant,
    /// Artifacts `b` completed.
    completed: usize,
}

impl Pages {
    fn new() -> Self {
        Self {
            a: Driver::new(PeerId::from_bytes([1; 32]), 1),
            b: Driver::new(PeerId::from_bytes([2; 32]), 2),
            pairs: Vec::new(),
            now: Instant::ZERO,
            completed: 0,
        }
    }

    /// Carries every output of both drivers once; true if anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        for from_a in [true, false] {
            let (from, to) = if from_a {
                (&mut self.a, &mut self.b)
            } else {
                (&mut self.b, &mut self.a)
            };
            while let Some(out) = from.poll_output() {
                match out {
                    Output::Send(link, messages) => {
                        moved = true;
                        let peer = self
                            .pairs
                            .iter()
                            .find(|p| if from_a { p.0 == link } else { p.1 == link })
                            .map(|p| if from_a { p.1 } else { p.0 });
                        if let Some(peer) = peer {
                            let mut sent = 0;
                            for m in messages {
                                to.handle_message(self.now, peer, &m);
                                sent += m.len() as u64;
                            }
                            from.handle_sent(self.now, link, sent);
                        }
                    }
                    Output::Close(link) => {
                        moved = true;
                        let pos = self
                            .pairs
                            .iter()
                            .position(|p| if from_a { p.0 == link } else { p.1 == link });
                        if let Some(pos) = pos {
                            let p = self.pairs.remove(pos);
                            to.handle_closed(self.now, if from_a { p.1 } else { p.0 });
                        }
                    }
                    Output::Complete(_) if !from_a => self.completed += 1,
                    _ => {}
                }
            }
        }
        moved
    }

    fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
        for _ in 0..200_000 {
            if done(self) {
                return;
            }
            if !self.step() {
                self.now = self.now + Duration::from_millis(10);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
    }
}

#[test]
fn two_pages_sharing_thirty_artifacts_use_one_link() {
    let mut p = Pages::new();
    let tickets: Vec<_> = (0..30)
        .map(|i| {
            let t =
                p.a.share(p.now, bytes(100_000 + i * 1000, i as u64 + 10), None)
                    .expect("shares");
            p.b.fetch(p.now, &t).expect("fetches");
            t
        })
        .collect();
    let la = p.a.open_link(p.now, tickets[0].id(), false).expect("held");
    let lb = p.b.open_link(p.now, tickets[0].id(), true).expect("wanted");
    p.pairs.push((la, lb));
    p.run_until(|p| p.b.link_to(&p.a.peer_id()).is_some());
    // The other 29 go on the link the first opened, as the page's glue does for a peer it
    // already has a link to.
    let link = p.b.link_to(&p.a.peer_id()).expect("linked");
    for t in &tickets[1..] {
        assert!(p.b.share_link(p.now, link, t.id()));
    }
    p.run_until(|p| p.completed == tickets.len());
    assert_eq!(p.completed, tickets.len());
    for t in &tickets {
        assert!(p.b.is_complete(&t.id()));
        assert_eq!(p.b.progress(&t.id()).expect("known").peers, 1);
    }
    assert_eq!((p.a.link_count(), p.b.link_count()), (1, 1));
    assert_eq!(p.pairs.len(), 1);
}

#[test]
fn a_second_channel_to_the_same_page_folds_into_the_first() {
    let mut p = Pages::new();
    let t1 = p.a.share(p.now, bytes(300_000, 1), None).expect("shares");
    let t2 = p.a.share(p.now, bytes(300_000, 2), None).expect("shares");
    p.b.fetch(p.now, &t1).expect("fetches");
    p.b.fetch(p.now, &t2).expect("fetches");
    // Two data channels, one per swarm, as two offers would make.
    for t in [&t1, &t2] {
        let la = p.a.open_link(p.now, t.id(), false).expect("held");
        let lb = p.b.open_link(p.now, t.id(), true).expect("wanted");
        p.pairs.push((la, lb));
    }
    p.run_until(|p| p.completed == 2);
    assert!(p.b.is_complete(&t1.id()) && p.b.is_complete(&t2.id()));
    assert_eq!((p.a.link_count(), p.b.link_count()), (1, 1));
    assert_eq!(p.pairs.len(), 1);
}
