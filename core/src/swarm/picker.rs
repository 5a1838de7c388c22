//! Piece selection: a few random pieces first, then rarest first, then end-game duplicates.

use alloc::{vec, vec::Vec};

use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::Bitfield;

/// Per-piece counters the picker decides from.
#[derive(Debug)]
pub(crate) struct Picker {
    /// How many connected peers hold each piece.
    availability: Vec<u32>,
    /// How many links are downloading each piece.
    downloading: Vec<u8>,
    /// Pieces no link is downloading (same bit layout as every [`Bitfield`]).
    idle: Bitfield,
    /// Pieces verified and handed to storage, not yet confirmed.
    storing: Bitfield,
}

impl Picker {
    pub(crate) fn new(pieces: u32) -> Self {
        Self {
            availability: vec![0; pieces as usize],
            downloading: vec![0; pieces as usize],
            idle: Bitfield::full(pieces),
            storing: Bitfield::new(pieces),
        }
    }

    /// How many connected peers hold `piece`.
    pub(crate) fn availability(&self, piece: u32) -> u32 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    pub(crate) fn peer_has(&mut self, piece: u32) {
        self.availability[piece as usize] += 1;
    }

    /// One peer no longer holds `piece` (it rejected our request for it).
    pub(crate) fn peer_lost(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_sub(1);
        }
    }

    pub(crate) fn peer_gone(&mut self, remote: &Bitfield) {
        for piece in remote.iter() {
            self.availability[piece as usize] -= 1;
        }
    }

    pub(crate) fn start(&mut self, piece: u32) {
        self.downloading[piece as usize] += 1;
        self.idle.remove(piece);
    }

    pub(crate) fn stop(&mut self, piece: u32) {
        self.downloading[piece as usize] -= 1;
        if self.downloading[piece as usize] == 0 {
            self.idle.insert(piece);
        }
    }

    pub(crate) fn downloading(&self, piece: u32) -> u8 {
        self.downloading[piece as usize]
    }

    /// Marks a piece as handed to checking and storage (or no longer); returns whether that
    /// changed anything.
    pub(crate) fn set_storing(&mut self, piece: u32, storing: bool) -> bool {
        if storing {
            self.storing.insert(piece)
        } else {
            self.storing.remove(piece)
        }
    }

    /// Chooses a new piece to download from a peer holding `remote`.
    ///
    /// `busy_here` says whether this link already downloads a piece (it is never given the same
    /// piece twice). Returns `None` when the peer has nothing we can use.
    ///
    /// Candidates are found a word (64 pieces) at a time from the bitfields, so a peer with
    /// nothing new costs a pass over `pieces / 64` words, not a test per piece.
    pub(crate) fn pick(
        &self,
        have: &Bitfield,
        remote: &Bitfield,
        rng: &mut Xoshiro256PlusPlus,
        random_first: u32,
        endgame_duplicates: u8,
        busy_here: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let pieces = have.len();
        if pieces == 0 {
            return None;
        }
        // Scan from a random start so ties spread across peers.
        let start = (rng.next_u64() % u64::from(pieces)) as u32;
        let (h, r, st, idle) = (
            have.as_bytes(),
            remote.as_bytes(),
            self.storing.as_bytes(),
            self.idle.as_bytes(),
        );
        let wanted = |k: usize| word(r, k) & !word(h, k) & !word(st, k);
        let fresh = |k: usize| wanted(k) & word(idle, k);
        let chosen = if have.count() < random_first {
            let mut first = None;
            scan(start, pieces, fresh, |p| {
                first = Some(p);
                false
            });
            first
        } else {
            // The first of the rarest. A piece only this peer holds cannot be beaten, so the
            // scan stops there (early in a swarm most pieces are such).
            let mut best: Option<(u32, u32)> = None;
            scan(start, pieces, fresh, |p| {
                let a = self.availability[p as usize];
                if best.is_none_or(|(_, b)| a < b) {
                    best = Some((p, a));
                }
                a > 1
            });
            best.map(|(p, _)| p)
        };
        chosen.or_else(|| {
            // End-game: everything we still lack is being downloaded (not only what this
            // peer has: a link whose pieces are all on other links is simply idle while
            // others are not; duplicating them there wasted a sixth of a symmetric swarm's
            // bytes); help with the piece fewest links are on.
            let untouched = (0..pieces.div_ceil(64) as usize)
                .any(|k| !word(h, k) & !word(st, k) & word(idle, k) & valid(k, pieces) != 0);
            if untouched {
                return None;
            }
            let mut best: Option<(u32, u8)> = None;
            scan(start, pieces, wanted, |p| {
                let d = self.downloading(p);
                if d < endgame_duplicates && !busy_here(p) && best.is_none_or(|(_, b)| d < b) {
                    best = Some((p, d));
                }
                true
            });
            best.map(|(p, _)| p)
        })
    }

    /// Whether a peer holding `remote` has any piece we still want.
    pub(crate) fn wants_from(&self, have: &Bitfield, remote: &Bitfield) -> bool {
        let (h, r, st) = (have.as_bytes(), remote.as_bytes(), self.storing.as_bytes());
        (0..r.len().min(h.len()).min(st.len())).any(|k| r[k] & !h[k] & !st[k] != 0)
    }
}

