//! Uploading: serving requests from the piece cache, choking and unchoking (the upload slots
//! and their rotation at each rechoke), and the blocks held back by a send window.

use alloc::{collections::VecDeque, vec::Vec};

use bytes::Bytes;
use rand_core::Rng;

use super::{
    Action, DisconnectReason, LinkId, Swarm,
    link::{HeldBlock, Link},
    spread,
};
use crate::{
    Instant, PieceData,
    wire::{self, BlockRef, Message},
};

impl Swarm {
    /// The peer became interested in our pieces or lost interest.
    pub(super) fn on_interest(&mut self, now: Instant, link: LinkId, interested: bool) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.peer_interested = interested;
        if interested {
            if !l.we_unchoked_peer && self.unchoked_count() < self.slots() {
                self.set_choke(now, link, false);
            }
        } else if l.we_unchoked_peer {
            self.set_choke(now, link, true);
            self.unchoke_waiting(now);
        }
    }

    /// A peer asks for a block: queue it to be served, or reject it.
    pub(super) fn on_request(&mut self, link: LinkId, r: BlockRef) {
        let Some(piece_len) = self.layout.piece_len(r.piece) else {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        };
        if u64::from(r.offset) + u64::from(r.len) > piece_len {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.we_unchoked_peer
            || !self.have.contains(r.piece)
            || l.queued.len() + l.held.len() >= self.cfg.max_queued_requests
        {
            self.send(link, &Message::Reject(r));
            return;
        }
        // A peer partway through a piece we began serving it gets the rest. A refusal that
        // cannot be remembered would never be offered again: serve instead.
        let started = l.started.contains(&r.piece);
        if !started && self.spread_refuses(link, r.piece) {
            self.send(link, &Message::Reject(r));
            return;
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !started && self.cfg.spread_first {
            spread::remember_started(l, r.piece);
        }
        l.queued.push_back(r);
        self.note_first_copy(link, r.piece);
        if self.is_cached(r.piece) {
            // Other links' requests for a cached piece were served when they came.
            self.serve_queued_on(link, r.piece);
        } else if self.reading.insert(r.piece) {
            self.actions.push_back(Action::ReadPiece { piece: r.piece });
        }
    }

    /// How many links we unchoked.
    fn unchoked_count(&self) -> usize {
        debug_assert_eq!(
            self.unchoked,
            self.links.values().filter(|l| l.we_unchoked_peer).count()
        );
        self.unchoked
    }

    /// Chokes or unchokes `link`, telling the peer if that changes anything.
    fn set_choke(&mut self, now: Instant, link: LinkId, choke: bool) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.we_unchoked_peer != choke {
            return;
        }
        l.we_unchoked_peer = !choke;
        l.choke_changed_at = now;
        if choke {
            self.unchoked -= 1;
        } else {
            self.unchoked += 1;
        }
        if choke {
            // A choke discards the peer's queued requests (and blocks not handed out yet); it
            // asks again after an unchoke.
            l.queued.clear();
            l.held.clear();
            self.send(link, &Message::Choke);
        } else {
            self.send(link, &Message::Unchoke);
        }
    }

    /// Fills free upload slots with the neediest interested peers ([`Swarm::neediest`]).
    pub(super) fn unchoke_waiting(&mut self, now: Instant) {
        while self.unchoked_count() < self.slots() {
            let Some(next) = self.neediest(now) else {
                return;
            };
            self.set_choke(now, next, false);
        }
    }

    /// Rotates one slot: the peer unchoked longest yields to the peer waiting longest.
    pub(super) fn rechoke(&mut self, now: Instant) {
        self.readvertise_refused();
        // The next peer is chosen before the oldest is choked, so the slot goes to someone
        // else.
        if self.unchoked_count() >= self.slots()
            && let Some(next) = self.neediest(now)
            && let Some(oldest) = self.longest(|l| l.we_unchoked_peer)
        {
            self.set_choke(now, oldest, true);
            self.set_choke(now, next, false);
        }
        self.unchoke_waiting(now);
    }

    /// The interested, choked, ready link to unchoke next: one that has waited two rechoke
    /// intervals or more, then the peer holding the fewest pieces (ties: waiting longest,
    /// then random). A free upload slot goes to the peer furthest behind, so slow peers are
    /// not left to the last, and nobody waits for ever behind peers that claim to hold less.
    fn neediest(&mut self, now: Instant) -> Option<LinkId> {
        let patience = self.cfg.rechoke_interval * 2;
        let key = |l: &Link| {
            (
                now.saturating_since(l.choke_changed_at) < patience,
                l.remote_have.count(),
                l.choke_changed_at,
            )
        };
        self.least(|l| (l.peer_interested && !l.we_unchoked_peer).then(|| key(l)))
    }

    /// The ready link matching `pred` whose choke state changed longest ago (ties: random).
    fn longest(&mut self, pred: impl Fn(&Link) -> bool) -> Option<LinkId> {
        self.least(|l| pred(l).then_some(l.choke_changed_at))
    }

    /// The ready link with the least `key` (`None`: not a candidate); ties: random.
    fn least<K: Ord>(&mut self, key: impl Fn(&Link) -> Option<K>) -> Option<LinkId> {
        let candidates: Vec<(LinkId, K)> = self
            .links
            .iter()
            .filter(|(_, l)| l.ready())
            .filter_map(|(&id, l)| key(l).map(|k| (id, k)))
            .collect();
        let best = candidates.iter().map(|c| &c.1).min()?;
        let tied: Vec<LinkId> = candidates
            .iter()
            .filter(|c| &c.1 == best)
            .map(|c| c.0)
            .collect();
        let pick = (self.rng.next_u64() % tied.len() as u64) as usize;
        tied.get(pick).copied()
    }

    /// Whether `piece` is in the piece cache.
    fn is_cached(&self, piece: u32) -> bool {
        self.cache.iter().any(|(p, _)| *p == piece)
    }

    /// The cached bytes of `piece`.
    fn cached(&self, piece: u32) -> Option<PieceData> {
        self.cache
            .iter()
            .find(|(p, _)| *p == piece)
            .map(|(_, d)| d.clone())
    }

    /// Puts a verified piece in the cache, evicting the least recently used beyond `piece_cache`.
    pub(super) fn cache_piece(&mut self, piece: u32, data: PieceData) {
        self.cache.retain(|(p, _)| *p != piece);
        self.cache.push_back((piece, data));
        while self.cache.len() > self.cfg.piece_cache.max(1) {
            self.cache.pop_front();
        }
    }

    /// Sends every queued request for `piece` from the cache.
    /// Serves every link's queued requests for `piece`, once it is cached.
    pub(super) fn serve_queued(&mut self, piece: u32) {
        let waiting: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.queued.iter().any(|r| r.piece == piece))
            .map(|(&id, _)| id)
            .collect();
        for link in waiting {
            self.serve_queued_on(link, piece);
        }
    }

    /// Serves one link's queued requests for `piece`, in the order they came.
    fn serve_queued_on(&mut self, link: LinkId, piece: u32) {
        let Some(data) = self.cached(piece) else {
            return;
        };
        if !self.have.contains(piece) {
            return;
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let mut serve = Vec::new();
        l.queued.retain(|r| {
            let mine = r.piece == piece;
            if mine {
                serve.push(*r);
            }
            !mine
        });
        for r in serve {
            let Some(parts) = data.slice(r.offset as usize, r.len as usize) else {
                continue;
            };
            let mut header = Vec::with_capacity(24);
            if wire::encode_block_header(r.piece, r.offset, r.len as usize, &mut header).is_err() {
                continue;
            }
            // The block's bytes go out as slices of the cached piece: no copy.
            if self.cfg.send_window.is_some() {
                let Some(l) = self.links.get_mut(&link) else {
                    break;
                };
                let len = (header.len() + r.len as usize) as u64;
                let mut frame = Vec::with_capacity(parts.len() + 1);
                frame.push(Bytes::from(header));
                frame.extend(parts);
                if l.held.is_empty() {
                    self.ready_links.push_back(link);
                }
                l.held.push_back(HeldBlock {
                    block: r,
                    frame,
                    len,
                });
                continue;
            }
            let Some(out) = self.outbox(link) else {
                break;
            };
            out.push_bytes(&header);
            for part in parts {
                out.push_shared(part);
            }
            self.count_served(link, r);
        }
    }

    /// Upload slots to use: `upload_slots`, or with a `slot_rate` and an `upload_capacity`
    /// as many as give each slot that rate (at least two).
    fn slots(&self) -> usize {
        let most = self.cfg.upload_slots.max(1);
        match (self.cfg.slot_rate, self.cfg.upload_capacity) {
            (Some(per_slot), Some(capacity)) if per_slot > 0 => {
                usize::try_from(capacity / per_slot)
                    .unwrap_or(usize::MAX)
                    .clamp(2.min(most), most)
            }
            _ => most,
        }
    }

    /// Counts a block as uploaded once it is handed to the driver.
    pub(super) fn count_served(&mut self, link: LinkId, r: BlockRef) {
        if let Some(l) = self.links.get_mut(&link) {
            l.uploaded += u64::from(r.len);
        }
        self.spread.count_served(r.piece, r.len);
        self.uploaded += u64::from(r.len);
    }

    /// Rejects a link's queued requests (for one piece, or all).
    pub(super) fn reject_queued(&mut self, link: LinkId, piece: Option<u32>) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let (reject, keep): (VecDeque<BlockRef>, VecDeque<BlockRef>) = l
            .queued
            .drain(..)
            .partition(|r| piece.is_none_or(|p| r.piece == p));
        l.queued = keep;
        for r in reject {
            self.send(link, &Message::Reject(r));
        }
    }
}
