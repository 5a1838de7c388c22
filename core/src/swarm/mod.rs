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
mod download;
mod link;
mod manifest_fetch;
mod picker;
mod spread;
mod timers;
mod upload;

use alloc::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    vec,
    vec::Vec,
};

use bytes::Bytes;

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

pub(crate) use crate::wire::encode_own as encode_to_vec;
pub use check::{CheckedPiece, PieceCheck, Verdict};
pub use config::{
    Action, DisconnectReason, Event, LinkId, LinkStats, SPREAD_FIRST_MIN_LINKS, Stored,
    SwarmConfig, SwarmStats,
};
use download::Download;
use link::Link;
use manifest_fetch::ManifestFetch;
use picker::Picker;
use spread::SpreadState;

use crate::{
    Bitfield, ContentId, Instant, Manifest, PeerId, PieceData, PieceLayout, Ticket,
    wire::{self, DecodeError, Handshake, MAX_BLOCK_LEN, Message},
};

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
    /// When a block or a manifest part last arrived from anyone (or the swarm started).
    last_useful_at: Instant,
    /// The earliest time a link may be dropped as idle, once computed (`None`: to compute
    /// again); see [`Swarm::poll_timeout`].
    idle_cache: core::cell::Cell<Option<Option<Instant>>>,
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
    /// What `spread_first` remembers of the pieces and manifest copies sent and refused.
    spread: SpreadState,
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
            last_useful_at: now,
            idle_cache: core::cell::Cell::new(None),
            now,
            pending_bytes: 0,
            complete_reported: false,
            downloaded: 0,
            uploaded: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            ready_links: VecDeque::new(),
            deadlines: BTreeSet::new(),
            spread: SpreadState::new(cfg_spread, layout.piece_count()),
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

    /// Its settings.
    pub fn config(&self) -> &SwarmConfig {
        &self.cfg
    }

    /// Sets [`SwarmConfig::spread_first_min_links`] (an origin's policy may change as it
    /// learns its fetchers' capacities: [`crate::policy::origin`]).
    pub fn set_spread_first_min_links(&mut self, links: usize) {
        self.cfg.spread_first_min_links = links;
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

    /// The driver stored piece `piece` ([`Stored::Written`]), or failed to
    /// ([`Stored::Failed`]).
    pub fn handle_piece_stored(&mut self, now: Instant, piece: u32, stored: Stored) {
        self.release_pending(piece);
        if stored == Stored::Failed {
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
            Message::HaveManifest => self.on_have_manifest(now, link),
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
