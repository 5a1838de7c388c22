//! The swarm: a sans-IO state machine that exchanges one artifact's pieces with many peers.
//!
//! The driver feeds it inputs (`handle_*`: a link connected or closed, a frame arrived, time
//! passed, a piece was read or stored) and drains its outputs after every input (`poll_*`:
//! bytes to transmit, actions to carry out, events to report, the next deadline). Time is a
//! parameter, randomness comes from the caller's seed, and every collection iterates in a fixed
//! order, so the same inputs give the same outputs.
//!
//! Every piece is verified against the manifest before it is handed to storage, and each piece
//! is assembled from the blocks of one link, so a piece that fails verification is blamed on
//! exactly one peer, which is banned.

mod check;
mod config;
mod link;
mod picker;

use alloc::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    vec,
    vec::Vec,
};

use bytes::Bytes;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub use check::{CheckedPiece, PieceCheck};
pub use config::{
    Action, DisconnectReason, Event, LinkId, LinkStats, SPREAD_FIRST_MIN_LINKS, SwarmConfig,
    SwarmStats,
};
use link::{HeldBlock, Link, ManifestAnswer, Outstanding};
use picker::Picker;

use crate::{
    Bitfield, ContentId, Instant, Manifest, PeerId, PieceData, PieceLayout, Ticket,
    wire::{self, BlockRef, DecodeError, Handshake, MAX_BLOCK_LEN, MAX_MANIFEST_PART, Message},
};

/// A piece being assembled from one link's blocks.
#[derive(Debug)]
struct Download {
    /// Length of the piece.
    len: u32,
    /// Per block: not requested, requested, or its bytes (a zero-copy slice of its frame).
    blocks: Vec<BlockState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BlockState {
    Missing,
    Requested,
    Received(Bytes),
}

/// The manifest being fetched from one link.
#[derive(Debug)]
struct ManifestFetch {
    link: LinkId,
    hashes: Vec<u8>,
    deadline: Instant,
}

/// Request timeouts in a row after which a link is dropped.
const MAX_SNUBS: u8 = 3;

/// Pieces per link whose serving began remembered (`Link::started`): more than a peer
/// downloads at once.
const MAX_STARTED: usize = 256;

/// Most refused (link, piece) pairs remembered (beyond them, requests are served).
const MAX_REFUSED: usize = 1 << 16;

/// Copies of the manifest a spreading seed sends before it refuses new askers, so peers pass
/// it on instead (at 32 bytes a piece, a copy to each of thousands of peers would cost the
/// origin a good part of the artifact again).
const MANIFEST_FIRST_COPIES: u32 = 8;

/// One artifact's swarm.
#[derive(Debug)]
pub struct Swarm {
    cfg: SwarmConfig,
    id: ContentId,
    layout: PieceLayout,
    block_size: u32,
    manifest: Option<Manifest>,
    fetch: Option<ManifestFetch>,
    have: Bitfield,
    picker: Picker,
    rng: Xoshiro256PlusPlus,
    links: BTreeMap<LinkId, Link>,
    downloads: BTreeMap<(u32, LinkId), Download>,
    /// Links whose handshake has not arrived yet, by handshake deadline (so `poll_timeout`
    /// need not look at every link of a seed with thousands).
    handshakes: BTreeSet<(Instant, LinkId)>,
    /// The peers of ready links (to refuse a second link to one without a walk).
    peers: BTreeSet<PeerId>,
    /// Links we unchoked.
    unchoked: usize,
    banned: BTreeSet<PeerId>,
    /// Verified pieces in memory, most recently used last.
    cache: VecDeque<(u32, PieceData)>,
    /// Pieces the driver is reading for us.
    reading: BTreeSet<u32>,
    next_rechoke: Instant,
    /// The latest time an input brought (for work done where no time is passed in).
    now: Instant,
    /// Bytes of pieces handed to checking and storage, not yet stored.
    pending_bytes: u64,
    complete_reported: bool,
    downloaded: u64,
    uploaded: u64,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    /// Links with frames in their outbox, in the order they got them.
    ready_links: VecDeque<LinkId>,
    /// Every link's request deadline ([`Link::deadline`]), earliest first, so that
    /// `poll_timeout` does not walk the links.
    deadlines: BTreeSet<(Instant, LinkId)>,
    /// Payload bytes sent of each piece (for `spread_first`).
    served: Vec<u64>,
    /// For each piece not sent whole yet, the link its first copy goes to and when it was
    /// asked for (for `spread_first`).
    first_copy: Vec<Option<(LinkId, Instant)>>,
    /// Pieces refused to links under `spread_first`, advertised again at the next rechoke.
    refused: BTreeSet<(LinkId, u32)>,
    /// Pieces advertised again at the last rechoke: a link asking for one of them once more
    /// found no other source, and is served.
    readvertised: BTreeSet<(LinkId, u32)>,
    /// Piece hashes of the manifest we sent (for `spread_first`).
    manifest_hashes_sent: u64,
}

impl Swarm {
    /// A swarm that has nothing yet and fetches the artifact named by `ticket`.
    pub fn new(cfg: SwarmConfig, ticket: &Ticket, now: Instant, seed: u64) -> Self {
        let layout =
            PieceLayout::for_size(ticket.size()).expect("a parsed ticket's size has a layout");
        let pieces = layout.piece_count();
        let mut swarm = Self::with(
            cfg,
            ticket.id(),
            layout,
            None,
            Bitfield::new(pieces),
            now,
            seed,
        );
        // Artifacts of at most one piece need no manifest from anyone: it is the id itself.
        let trivial = match pieces {
            0 => Some(vec![]),
            1 => Some(vec![*ticket.id().as_bytes()]),
            _ => None,
        };
        if let Some(cvs) = trivial
            && let Ok(m) = Manifest::from_untrusted(ticket.id(), ticket.size(), cvs)
        {
            swarm.set_manifest(m);
        }
        swarm.check_complete();
        swarm
    }

