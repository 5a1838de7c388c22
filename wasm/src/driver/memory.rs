//! Artifacts held in the page's memory: their bytes, who sent each piece, and the swarm's
//! storage actions carried out on them at once.

use bytes::Bytes;
use pollen_core::{
    ContentId, Instant, PeerId, Ticket,
    endpoint::Endpoint,
    swarm::{Action, Stored},
};

use super::{Driver, PieceMap};

/// One artifact in memory.
pub(super) struct Artifact {
    pub(super) ticket: Ticket,
    /// The artifact's bytes; pieces not yet held are zeros.
    pub(super) data: Vec<u8>,
    /// Per piece, who sent it: [`PieceMap::LOCAL`] or an index into `senders` plus
    /// [`PieceMap::FIRST_PEER`]; [`PieceMap::MISSING`] until it is verified.
    pub(super) sources: Vec<u8>,
    pub(super) senders: Vec<PeerId>,
}

impl Artifact {
    /// Notes that `piece` verified, sent by `from`.
    pub(super) fn record_source(&mut self, piece: u32, from: PeerId) {
        let fits = usize::from(PieceMap::OTHER - PieceMap::FIRST_PEER);
        let index = match self.senders.iter().position(|p| *p == from) {
            Some(i) => Some(i),
            None if self.senders.len() < fits => {
                self.senders.push(from);
                Some(self.senders.len() - 1)
            }
            None => None,
        };
        let code = index
            .and_then(|i| u8::try_from(i).ok())
            .map_or(PieceMap::OTHER, |i| i + PieceMap::FIRST_PEER);
        if let Some(s) = self.sources.get_mut(piece as usize) {
            *s = code;
        }
    }
}

impl Driver {
    /// Carries out a storage action in memory; true if a piece was stored.
    pub(super) fn act(&mut self, now: Instant, id: ContentId, action: Action) -> bool {
        let range = |ep: &Endpoint, piece: u32| {
            ep.swarm(&id)
                .and_then(|s| s.manifest())
                .and_then(|m| m.layout().piece_range(piece))
        };
        match action {
            Action::ReadPiece { piece } => {
                let data = range(&self.ep, piece).and_then(|r| {
                    let a = self.artifacts.get(&id)?;
                    a.data
                        .get(r.start as usize..r.end as usize)
                        .map(Bytes::copy_from_slice)
                });
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_read(now, piece, data);
                }
                false
            }
            Action::CheckPiece(check) => {
                let checked = check.run();
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_checked(now, checked);
                }
                false
            }
            Action::StorePiece { piece, data } => {
                let start = range(&self.ep, piece).map(|r| r.start as usize);
                let mut stored = Stored::Failed;
                if let (Some(mut at), Some(a)) = (start, self.artifacts.get_mut(&id)) {
                    stored = Stored::Written;
                    for seg in data.segments() {
                        match a.data.get_mut(at..at + seg.len()) {
                            Some(dst) => dst.copy_from_slice(seg),
                            None => stored = Stored::Failed,
                        }
                        at += seg.len();
                    }
                }
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_stored(now, piece, stored);
                }
                true
            }
            Action::StoreManifest(_) | Action::Disconnect { .. } => false,
        }
    }
}
