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
    /// Pieces verified and handed to storage, not yet confirmed.
    storing: Bitfield,
}

impl Picker {
    pub(crate) fn new(pieces: u32) -> Self {
        Self {
            availability: vec![0; pieces as usize],
            downloading: vec![0; pieces as usize],
            storing: Bitfield::new(pieces),
        }
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
    }

    pub(crate) fn stop(&mut self, piece: u32) {
        self.downloading[piece as usize] -= 1;
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

    /// Whether piece `piece` is wanted: not held and not being stored.
    fn wanted(&self, have: &Bitfield, piece: u32) -> bool {
        !have.contains(piece) && !self.storing.contains(piece)
    }

    /// Chooses a new piece to download from a peer holding `remote`.
    ///
    /// `busy_here` says whether this link already downloads a piece (it is never given the same
    /// piece twice). Returns `None` when the peer has nothing we can use.
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
        let order = (start..pieces).chain(0..start);
        let fresh =
            |p: &u32| remote.contains(*p) && self.wanted(have, *p) && self.downloading(*p) == 0;
        let chosen = if have.count() < random_first {
            order.clone().find(fresh)
        } else {
            order
                .clone()
                .filter(fresh)
                .min_by_key(|&p| self.availability[p as usize])
        };
        chosen.or_else(|| {
            // End-game: everything this peer could give us is already being downloaded; help
            // with the piece fewest links are on.
            order
                .filter(|&p| {
                    remote.contains(p)
                        && self.wanted(have, p)
                        && self.downloading(p) < endgame_duplicates
                        && !busy_here(p)
                })
                .min_by_key(|&p| self.downloading(p))
        })
    }

    /// Whether a peer holding `remote` has any piece we still want.
    pub(crate) fn wants_from(&self, have: &Bitfield, remote: &Bitfield) -> bool {
        remote.iter().any(|p| self.wanted(have, p))
    }
}
