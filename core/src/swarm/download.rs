//! Downloading: what peers hold, picking pieces, keeping each link's request pipeline full,
//! receiving blocks, handing finished pieces to be checked, end-game duplicates, and request
//! timeouts.

use alloc::{vec, vec::Vec};

use bytes::Bytes;

use super::{
    Action, CheckedPiece, DisconnectReason, Event, LinkId, PieceCheck, Swarm,
    link::{Link, Outstanding},
};
use crate::{
    Bitfield, Instant, PieceData,
    wire::{BlockRef, Message},
};

/// A piece being assembled from one link's blocks.
#[derive(Debug)]
pub(super) struct Download {
    /// Length of the piece.
    len: u32,
    /// Per block: not requested, requested, or its bytes (a zero-copy slice of its frame).
    blocks: Vec<BlockState>,
}

/// The state of one block of a [`Download`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum BlockState {
    /// Not requested yet.
    Missing,
    /// Requested, not arrived.
    Requested,
    /// Arrived: its bytes.
    Received(Bytes),
}

/// Request timeouts in a row after which a link is dropped.
const MAX_SNUBS: u8 = 3;

impl Swarm {
    /// A peer told us every piece it holds.
    pub(super) fn on_bitfield(&mut self, now: Instant, link: LinkId, bits: &[u8]) {
        let Ok(remote) = Bitfield::from_bytes(self.layout.piece_count(), bits) else {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        };
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        // Replace whatever we knew: remove the old counts, add the new.
        let old = core::mem::replace(&mut l.remote_have, remote);
        self.picker.peer_gone(&old);
        for piece in self.links[&link].remote_have.iter() {
            self.picker.peer_has(piece);
        }
        self.update_interest(link);
        self.start_manifest_fetch(now);
        self.fill(now, link);
    }

    /// A peer told us it got `piece`.
    pub(super) fn on_have(&mut self, now: Instant, link: LinkId, piece: u32) {
        if piece >= self.layout.piece_count() {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.remote_have.insert(piece) {
            self.picker.peer_has(piece);
            if !self.have.contains(piece) {
                self.set_interested(link, true);
            }
            self.start_manifest_fetch(now);
            self.fill(now, link);
        }
    }

    /// The peer will not serve a block we asked for.
    pub(super) fn on_reject(&mut self, now: Instant, link: LinkId, r: BlockRef) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let before = l.outstanding.len();
        l.outstanding.retain(|o| o.block != r);
        if l.outstanding.len() != before {
            // It answers: a peer that refuses (an origin spreading first) is not idle for now;
            // only blocks and manifest parts prove it serves.
            l.useful_at = now;
            // The peer cannot serve this piece after all: stop counting it there, so we do not
            // ask again at once; a later Have from it counts again. Another link may serve it.
            if l.remote_have.remove(r.piece) {
                self.picker.peer_lost(r.piece);
            }
            self.drop_download(r.piece, link, true);
            self.update_interest(link);
            self.fill_all(now);
        }
        self.refresh_deadline(link);
    }

    /// A block arrived: file it under its piece, which is checked once whole.
    pub(super) fn on_block(
        &mut self,
        now: Instant,
        link: LinkId,
        piece: u32,
        offset: u32,
        data: Bytes,
    ) {
        let block = BlockRef {
            piece,
            offset,
            len: data.len() as u32,
        };
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.downloaded += data.len() as u64;
        l.snubs = 0;
        l.progress_at = now;
        l.rate.record(now, data.len() as u64);
        l.useful_at = now;
        l.answered = true;
        self.last_useful_at = now;
        self.downloaded += data.len() as u64;
        let pos = l.outstanding.iter().position(|o| o.block == block);
        if let Some(pos) = pos {
            l.outstanding.remove(pos);
        }
        self.refresh_deadline(link);
        if pos.is_none() {
            // Not (or no longer) requested, e.g. it crossed our cancel: ignore.
            return;
        }
        let index = (offset / self.block_size) as usize;
        let Some(dl) = self.downloads.get_mut(&(piece, link)) else {
            return;
        };
        dl.blocks[index] = BlockState::Received(data);
        if dl
            .blocks
            .iter()
            .all(|b| matches!(b, BlockState::Received(_)))
        {
            self.finish_piece(now, piece, link);
        }
        self.fill(now, link);
    }

