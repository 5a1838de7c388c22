//! Piece verification the driver may run on any thread.
//!
//! Hashing a piece is the swarm's heaviest work. Instead of doing it inside `handle_frame`,
//! the swarm hands the driver a [`PieceCheck`]; the driver calls [`PieceCheck::run`] wherever it
//! likes (a worker thread, say) and returns the [`CheckedPiece`] to
//! [`super::Swarm::handle_piece_checked`]. Only `run` can make a `CheckedPiece`, so a driver can
//! move the work but cannot skip it. (The `sim` feature adds `simulated`, for the simulator's
//! byte-less payloads; nothing that moves real bytes enables it.)

use super::LinkId;
use crate::{PeerId, PieceData, PieceExpectation};

/// The outcome the simulator gives [`PieceCheck::simulated`] in place of hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes match the manifest's entry: the piece goes to storage.
    Matched,
    /// They do not: the piece is dropped and its sender banned.
    Corrupt,
}

/// A downloaded piece waiting to be verified.
#[derive(Debug, Clone)]
pub struct PieceCheck {
    pub(super) link: LinkId,
    pub(super) peer: Option<PeerId>,
    pub(super) expectation: PieceExpectation,
    pub(super) data: PieceData,
}

impl PieceCheck {
    /// The piece.
    pub fn piece(&self) -> u32 {
        self.expectation.index()
    }

    /// The link the piece came from.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// Skips the hash and takes `verdict` as its outcome: for the simulator only, whose
    /// payloads are lengths, not bytes. Exists only with the `sim` feature, which a node never
    /// enables.
    #[cfg(feature = "sim")]
    pub fn simulated(self, verdict: Verdict) -> CheckedPiece {
        self.outcome(verdict == Verdict::Matched)
    }

    /// Hashes the piece against its manifest entry.
    pub fn run(self) -> CheckedPiece {
        let parts = self.data.segments().iter().map(|s| &s[..]);
        let ok = self.expectation.verify_parts(parts).is_ok();
        self.outcome(ok)
    }

    fn outcome(self, ok: bool) -> CheckedPiece {
        CheckedPiece {
            link: self.link,
            peer: self.peer,
            piece: self.expectation.index(),
            data: self.data,
            ok,
        }
    }
}

/// The outcome of a [`PieceCheck`]; only [`PieceCheck::run`] makes one (and, with the `sim`
/// feature, the simulator's `PieceCheck::simulated`).
#[derive(Debug, Clone)]
pub struct CheckedPiece {
    pub(super) link: LinkId,
    pub(super) peer: Option<PeerId>,
    pub(super) piece: u32,
    pub(super) data: PieceData,
    pub(super) ok: bool,
}

impl CheckedPiece {
    /// The piece.
    pub fn piece(&self) -> u32 {
        self.piece
    }

    /// Whether the bytes matched.
    pub fn ok(&self) -> bool {
        self.ok
    }
}