    /// A swarm that already holds the pieces in `have` of a verified manifest (a seed when
    /// `have` is full, a resumed download otherwise).
    pub fn with_manifest(
        cfg: SwarmConfig,
        manifest: Manifest,
        have: Bitfield,
        now: Instant,
        seed: u64,
    ) -> Self {
        let layout = *manifest.layout();
        assert_eq!(
            have.len(),
            layout.piece_count(),
            "bitfield for another layout"
        );
        let mut swarm = Self::with(cfg, manifest.id(), layout, Some(manifest), have, now, seed);
        swarm.check_complete();
        swarm
    }

    fn with(
        cfg: SwarmConfig,
        id: ContentId,
        layout: PieceLayout,
        manifest: Option<Manifest>,
        have: Bitfield,
        now: Instant,
        seed: u64,
    ) -> Self {
        let block_size = u64::from(cfg.block_size)
            .clamp(1, layout.piece_size())
            .min(MAX_BLOCK_LEN as u64) as u32;
        let next_rechoke = now + cfg.rechoke_interval;
        let cfg_spread = cfg.spread_first;
        Self {
            picker: Picker::new(layout.piece_count()),
            cfg,
            id,
            layout,
            block_size,
            manifest,
            fetch: None,
            have,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            links: BTreeMap::new(),
            downloads: BTreeMap::new(),
            handshakes: BTreeSet::new(),
            peers: BTreeSet::new(),
            unchoked: 0,
            banned: BTreeSet::new(),
            cache: VecDeque::new(),
            reading: BTreeSet::new(),
            next_rechoke,
            now,
            pending_bytes: 0,
            complete_reported: false,
            downloaded: 0,
            uploaded: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            ready_links: VecDeque::new(),
            deadlines: BTreeSet::new(),
            served: if cfg_spread {
                vec![0; layout.piece_count() as usize]
            } else {
                Vec::new()
            },
            first_copy: if cfg_spread {
                vec![None; layout.piece_count() as usize]
            } else {
                Vec::new()
            },
            refused: BTreeSet::new(),
            readvertised: BTreeSet::new(),
            manifest_hashes_sent: 0,
        }
    }

    /// The artifact's content id.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// Our identity.
    pub fn peer_id(&self) -> PeerId {
        self.cfg.peer_id
    }

    /// The verified manifest, once known.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The pieces held.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether every piece is held.
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some() && self.have.is_complete()
    }