    /// Keeps every link's request pipeline full.
    pub(super) fn fill_all(&mut self, now: Instant) {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            self.fill(now, link);
        }
    }

    /// Keeps the link's request pipeline full.
    pub(super) fn fill(&mut self, now: Instant, link: LinkId) {
        if self.manifest.is_none() {
            return;
        }
        loop {
            let Some(l) = self.links.get(&link) else {
                return;
            };
            if !l.ready() || !l.peer_unchoked_us || l.outstanding.len() >= self.pipeline(l) {
                return;
            }
            if let Some(block) = self.next_block_on(link) {
                self.request(now, link, block);
                continue;
            }
            if self.pending_bytes >= self.cfg.max_pending_bytes {
                // Storage is behind: finish what is in progress, start nothing new.
                return;
            }
            let busy_here = |p: u32| self.downloads.contains_key(&(p, link));
            let remote = &self.links[&link].remote_have;
            let picked = self.picker.pick(
                &self.have,
                remote,
                &mut self.rng,
                self.cfg.random_first_pieces,
                self.cfg.endgame_duplicates,
                busy_here,
            );
            match picked {
                Some(piece) => self.start_download(piece, link),
                None => {
                    if self.links[&link].outstanding.is_empty() {
                        self.update_interest(link);
                    }
                    return;
                }
            }
        }
    }

    /// How many requests to keep outstanding on a link: its rate times the pipeline time.
    ///
    /// Until the link's first rate sample, each block received allows one more request, so
    /// the pipeline doubles every round trip (like TCP's slow start) instead of idling a fast
    /// link at the minimum for the whole first sample window.
    fn pipeline(&self, l: &Link) -> usize {
        let blocks = if l.rate.per_sec == 0 {
            // Only the artifact's last block can be short, so this counts blocks.
            let received = l.downloaded.div_ceil(u64::from(self.block_size.max(1)));
            self.cfg
                .min_pipeline
                .saturating_add(usize::try_from(received).unwrap_or(usize::MAX))
        } else {
            let bytes = l.rate.per_sec as u128 * self.cfg.pipeline_time.as_micros() / 1_000_000;
            usize::try_from(bytes / u128::from(self.block_size)).unwrap_or(usize::MAX)
        };
        blocks.clamp(self.cfg.min_pipeline.max(1), self.cfg.max_pipeline.max(1))
    }

    /// The next unrequested block of a piece this link is already downloading.
    fn next_block_on(&self, link: LinkId) -> Option<BlockRef> {
        self.downloads
            .iter()
            .filter(|((_, l), _)| *l == link)
            .find_map(|(&(piece, _), dl)| {
                let index = dl.blocks.iter().position(|b| *b == BlockState::Missing)?;
                let offset = index as u32 * self.block_size;
                let len = (dl.len - offset).min(self.block_size);
                Some(BlockRef { piece, offset, len })
            })
    }

    /// Starts assembling `piece` from `link`'s blocks.
    fn start_download(&mut self, piece: u32, link: LinkId) {
        // A piece is at most 16 MiB, so its length fits in u32.
        let len = self.layout.piece_len(piece).unwrap_or(0) as u32;
        let blocks = len.div_ceil(self.block_size) as usize;
        self.downloads.insert(
            (piece, link),
            Download {
                len,
                blocks: vec![BlockState::Missing; blocks],
            },
        );
        self.picker.start(piece);
    }

    /// Asks `link` for `block`.
    fn request(&mut self, now: Instant, link: LinkId, block: BlockRef) {
        if let Some(dl) = self.downloads.get_mut(&(block.piece, link)) {
            dl.blocks[(block.offset / self.block_size) as usize] = BlockState::Requested;
        }
        if let Some(l) = self.links.get_mut(&link) {
            if l.outstanding.is_empty() {
                l.progress_at = now;
            }
            l.outstanding.push_back(Outstanding {
                block,
                deadline: now + self.cfg.request_timeout,
            });
        }
        self.refresh_deadline(link);
        self.send(link, &Message::Request(block));
    }

    /// All blocks of a piece arrived: hand it to the driver to verify.
    fn finish_piece(&mut self, now: Instant, piece: u32, link: LinkId) {
        let Some(dl) = self.downloads.remove(&(piece, link)) else {
            return;
        };
        self.picker.stop(piece);
        let Some(expectation) = self
            .manifest
            .as_ref()
            .and_then(|m| m.expectation(piece).ok())
        else {
            return;
        };
        // End-game duplicates of this piece on other links are no longer needed; should the
        // check fail, the piece is simply wanted again.
        let others: Vec<LinkId> = self
            .downloads
            .keys()
            .filter(|(p, _)| *p == piece)
            .map(|&(_, l)| l)
            .collect();
        for other in others {
            self.drop_download(piece, other, true);
        }
        // Until the check returns, the piece is neither wanted nor held.
        if self.picker.set_storing(piece, true) {
            self.pending_bytes += u64::from(dl.len);
        }
        let peer = self.links.get(&link).and_then(|l| l.peer);
        self.actions.push_back(Action::CheckPiece(PieceCheck {
            link,
            peer,
            expectation,
            data: PieceData::from_segments(
                dl.blocks
                    .into_iter()
                    .filter_map(|b| match b {
                        BlockState::Received(bytes) => Some(bytes),
                        _ => None,
                    })
                    .collect(),
            ),
        }));
        self.fill_all(now);
    }

    /// The driver ran a [`PieceCheck`]: store the piece, or ban the peer that sent it.
    pub fn handle_piece_checked(&mut self, now: Instant, checked: CheckedPiece) {
        let CheckedPiece {
            link,
            peer,
            piece,
            data,
            ok,
        } = checked;
        if !ok {
            self.release_pending(piece);
            if let Some(peer) = peer {
                self.banned.insert(peer);
                self.events.push_back(Event::PeerBanned {
                    peer,
                    piece: Some(piece),
                });
            }
            // The link may be gone already; if not, close it.
            if self.links.get(&link).is_some_and(|l| l.peer == peer) {
                self.disconnect(link, DisconnectReason::Banned);
            }
            self.fill_all(now);
            return;
        }
        if let Some(from) = peer {
            self.events.push_back(Event::PieceVerified { piece, from });
        }
        self.cache_piece(piece, data.clone());
        self.actions.push_back(Action::StorePiece { piece, data });
    }

    /// The piece is no longer waiting for checking or storage.
    pub(super) fn release_pending(&mut self, piece: u32) {
        if self.picker.set_storing(piece, false) {
            let len = self.layout.piece_len(piece).unwrap_or(0);
            self.pending_bytes = self.pending_bytes.saturating_sub(len);
        }
    }

    /// Abandons the piece `link` is downloading; `cancel` tells the peer.
    fn drop_download(&mut self, piece: u32, link: LinkId, cancel: bool) {
        if self.downloads.remove(&(piece, link)).is_none() {
            return;
        }
        self.picker.stop(piece);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let cancels: Vec<BlockRef> = l
            .outstanding
            .iter()
            .filter(|o| o.block.piece == piece)
            .map(|o| o.block)
            .collect();
        l.outstanding.retain(|o| o.block.piece != piece);
        self.refresh_deadline(link);
        if cancel {
            for block in cancels {
                self.send(link, &Message::Cancel(block));
            }
        }
    }

    /// Abandons every piece the link is downloading; `cancel` tells the peer.
    pub(super) fn cancel_downloads_on(&mut self, link: LinkId, cancel: bool) {
        let pieces: Vec<u32> = self
            .downloads
            .keys()
            .filter(|(_, l)| *l == link)
            .map(|&(p, _)| p)
            .collect();
        for piece in pieces {
            self.drop_download(piece, link, cancel);
        }
        if let Some(l) = self.links.get_mut(&link) {
            l.outstanding.clear();
        }
        self.refresh_deadline(link);
    }

    /// Takes the work off links whose oldest request timed out or that stopped sending, and
    /// drops a link that keeps letting requests time out (`MAX_SNUBS` in a row).
    pub(super) fn expire_requests(&mut self, now: Instant) {
        let snubbing: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                l.outstanding.front().is_some_and(|o| {
                    o.deadline <= now || l.progress_at + self.stall_after(l) <= now
                })
            })
            .map(|(&id, _)| id)
            .collect();
        for link in snubbing {
            // Too slow: give its pieces to other links; it may get work again later, unless it
            // keeps letting requests time out.
            self.cancel_downloads_on(link, true);
            let snubs = self.links.get_mut(&link).map(|l| {
                l.snubs = l.snubs.saturating_add(1);
                l.snubs
            });
            if snubs >= Some(MAX_SNUBS) {
                self.disconnect(link, DisconnectReason::Unresponsive);
            }
        }
    }

    /// Tells the peer whether it holds anything we want.
    fn update_interest(&mut self, link: LinkId) {
        let wants = self
            .links
            .get(&link)
            .is_some_and(|l| self.picker.wants_from(&self.have, &l.remote_have));
        self.set_interested(link, wants);
    }

    /// Sends `Interested` or `NotInterested` if that changes what the peer knows.
    fn set_interested(&mut self, link: LinkId, interested: bool) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.we_are_interested != interested && l.ready() {
            l.we_are_interested = interested;
            if interested {
                l.useful_at = self.now;
            }
            self.idle_changed();
            let msg = if interested {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(link, &msg);
        }
    }

    /// Reports completion once every piece is held (we are then interested in no one).
    pub(super) fn check_complete(&mut self) {
        if self.is_complete() && !self.complete_reported {
            self.complete_reported = true;
            self.events.push_back(Event::Complete);
            let links: Vec<LinkId> = self.links.keys().copied().collect();
            for link in links {
                self.set_interested(link, false);
            }
        }
    }
}