/// The bits of word `k` that stand for pieces below `pieces`.
fn valid(k: usize, pieces: u32) -> u64 {
    let first = k as u64 * 64;
    let n = u64::from(pieces).saturating_sub(first).min(64);
    if n == 64 { u64::MAX } else { !(u64::MAX >> n) }
}

/// Word `k` of a bitfield's bytes: pieces `64 k..64 k + 64`, the first in the most
/// significant bit (bytes past the end read as zero).
fn word(bytes: &[u8], k: usize) -> u64 {
    let at = k * 8;
    match bytes.get(at..at + 8) {
        Some(w) => u64::from_be_bytes(w.try_into().unwrap_or([0; 8])),
        None => {
            let mut w = [0; 8];
            let tail = bytes.get(at..).unwrap_or(&[]);
            w[..tail.len()].copy_from_slice(tail);
            u64::from_be_bytes(w)
        }
    }
}

/// Calls `f` with every piece below `pieces` whose bit is set in `mask` (a word of candidate
/// bits per 64 pieces, as [`word`] reads them), from `start` up, then from 0 to `start`,
/// until `f` returns false.
fn scan(start: u32, pieces: u32, mask: impl Fn(usize) -> u64, mut f: impl FnMut(u32) -> bool) {
    for (lo, hi) in [(start, pieces), (0, start.min(pieces))] {
        let mut p = lo;
        while p < hi {
            let base = p / 64 * 64;
            // The candidates from `p` to the end of its word.
            let bits = mask((p / 64) as usize) & (u64::MAX >> (p % 64));
            if bits == 0 {
                p = base + 64;
                continue;
            }
            let q = base + bits.leading_zeros();
            if q >= hi {
                break;
            }
            if !f(q) {
                return;
            }
            p = q + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_visits_set_bits_from_the_start_wrapping_around() {
        // Bits 1, 9, 10 and 17 of 20 pieces.
        let bytes = [0b0100_0000u8, 0b0110_0000, 0b0100_0000];
        let mut seen = Vec::new();
        scan(
            10,
            20,
            |k| word(&bytes, k),
            |p| {
                seen.push(p);
                true
            },
        );
        assert_eq!(seen, [10, 17, 1, 9]);
        let mut first = Vec::new();
        scan(
            0,
            20,
            |k| word(&bytes, k),
            |p| {
                first.push(p);
                false
            },
        );
        assert_eq!(first, [1]);
    }

    #[test]
    fn end_game_waits_until_every_missing_piece_is_being_downloaded() {
        use rand_core::SeedableRng;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut picker = Picker::new(70);
        let have = Bitfield::new(70);
        // This peer holds pieces 0 and 1 only, both being downloaded from other links;
        // piece 69 (which others hold) nobody has started.
        let mut remote = Bitfield::new(70);
        remote.insert(0);
        remote.insert(1);
        picker.start(0);
        picker.start(1);
        let pick =
            |p: &Picker, rng: &mut Xoshiro256PlusPlus| p.pick(&have, &remote, rng, 0, 2, |_| false);
        assert_eq!(
            pick(&picker, &mut rng),
            None,
            "no duplicate while 69 and others wait"
        );
        // Once every missing piece is being downloaded, this link helps with one of them.
        for p in 2..70 {
            picker.start(p);
        }
        assert!(matches!(pick(&picker, &mut rng), Some(0 | 1)));
    }

    #[test]
    fn scan_never_passes_the_piece_count() {
        let mut seen = Vec::new();
        scan(
            3,
            5,
            |_| u64::MAX,
            |p| {
                seen.push(p);
                true
            },
        );
        assert_eq!(seen, [3, 4, 0, 1, 2]);
    }

    proptest::proptest! {
        #[test]
        fn scan_visits_what_a_test_per_piece_visits(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            start in 0u32..400,
            stop_after in 0usize..50,
            cut in 0u32..8,
        ) {
            // A piece count that may end inside the last byte.
            let pieces = ((bytes.len() * 8) as u32).saturating_sub(cut);
            let start = start.min(pieces);
            let bit = |p: u32| bytes[(p / 8) as usize] & (0x80 >> (p % 8)) != 0;
            let expected: Vec<u32> = (start..pieces)
                .chain(0..start)
                .filter(|&p| bit(p))
                .take(stop_after + 1)
                .collect();
            let mut seen = Vec::new();
            scan(start, pieces, |k| word(&bytes, k), |p| {
                seen.push(p);
                seen.len() <= stop_after
            });
            proptest::prop_assert_eq!(seen, expected);
        }
    }
}