    /// Whether a peer is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains(peer)
    }

    /// A snapshot of progress and per-link counters.
    pub fn stats(&self) -> SwarmStats {
        SwarmStats {
            have: self.have.count(),
            pieces: self.have.len(),
            have_bytes: self
                .have
                .iter()
                .filter_map(|p| self.layout.piece_len(p))
                .sum(),
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            has_manifest: self.manifest.is_some(),
            links: self
                .links
                .iter()
                .map(|(&link, l)| LinkStats {
                    link,
                    peer: l.peer,
                    peer_pieces: l.remote_have.count(),
                    downloaded: l.downloaded,
                    uploaded: l.uploaded,
                    unchoked_by_peer: l.peer_unchoked_us,
                    unchoked_by_us: l.we_unchoked_peer,
                })
                .collect(),
        }
    }

    // ----- inputs -----

    /// A new link is open; we send our handshake on it.
    pub fn handle_connected(&mut self, now: Instant, link: LinkId) {
        self.now = now;
        // A driver that reuses a live link's id replaces that link: forget it first.
        self.forget(link);
        self.links
            .insert(link, Link::new(now, self.layout.piece_count()));
        self.handshakes
            .insert((now + self.cfg.handshake_timeout, link));
        let hs = Handshake {
            peer_id: self.cfg.peer_id,
            swarm: Some(self.id),
            listen_port: self.cfg.listen_port,
        };
        self.send(link, &Message::Handshake(hs));
        if self.manifest.is_some() {
            self.send(link, &Message::HaveManifest);
        }
        if self.have.count() > 0 {
            let bits = self.have.as_bytes().to_vec();
            self.send(link, &Message::Bitfield { bits: &bits });
        }
    }

    /// A link we dialed is open: as [`Swarm::handle_connected`], and if the peer dialed us at
    /// the same time, both ends keep the same one of the two links (the one the smaller peer
    /// id dialed) instead of each closing the other's.
    pub fn handle_dialed(&mut self, now: Instant, link: LinkId) {
        self.handle_connected(now, link);
        if let Some(l) = self.links.get_mut(&link) {
            l.dialed = true;
        }
    }

    /// The link closed (by either side).
    pub fn handle_disconnected(&mut self, now: Instant, link: LinkId) {
        self.now = now;
        self.forget(link);
    }

    /// A frame body (as split by [`wire::split_frame`]) arrived on `link`. Block data is kept
    /// as a slice of `body`, not copied.
    pub fn handle_frame(&mut self, now: Instant, link: LinkId, body: Bytes) {
        self.now = now;
        if !self.links.contains_key(&link) {
            return;
        }
        match wire::decode(&body) {
            Ok(msg) => self.on_message(now, link, msg, &body),
            Err(DecodeError::UnknownKind(_)) => {}
            Err(_) => self.disconnect(link, DisconnectReason::Protocol),
        }
    }

    /// A `Block` frame arrived on `link` whose data the driver carried apart from the frame
    /// (see [`wire::decode_block_header`]): the same as [`Swarm::handle_frame`] with the
    /// whole frame.
    pub fn handle_block(
        &mut self,
        now: Instant,
        link: LinkId,
        piece: u32,
        offset: u32,
        data: Bytes,
    ) {
        self.now = now;
        if !self.links.contains_key(&link) {
            return;
        }
        if !(1..=MAX_BLOCK_LEN).contains(&data.len()) {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        self.on_block(now, link, piece, offset, data);
    }

    /// Time has passed: expire requests, handshakes and the manifest fetch; rotate slots.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let late_handshakes: Vec<LinkId> = self
            .handshakes
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, id)| id)
            .collect();
        for link in late_handshakes {
            self.disconnect(link, DisconnectReason::HandshakeTimeout);
        }
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
        if let Some(fetch) = self.fetch.take_if(|f| f.deadline <= now) {
            // Ask someone else next time.
            if let Some(l) = self.links.get_mut(&fetch.link) {
                l.fetch_failed = true;
            }
        }
        if now >= self.next_rechoke {
            self.next_rechoke = now + self.cfg.rechoke_interval;
            self.rechoke(now);
        }
        self.start_manifest_fetch(now);
        self.fill_all(now);
        self.refresh_all_deadlines();
    }

    /// The driver read piece `piece` for us: its verified bytes, or `None` if it is missing or
    /// failed verification on disk (it is then fetched again).
    pub fn handle_piece_read(&mut self, now: Instant, piece: u32, data: Option<Bytes>) {
        self.reading.remove(&piece);
        match data {
            Some(data) => {
                self.cache_piece(piece, data.into());
                self.serve_queued(piece);
            }
            None => {
                self.have.remove(piece);
                let links: Vec<LinkId> = self.links.keys().copied().collect();
                for link in links {
                    self.reject_queued(link, Some(piece));
                }
                self.fill_all(now);
            }
        }
    }

    /// Reading piece `piece` failed for a reason that may pass (an I/O error, not corruption):
    /// refuse the requests waiting for it, but keep holding it.
    pub fn handle_piece_read_failed(&mut self, now: Instant, piece: u32) {
        self.now = now;
        self.reading.remove(&piece);
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            self.reject_queued(link, Some(piece));
        }
    }

    /// The driver stored piece `piece` (`ok`), or failed to.
    pub fn handle_piece_stored(&mut self, now: Instant, piece: u32, ok: bool) {
        self.release_pending(piece);
        if !ok {
            self.cache.retain(|(p, _)| *p != piece);
            self.events.push_back(Event::StoreFailed { piece });
            self.fill_all(now);
            return;
        }
        if !self.have.insert(piece) {
            return;
        }
        let ready: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.ready())
            .map(|(&id, _)| id)
            .collect();
        for link in ready {
            self.send(link, &Message::Have { piece });
        }
        self.serve_queued(piece);
        self.check_complete();
        // Room for another piece may have opened up.
        self.fill_all(now);
    }

    /// The piece is no longer waiting for checking or storage.
    fn release_pending(&mut self, piece: u32) {
        if self.picker.set_storing(piece, false) {
            let len = self.layout.piece_len(piece).unwrap_or(0);
            self.pending_bytes = self.pending_bytes.saturating_sub(len);
        }
    }

    // ----- outputs -----

    /// Bytes to send on a link: one or more whole frames, as segments to send in order (block
    /// data is shared with the piece it comes from, not copied).
    ///
    /// With a [`SwarmConfig::send_window`], blocks are handed out, after the frames queued so
    /// far, while the link's bytes not yet reported sent are below the window.
    pub fn poll_transmit(&mut self) -> Option<(LinkId, Vec<Bytes>)> {
        while let Some(link) = self.ready_links.pop_front() {
            let Some(l) = self.links.get_mut(&link) else {
                continue;
            };
            let mut out = l.outbox.take();
            let Some(window) = self.cfg.send_window else {
                if !out.is_empty() {
                    return Some((link, out));
                }
                continue;
            };
            l.in_flight += out.iter().map(|b| b.len() as u64).sum::<u64>();
            let mut served = Vec::new();
            // A block starts while the window has room, so a window of two blocks keeps two
            // in flight.
            while l.in_flight < window {
                let Some(held) = l.held.pop_front() else {
                    break;
                };
                l.in_flight += held.len;
                out.extend(held.frame);
                served.push(held.block);
            }
            for r in served {
                self.count_served(link, r);
            }
            if !out.is_empty() {
                return Some((link, out));
            }
        }
        None
    }

    /// The driver put `bytes` of what [`Swarm::poll_transmit`] gave for `link` on the wire
    /// (only needed with a [`SwarmConfig::send_window`]).
    pub fn handle_sent(&mut self, link: LinkId, bytes: u64) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.in_flight = l.in_flight.saturating_sub(bytes);
        if !l.held.is_empty() {
            self.ready_links.push_back(link);
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Swarm::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.deadlines.first().map(|&(at, _)| at);
        debug_assert!(
            self.links
                .values()
                .filter_map(|l| self.request_deadline(l))
                .min()
                .is_none_or(|due| requests.is_some_and(|r| r <= due)),
            "a request deadline is missing from `deadlines`"
        );
        debug_assert_eq!(
            self.handshakes.len(),
            self.links.values().filter(|l| !l.ready()).count(),
            "a handshake deadline per link not ready"
        );
        let handshakes = self.handshakes.first().map(|&(at, _)| at);
        let fetch = self.fetch.as_ref().map(|f| f.deadline);
        requests
            .into_iter()
            .chain(handshakes)
            .chain(fetch)
            .chain(self.manifest_retry_at())
            .chain(Some(self.next_rechoke))
            .min()
    }

    // ----- messages -----

    fn on_message(&mut self, now: Instant, link: LinkId, msg: Message<'_>, body: &Bytes) {
        let ready = self.links.get(&link).is_some_and(Link::ready);
        match msg {
            Message::Handshake(hs) if !ready => self.on_handshake(now, link, hs),
            _ if !ready => self.disconnect(link, DisconnectReason::Protocol),
            Message::Handshake(_) => self.disconnect(link, DisconnectReason::Protocol),
            Message::Bitfield { bits } => self.on_bitfield(now, link, bits),
            Message::Have { piece } => self.on_have(now, link, piece),
            Message::Interested => self.on_interest(now, link, true),
            Message::NotInterested => self.on_interest(now, link, false),
            Message::Choke => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.peer_unchoked_us = false;
                }
                // A choke discards our pending requests.
                self.cancel_downloads_on(link, false);
            }
            Message::Unchoke => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.peer_unchoked_us = true;
                }
                self.fill(now, link);
            }
            Message::Request(r) => self.on_request(link, r),
            Message::Cancel(r) => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.queued.retain(|q| *q != r);
                    l.held.retain(|h| h.block != r);
                }
            }
            Message::Reject(r) => self.on_reject(now, link, r),
            Message::Block {
                piece,
                offset,
                data,
            } => self.on_block(now, link, piece, offset, body.slice_ref(data)),
            Message::ManifestRequest { first, count } => {
                self.on_manifest_request(link, first, count)
            }
            Message::ManifestPart { first, hashes } => {
                self.on_manifest_part(now, link, first, hashes)
            }
            Message::HaveManifest => {
                if let Some(l) = self.links.get_mut(&link)
                    && !core::mem::replace(&mut l.has_manifest, true)
                {
                    self.start_manifest_fetch(now);
                }
            }
            Message::ManifestRefused => self.on_manifest_refused(now, link),
            // Membership gossip travels on membership links, not in a swarm.
            Message::Gossip { .. } => {}
            // Connection messages never travel inside a swarm's channel.
            Message::Channel { .. }
            | Message::OpenChannel { .. }
            | Message::CloseChannel { .. }
            | Message::RefuseChannel { .. } => self.disconnect(link, DisconnectReason::Protocol),
        }
    }

    /// For a handshake from `peer` on `link` when another link to it is ready: that other
    /// link, if `link` is the one to keep. Of two new links between the same peers (dialed at
    /// once), both ends keep the one the smaller peer id dialed. The older link stays when
    /// direction is unknown (links not opened with [`Swarm::handle_dialed`]), and when it
    /// has carried payload or is older than the handshake timeout, so that a peer claiming
    /// another's id cannot take over a link in use.
    fn duplicate_replaced_by(&self, link: LinkId, peer: PeerId) -> Option<LinkId> {
        let (&old, existing) = self
            .links
            .iter()
            .find(|&(&id, l)| id != link && l.peer == Some(peer))?;
        let new = self.links.get(&link)?;
        let keep_ours = self.cfg.peer_id < peer;
        let fresh = existing.downloaded == 0
            && existing.uploaded == 0
            && self.now < existing.connected_at + self.cfg.handshake_timeout;
        (fresh && new.dialed == keep_ours && existing.dialed != keep_ours).then_some(old)
    }

    fn on_handshake(&mut self, now: Instant, link: LinkId, hs: Handshake) {
        let reason = if hs.swarm != Some(self.id) {
            Some(DisconnectReason::WrongSwarm)
        } else if hs.peer_id == self.cfg.peer_id {
            Some(DisconnectReason::SelfConnection)
        } else if self.banned.contains(&hs.peer_id) {
            Some(DisconnectReason::Banned)
        } else if self.peers.contains(&hs.peer_id) {
            match self.duplicate_replaced_by(link, hs.peer_id) {
                Some(old) => {
                    self.disconnect(old, DisconnectReason::Duplicate);
                    None
                }
                None => Some(DisconnectReason::Duplicate),
            }
        } else {
            None
        };
        if let Some(reason) = reason {
            self.disconnect(link, reason);
            return;
        }
        if let Some(l) = self.links.get_mut(&link)
            && l.peer.replace(hs.peer_id).is_none()
        {
            self.handshakes
                .remove(&(l.connected_at + self.cfg.handshake_timeout, link));
            self.peers.insert(hs.peer_id);
        }
        self.events.push_back(Event::PeerConnected {
            link,
            peer: hs.peer_id,
        });
        self.start_manifest_fetch(now);
    }

    fn on_bitfield(&mut self, now: Instant, link: LinkId, bits: &[u8]) {
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

    fn on_have(&mut self, now: Instant, link: LinkId, piece: u32) {
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

    fn on_interest(&mut self, now: Instant, link: LinkId, interested: bool) {
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

    fn on_request(&mut self, link: LinkId, r: BlockRef) {
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
        if !started
            && !self.readvertised.contains(&(link, r.piece))
            && self.refused.len() < MAX_REFUSED
            && self.spread_elsewhere(link, r.piece)
        {
            self.refused.insert((link, r.piece));
            self.send(link, &Message::Reject(r));
            return;
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !started && self.cfg.spread_first {
            if l.started.len() >= MAX_STARTED {
                l.started.pop_front();
            }
            l.started.push_back(r.piece);
        }
        l.queued.push_back(r);
        let take_first = self.first_copy.get(r.piece as usize).is_some_and(|first| {
            first.is_none_or(|(to, _)| to != link && self.live_first_copy(r.piece).is_none())
        });
        if take_first {
            self.first_copy[r.piece as usize] = Some((link, self.now));
        }
        if self.is_cached(r.piece) {
            // Other links' requests for a cached piece were served when they came.
            self.serve_queued_on(link, r.piece);
        } else if self.reading.insert(r.piece) {
            self.actions.push_back(Action::ReadPiece { piece: r.piece });
        }
    }

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
            self.served.get(piece as usize),
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
        self.first_copy
            .get(piece as usize)
            .copied()
            .flatten()
            .filter(|&(to, at)| {
                self.now < at + self.cfg.stall_timeout && self.links.contains_key(&to)
            })
            .map(|(to, _)| to)
    }

    fn on_reject(&mut self, now: Instant, link: LinkId, r: BlockRef) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let before = l.outstanding.len();
        l.outstanding.retain(|o| o.block != r);
        if l.outstanding.len() != before {
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

    fn on_block(&mut self, now: Instant, link: LinkId, piece: u32, offset: u32, data: Bytes) {
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

    fn on_manifest_request(&mut self, link: LinkId, first: u32, count: u32) {
        let Some(m) = &self.manifest else {
            // We cannot help; peers only ask those that announced the manifest or hold pieces.
            return;
        };
        let pieces = u64::from(m.layout().piece_count());
        // Counted in hashes sent, so that asking for a few uses up no more than that.
        let refuse = self.spreading()
            && self.manifest_hashes_sent >= u64::from(MANIFEST_FIRST_COPIES) * pieces;
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if first == 0 {
            if refuse && l.manifest_answer == ManifestAnswer::NotAsked {
                // Peers we sent it to pass it on; one that finds none asks us again.
                l.manifest_answer = ManifestAnswer::Refused;
                self.send(link, &Message::ManifestRefused);
                return;
            }
            l.manifest_answer = ManifestAnswer::Served;
        } else if l.manifest_answer == ManifestAnswer::Refused {
            // The rest of a refused request.
            return;
        }
        l.manifest_served += u64::from(count);
        if l.manifest_served > 2 * pieces + MAX_MANIFEST_PART as u64 {
            // A peer needs the manifest once (twice, if a fetch timed out); more is abuse.
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        let Some(m) = &self.manifest else {
            return;
        };
        let end = first.checked_add(count);
        if end.is_none_or(|end| end > m.layout().piece_count()) {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        self.manifest_hashes_sent += u64::from(count);
        let bytes = &m.piece_cv_bytes()[first as usize * 32..(first + count) as usize * 32];
        let frame = encode_to_vec(&Message::ManifestPart {
            first,
            hashes: bytes,
        });
        self.push_frame(link, &frame);
    }

    fn on_manifest_part(&mut self, now: Instant, link: LinkId, first: u32, hashes: &[u8]) {
        let Some(fetch) = self.fetch.as_mut().filter(|f| f.link == link) else {
            return;
        };
        if u64::from(first) * 32 != fetch.hashes.len() as u64 {
            // A late part of an earlier round, or out of order: ignore it.
            return;
        }
        fetch.hashes.extend_from_slice(hashes);
        fetch.deadline = now + self.cfg.request_timeout;
        if fetch.hashes.len() < self.layout.piece_count() as usize * 32 {
            return;
        }
        let Some(fetch) = self.fetch.take() else {
            return;
        };
        match Manifest::from_untrusted_bytes(self.id, self.layout.size(), &fetch.hashes) {
            Ok(m) => {
                self.actions.push_back(Action::StoreManifest(m.clone()));
                self.set_manifest(m);
                self.events.push_back(Event::ManifestVerified);
                let links: Vec<LinkId> = self.links.keys().copied().collect();
                for link in links {
                    self.send(link, &Message::HaveManifest);
                }
                self.fill_all(now);
            }
            Err(_) => self.ban(link, None),
        }
    }

    // ----- downloading -----

    fn set_manifest(&mut self, m: Manifest) {
        self.manifest = Some(m);
    }

    /// The peer refused our manifest request: ask another that has it.
    fn on_manifest_refused(&mut self, now: Instant, link: LinkId) {
        if self.fetch.as_ref().is_none_or(|f| f.link != link) {
            return;
        }
        self.fetch = None;
        if let Some(l) = self.links.get_mut(&link) {
            l.manifest_refused_at = Some(now);
        }
        self.start_manifest_fetch(now);
    }

    /// Whether `l` has the manifest for us: it said so or holds pieces, and a fetch from it
    /// did not time out.
    fn has_manifest_for_us(l: &Link) -> bool {
        l.ready() && (l.has_manifest || l.remote_have.count() > 0) && !l.fetch_failed
    }

    /// Whether we may ask `l` for the manifest now: it has it for us, and it did not refuse
    /// us in the last `stall_timeout`.
    fn manifest_source(&self, now: Instant, l: &Link) -> bool {
        Self::has_manifest_for_us(l)
            && l.manifest_refused_at
                .is_none_or(|at| now >= at + self.cfg.stall_timeout)
    }

    /// When a peer that has the manifest but refused it to us may be asked again, if we wait
    /// for that (it walks the links, only while we wait for a manifest).
    fn manifest_retry_at(&self) -> Option<Instant> {
        if self.manifest.is_some() || self.fetch.is_some() {
            return None;
        }
        self.links
            .values()
            .filter(|l| Self::has_manifest_for_us(l))
            .filter_map(|l| l.manifest_refused_at)
            .map(|at| at + self.cfg.stall_timeout)
            .min()
    }

    /// Asks a random peer that has the manifest for all of it.
    fn start_manifest_fetch(&mut self, now: Instant) {
        if self.manifest.is_some() || self.fetch.is_some() {
            return;
        }
        let sources: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| self.manifest_source(now, l))
            .map(|(&id, _)| id)
            .collect();
        if sources.is_empty() {
            return;
        }
        let link = sources[(self.rng.next_u64() % sources.len() as u64) as usize];
        let pieces = self.layout.piece_count();
        let mut first = 0;
        while first < pieces {
            let count = (pieces - first).min(MAX_MANIFEST_PART as u32);
            self.send(link, &Message::ManifestRequest { first, count });
            first += count;
        }
        self.fetch = Some(ManifestFetch {
            link,
            hashes: Vec::with_capacity(pieces as usize * 32),
            deadline: now + self.cfg.request_timeout,
        });
    }

    fn fill_all(&mut self, now: Instant) {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            self.fill(now, link);
        }
    }

    /// Keeps the link's request pipeline full.
    fn fill(&mut self, now: Instant, link: LinkId) {
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
    fn cancel_downloads_on(&mut self, link: LinkId, cancel: bool) {
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

    fn update_interest(&mut self, link: LinkId) {
        let wants = self
            .links
            .get(&link)
            .is_some_and(|l| self.picker.wants_from(&self.have, &l.remote_have));
        self.set_interested(link, wants);
    }

    fn set_interested(&mut self, link: LinkId, interested: bool) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.we_are_interested != interested && l.ready() {
            l.we_are_interested = interested;
            let msg = if interested {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(link, &msg);
        }
    }

    fn check_complete(&mut self) {
        if self.is_complete() && !self.complete_reported {
            self.complete_reported = true;
            self.events.push_back(Event::Complete);
            let links: Vec<LinkId> = self.links.keys().copied().collect();
            for link in links {
                self.set_interested(link, false);
            }
        }
    }

    // ----- uploading -----

    fn unchoked_count(&self) -> usize {
        debug_assert_eq!(
            self.unchoked,
            self.links.values().filter(|l| l.we_unchoked_peer).count()
        );
        self.unchoked
    }

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
    fn unchoke_waiting(&mut self, now: Instant) {
        while self.unchoked_count() < self.slots() {
            let Some(next) = self.neediest(now) else {
                return;
            };
            self.set_choke(now, next, false);
        }
    }

    /// Rotates one slot: the peer unchoked longest yields to the peer waiting longest.
    fn rechoke(&mut self, now: Instant) {
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
        self.refused.retain(|(link, piece)| {
            links
                .get(link)
                .is_some_and(|l| !l.remote_have.contains(*piece))
        });
        let (again, wait): (BTreeSet<_>, BTreeSet<_>) = core::mem::take(&mut self.refused)
            .into_iter()
            .partition(|(link, _)| stalled(link));
        self.refused = wait;
        self.readvertised = again;
        for l in self.links.values_mut() {
            l.held_at_rechoke = l.remote_have.count();
        }
        let again: Vec<(LinkId, u32)> = self.readvertised.iter().copied().collect();
        for (link, piece) in again {
            self.send(link, &Message::Have { piece });
        }
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

    fn is_cached(&self, piece: u32) -> bool {
        self.cache.iter().any(|(p, _)| *p == piece)
    }

    fn cached(&self, piece: u32) -> Option<PieceData> {
        self.cache
            .iter()
            .find(|(p, _)| *p == piece)
            .map(|(_, d)| d.clone())
    }

    fn cache_piece(&mut self, piece: u32, data: PieceData) {
        self.cache.retain(|(p, _)| *p != piece);
        self.cache.push_back((piece, data));
        while self.cache.len() > self.cfg.piece_cache.max(1) {
            self.cache.pop_front();
        }
    }

    /// Sends every queued request for `piece` from the cache.
    /// Serves every link's queued requests for `piece`, once it is cached.
    fn serve_queued(&mut self, piece: u32) {
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

    /// When `l`'s requests time out or stall, if it has any outstanding.
    fn request_deadline(&self, l: &Link) -> Option<Instant> {
        l.outstanding
            .front()
            .map(|o| o.deadline.min(l.progress_at + self.stall_after(l)))
    }

    /// Brings `link`'s entry in `deadlines` up to date after its requests, progress or rate
    /// changed (a removed link's entry goes with its last request).
    fn refresh_deadline(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let due = self.request_deadline(l);
        let old = l.deadline;
        if due == old {
            return;
        }
        if let Some(at) = old {
            self.deadlines.remove(&(at, link));
        }
        if let Some(at) = due {
            self.deadlines.insert((at, link));
        }
        if let Some(l) = self.links.get_mut(&link) {
            l.deadline = due;
        }
    }

    /// Rebuilds `deadlines` from every link.
    fn refresh_all_deadlines(&mut self) {
        let due: Vec<(LinkId, Option<Instant>)> = self
            .links
            .iter()
            .map(|(&id, l)| (id, self.request_deadline(l)))
            .collect();
        self.deadlines.clear();
        for (id, at) in due {
            if let Some(at) = at {
                self.deadlines.insert((at, id));
            }
            if let Some(l) = self.links.get_mut(&id) {
                l.deadline = at;
            }
        }
    }

    /// How long a link with requests outstanding may send no block: `stall_timeout` plus two
    /// blocks' time at its measured rate (a slow link is not a dead one), at most
    /// `request_timeout`, which also applies until its rate is known.
    fn stall_after(&self, l: &Link) -> core::time::Duration {
        if l.rate.per_sec == 0 {
            return self.cfg.request_timeout;
        }
        let micros = 2 * u64::from(self.block_size) * 1_000_000 / l.rate.per_sec;
        (self.cfg.stall_timeout + core::time::Duration::from_micros(micros))
            .min(self.cfg.request_timeout)
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
    fn count_served(&mut self, link: LinkId, r: BlockRef) {
        if let Some(l) = self.links.get_mut(&link) {
            l.uploaded += u64::from(r.len);
        }
        if let Some(sent) = self.served.get_mut(r.piece as usize) {
            *sent += u64::from(r.len);
        }
        self.uploaded += u64::from(r.len);
    }

    /// Rejects a link's queued requests (for one piece, or all).
    fn reject_queued(&mut self, link: LinkId, piece: Option<u32>) {
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

    // ----- links -----

    fn ban(&mut self, link: LinkId, piece: Option<u32>) {
        if let Some(peer) = self.links.get(&link).and_then(|l| l.peer) {
            self.banned.insert(peer);
            self.events.push_back(Event::PeerBanned { peer, piece });
        }
        self.disconnect(link, DisconnectReason::Banned);
    }

    fn disconnect(&mut self, link: LinkId, reason: DisconnectReason) {
        if self.links.contains_key(&link) {
            self.forget(link);
            self.actions.push_back(Action::Disconnect { link, reason });
        }
    }

    /// Removes every trace of a link.
    fn forget(&mut self, link: LinkId) {
        self.cancel_downloads_on(link, false);
        let Some(l) = self.links.remove(&link) else {
            return;
        };
        match l.peer {
            Some(peer) => {
                self.peers.remove(&peer);
            }
            None => {
                self.handshakes
                    .remove(&(l.connected_at + self.cfg.handshake_timeout, link));
            }
        }
        if l.we_unchoked_peer {
            self.unchoked -= 1;
        }
        self.picker.peer_gone(&l.remote_have);
        let now = self.now;
        if self.fetch.as_ref().is_some_and(|f| f.link == link) {
            self.fetch = None;
            self.start_manifest_fetch(now);
        }
        if l.we_unchoked_peer {
            self.unchoke_waiting(now);
        }
    }

    fn send(&mut self, link: LinkId, msg: &Message<'_>) {
        let frame = encode_to_vec(msg);
        self.push_frame(link, &frame);
    }

    fn push_frame(&mut self, link: LinkId, frame: &[u8]) {
        if let Some(out) = self.outbox(link) {
            out.push_bytes(frame);
        }
    }

    /// The link's outbox, queued for [`Swarm::poll_transmit`].
    fn outbox(&mut self, link: LinkId) -> Option<&mut link::Outbox> {
        let l = self.links.get_mut(&link)?;
        if l.outbox.is_empty() {
            self.ready_links.push_back(link);
        }
        Some(&mut l.outbox)
    }
}

/// Encodes a message the swarm built itself; such messages always respect the limits.
fn encode_to_vec(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if wire::encode(msg, &mut out).is_err() {
        debug_assert!(false, "the swarm built an invalid message: {msg:?}");
        out.clear();
    }
    out
}
