//! `spread_first`: a seed sends each piece (and the manifest) to few peers and refuses the
//! rest while other peers can pass it on; it remembers the first copy of each piece, the
//! refusals, and advertises refused pieces again at the next rechoke.

use alloc::{collections::BTreeSet, vec, vec::Vec};

use super::{LinkId, Swarm, link::Link};
use crate::{Instant, wire::Message};

/// Pieces per link whose serving began remembered (`Link::started`): more than a peer
/// downloads at once.
const MAX_STARTED: usize = 256;

/// Most refused (link, piece) pairs remembered (beyond them, requests are served).
const MAX_REFUSED: usize = 1 << 16;

/// Copies of the manifest a spreading seed sends before it refuses new askers, so peers pass
/// it on instead (at 32 bytes a piece, a copy to each of thousands of peers would cost the
/// origin a good part of the artifact again).
const MANIFEST_FIRST_COPIES: u32 = 8;

/// What `spread_first` remembers of the pieces and manifest copies sent and refused.
#[derive(Debug)]
pub(super) struct SpreadState {
    /// Payload bytes sent of each piece (empty unless `spread_first` is on).
    served: Vec<u64>,
    /// For each piece not sent whole yet, the link its first copy goes to and when it was
    /// asked for (empty unless `spread_first` is on).
    first_copy: Vec<Option<(LinkId, Instant)>>,
    /// Pieces refused to links, advertised again at the next rechoke.
    refused: BTreeSet<(LinkId, u32)>,
    /// Pieces advertised again at the last rechoke: a link asking for one of them once more
    /// found no other source, and is served.
    readvertised: BTreeSet<(LinkId, u32)>,
    /// Piece hashes of the manifest we sent.
    manifest_hashes_sent: u64,
}

impl SpreadState {
    /// Nothing sent or refused yet, for `pieces` pieces (`on`: whether `spread_first` is).
    pub(super) fn new(on: bool, pieces: u32) -> Self {
        Self {
            served: if on {
                vec![0; pieces as usize]
            } else {
                Vec::new()
            },
            first_copy: if on {
                vec![None; pieces as usize]
            } else {
                Vec::new()
            },
            refused: BTreeSet::new(),
            readvertised: BTreeSet::new(),
            manifest_hashes_sent: 0,
        }
    }

    /// Counts `len` payload bytes of `piece` handed to the driver.
    pub(super) fn count_served(&mut self, piece: u32, len: u32) {
        if let Some(sent) = self.served.get_mut(piece as usize) {
            *sent += u64::from(len);
        }
    }

    /// Counts `count` piece hashes of the manifest sent.
    pub(super) fn count_manifest_sent(&mut self, count: u32) {
        self.manifest_hashes_sent += u64::from(count);
    }
}

/// Remembers that serving `piece` to `l` began (its peer gets the rest), forgetting the oldest
/// beyond `MAX_STARTED`.
pub(super) fn remember_started(l: &mut Link, piece: u32) {
    if l.started.len() >= MAX_STARTED {
        l.started.pop_front();
    }
    l.started.push_back(piece);
}

impl Swarm {
    /// Whether `spread_first` is on and enough links are ready for it.
    fn spreading(&self) -> bool {
        self.cfg.spread_first
            && self.links.len() - self.handshakes.len() >= self.cfg.spread_first_min_links
    }

    /// Whether `spread_first` refuses `piece` to `link`: it went out whole at least once and
    /// another linked peer holds it (the requester does not: it asks for it), or its first
    /// copy went to another link, still open and asked for less than `stall_timeout` ago,
    /// whose peer has not said it holds it yet (it will spread it; several peers asking at
    /// once for the rarest pieces would otherwise each get a copy).
    fn spread_elsewhere(&self, link: LinkId, piece: u32) -> bool {
        if !self.spreading() {
            return false;
        }
        let (Some(&sent), Some(len)) = (
            self.spread.served.get(piece as usize),
            self.layout.piece_len(piece),
        ) else {
            return false;
        };
        if sent >= len && self.picker.availability(piece) > 0 {
            return true;
        }
        self.live_first_copy(piece).is_some_and(|to| to != link)
    }

    /// The link `piece`'s first copy goes to, while that link is open and the copy was asked
    /// for less than `stall_timeout` ago.
    fn live_first_copy(&self, piece: u32) -> Option<LinkId> {
        self.spread
            .first_copy
            .get(piece as usize)
            .copied()
            .flatten()
            .filter(|&(to, at)| {
                self.now < at + self.cfg.stall_timeout && self.links.contains_key(&to)
            })
            .map(|(to, _)| to)
    }

    /// Whether `spread_first` refuses `link` `piece` (not if it was advertised to it again at
    /// the last rechoke); a refusal is remembered, and none is made beyond `MAX_REFUSED`.
    pub(super) fn spread_refuses(&mut self, link: LinkId, piece: u32) -> bool {
        if !self.spread.readvertised.contains(&(link, piece))
            && self.spread.refused.len() < MAX_REFUSED
            && self.spread_elsewhere(link, piece)
        {
            self.spread.refused.insert((link, piece));
            return true;
        }
        false
    }

    /// Makes `link` the taker of `piece`'s first copy, unless that copy went to another link
    /// still live (a no-op unless `spread_first` is on).
    pub(super) fn note_first_copy(&mut self, link: LinkId, piece: u32) {
        let take_first = self
            .spread
            .first_copy
            .get(piece as usize)
            .is_some_and(|first| {
                first.is_none_or(|(to, _)| to != link && self.live_first_copy(piece).is_none())
            });
        if take_first {
            self.spread.first_copy[piece as usize] = Some((link, self.now));
        }
    }

    /// At a rechoke: advertises again the pieces refused to peers that got no piece since the
    /// last one, and notes what every peer holds for the next.
    pub(super) fn readvertise_refused(&mut self) {
        // Pieces refused under `spread_first` to a peer that got no piece since the last
        // rechoke become requestable again, and a link that asks for one again before the
        // next rechoke is served: its other sources (which may not be ours) did not give it
        // the piece. A peer still getting pieces elsewhere is left to its other sources (its
        // refusals wait), or the origin would send each piece again to many.
        let links = &self.links;
        let stalled = |link: &LinkId| {
            links
                .get(link)
                .is_some_and(|l| l.remote_have.count() == l.held_at_rechoke)
        };
        // Refusals of pieces the peer got since are done with.
        self.spread.refused.retain(|(link, piece)| {
            links
                .get(link)
                .is_some_and(|l| !l.remote_have.contains(*piece))
        });
        let (again, wait): (BTreeSet<_>, BTreeSet<_>) = core::mem::take(&mut self.spread.refused)
            .into_iter()
            .partition(|(link, _)| stalled(link));
        self.spread.refused = wait;
        self.spread.readvertised = again;
        for l in self.links.values_mut() {
            l.held_at_rechoke = l.remote_have.count();
        }
        let again: Vec<(LinkId, u32)> = self.spread.readvertised.iter().copied().collect();
        for (link, piece) in again {
            self.send(link, &Message::Have { piece });
        }
    }

    /// Whether a spreading seed refuses the manifest (of `pieces` pieces) to new askers: it sent
    /// its first copies.
    pub(super) fn refuses_manifest(&self, pieces: u64) -> bool {
        // Counted in hashes sent, so that asking for a few uses up no more than that.
        self.spreading()
            && self.spread.manifest_hashes_sent >= u64::from(MANIFEST_FIRST_COPIES) * pieces
    }
}
