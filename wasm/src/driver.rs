//! The browser peer's swarms, without the browser: artifacts held in memory, links carried as
//! messages, and the swarm's actions carried out at once. The browser glue feeds it data
//! channel messages and timers and sends what it returns; tests feed it directly.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use pollen_core::{
    ContentId, Instant, Manifest, PeerId, Ticket,
    endpoint::{ConnId, Endpoint, EndpointConfig, EndpointEvent, Output as EpOutput},
    swarm::{Action, Event, LinkId, Swarm, SwarmConfig},
    wire::{FrameBuffer, pack_messages},
};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Largest data channel message sent (every browser accepts 64 KiB).
pub const MAX_CHANNEL_MESSAGE: usize = 64 * 1024;
/// Most bytes queued for a link and not yet sent before the link is dropped as too slow.
pub const MAX_UNSENT: usize = 64 << 20;
/// Largest artifact a browser peer holds (it keeps artifacts in memory).
pub const MAX_BROWSER_ARTIFACT: u64 = 2 << 30;

/// Longest file name a ticket carries (bytes).
const MAX_NAME: usize = 255;

/// A file name a ticket accepts, made from any name: path separators and control characters
/// become `_`, and a name over 255 bytes is shortened in the middle, keeping its extension.
/// `None` for a name with nothing usable in it.
pub fn fit_name(name: &str) -> Option<String> {
    let clean: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        return None;
    }
    if clean.len() <= MAX_NAME {
        return Some(clean.to_string());
    }
    let ext = clean
        .rfind('.')
        .map(|i| &clean[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let mut stem_end = MAX_NAME - ext.len() - '…'.len_utf8();
    while !clean.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    Some(format!("{}…{ext}", &clean[..stem_end]))
}

/// Why the driver refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// The artifact is larger than a browser peer holds.
    TooLarge(u64),
    /// The name is not valid in a ticket.
    Ticket(String),
    /// The page cannot hold the artifact in memory.
    OutOfMemory(u64),
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(size) => write!(
                f,
                "an artifact of {size} bytes is larger than a browser peer holds ({MAX_BROWSER_ARTIFACT} bytes)"
            ),
            Self::Ticket(err) => write!(f, "cannot make a ticket: {err}"),
            Self::OutOfMemory(size) => write!(
                f,
                "this page cannot set aside {size} bytes of memory for the artifact"
            ),
        }
    }
}

impl std::error::Error for DriverError {}

/// What the driver asks of its glue. A link is one data channel to one peer; it carries
/// every swarm the two share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these messages on the link, in order.
    Send(LinkId, Vec<Vec<u8>>),
    /// Close the link (the driver has forgotten it).
    Close(LinkId),
    /// An artifact's progress changed.
    Progress(ContentId),
    /// An artifact is complete and verified.
    Complete(ContentId),
    /// A peer sent data that failed verification and was banned.
    Banned(ContentId, PeerId),
}

/// Progress of one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Verified bytes held.
    pub have_bytes: u64,
    /// The artifact's size.
    pub size: u64,
    /// Verified pieces held.
    pub have_pieces: u32,
    /// Pieces in the artifact.
    pub pieces: u32,
    /// Links with a completed handshake.
    pub peers: usize,
    /// Payload bytes received.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Whether every piece is held.
    pub complete: bool,
}

struct Artifact {
    ticket: Ticket,
    /// The artifact's bytes; pieces not yet held are zeros.
    data: Vec<u8>,
    /// Per piece, who sent it: [`PieceMap::LOCAL`] or an index into `senders` plus
    /// [`PieceMap::FIRST_PEER`]; [`PieceMap::MISSING`] until it is verified.
    sources: Vec<u8>,
    senders: Vec<PeerId>,
}

/// Which pieces of an artifact are held, and who sent each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceMap {
    /// The peers pieces came from; `pieces` refers to them by index.
    pub peers: Vec<PeerId>,
    /// One entry per piece: [`PieceMap::MISSING`], [`PieceMap::LOCAL`], or
    /// `FIRST_PEER + i` for `peers[i]` ([`PieceMap::OTHER`] beyond the last index that fits).
    pub pieces: Vec<u8>,
}

impl PieceMap {
    /// Not held yet.
    pub const MISSING: u8 = 0;
    /// Held from the start (shared from this page).
    pub const LOCAL: u8 = 1;
    /// The first peer's index.
    pub const FIRST_PEER: u8 = 2;
    /// From a peer beyond the ones that fit in a byte.
    pub const OTHER: u8 = u8::MAX;
}

/// One connected peer of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The peer, once its handshake arrived.
    pub peer: Option<PeerId>,
    /// Pieces the peer says it holds.
    pub peer_pieces: u32,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
}

/// A link's frames not yet whole.
struct LinkState {
    frames: FrameBuffer,
}

impl Artifact {
    /// Notes that `piece` verified, sent by `from`.
    fn record_source(&mut self, piece: u32, from: PeerId) {
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

/// The browser peer's state machine: the core's endpoint, with artifacts in memory.
pub struct Driver {
    me: PeerId,
    ep: Endpoint,
    artifacts: BTreeMap<ContentId, Artifact>,
    links: BTreeMap<LinkId, LinkState>,
    rng: Xoshiro256PlusPlus,
    out: VecDeque<Output>,
}

/// The glue's link for an endpoint connection (one to one).
fn link_of(conn: ConnId) -> LinkId {
    LinkId(conn.0)
}

fn conn_of(link: LinkId) -> ConnId {
    ConnId(link.0)
}

impl Driver {
    /// A driver for peer `me`, with randomness from `seed`.
    pub fn new(me: PeerId, seed: u64) -> Self {
        Self {
            me,
            ep: Endpoint::new(EndpointConfig::new(me)),
            artifacts: BTreeMap::new(),
            links: BTreeMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            out: VecDeque::new(),
        }
    }

    fn swarm(&self, id: &ContentId) -> Option<&Swarm> {
        self.ep.swarm(id)
    }

    /// Our identity.
    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    fn config(&self) -> SwarmConfig {
        pollen_core::policy::presets::browser(self.me)
    }

    /// Seeds `data`; returns its ticket (with `name`, if given).
    pub fn share(
        &mut self,
        now: Instant,
        data: Vec<u8>,
        name: Option<&str>,
    ) -> Result<Ticket, DriverError> {
        let manifest = Manifest::of(&data).map_err(|e| DriverError::Ticket(e.to_string()))?;
        self.share_hashed(now, manifest, data, name)
    }

    /// Seeds `data`, whose manifest the caller built from it (so that it could show
    /// progress while hashing); returns its ticket.
    pub fn share_hashed(
        &mut self,
        now: Instant,
        manifest: Manifest,
        data: Vec<u8>,
        name: Option<&str>,
    ) -> Result<Ticket, DriverError> {
        let size = data.len() as u64;
        if size > MAX_BROWSER_ARTIFACT {
            return Err(DriverError::TooLarge(size));
        }
        if manifest.layout().size() != size {
            return Err(DriverError::Ticket(format!(
                "the manifest is for {} bytes, not {size}",
                manifest.layout().size()
            )));
        }
        let mut ticket =
            Ticket::new(manifest.id(), size).map_err(|e| DriverError::Ticket(e.to_string()))?;
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            ticket = ticket
                .with_name(name)
                .map_err(|e| DriverError::Ticket(e.to_string()))?;
        }
        let id = manifest.id();
        if !self.is_complete(&id) {
            let pieces = manifest.layout().piece_count();
            let have = pollen_core::Bitfield::full(pieces);
            let seed = self.rng.next_u64();
            let swarm = Swarm::with_manifest(self.config(), manifest, have, now, seed);
            self.replace(now, swarm, ticket.clone(), data);
            if let Some(a) = self.artifacts.get_mut(&id) {
                a.sources = vec![PieceMap::LOCAL; pieces as usize];
            }
        }
        Ok(ticket)
    }

    /// Starts fetching the artifact `ticket` names (nothing happens if it is already held or
    /// being fetched).
    pub fn fetch(&mut self, now: Instant, ticket: &Ticket) -> Result<(), DriverError> {
        if ticket.size() > MAX_BROWSER_ARTIFACT {
            return Err(DriverError::TooLarge(ticket.size()));
        }
        if self.artifacts.contains_key(&ticket.id()) {
            return Ok(());
        }
        let seed = self.rng.next_u64();
        let swarm = Swarm::new(self.config(), ticket, now, seed);
        let size = ticket.size() as usize;
        let mut data = Vec::new();
        data.try_reserve_exact(size)
            .map_err(|_| DriverError::OutOfMemory(ticket.size()))?;
        data.resize(size, 0);
        self.replace(now, swarm, ticket.clone(), data);
        self.drive(now);
        Ok(())
    }

    fn replace(&mut self, now: Instant, swarm: Swarm, ticket: Ticket, data: Vec<u8>) {
        let id = swarm.id();
        // The endpoint closes the replaced swarm's links.
        self.ep.add_swarm(now, swarm);
        let pieces = pollen_core::PieceLayout::for_size(ticket.size())
            .map_or(0, |l| l.piece_count() as usize);
        self.artifacts.insert(
            id,
            Artifact {
                ticket,
                data,
                sources: vec![PieceMap::MISSING; pieces],
                senders: Vec::new(),
            },
        );
    }

    /// The artifacts held or being fetched.
    pub fn artifacts(&self) -> impl Iterator<Item = (&ContentId, &Ticket)> {
        self.artifacts.iter().map(|(id, a)| (id, &a.ticket))
    }

    /// Whether the artifact is held completely.
    pub fn is_complete(&self, id: &ContentId) -> bool {
        self.swarm(id).is_some_and(Swarm::is_complete)
    }

    /// The bytes of a complete artifact.
    pub fn bytes(&self, id: &ContentId) -> Option<&[u8]> {
        self.artifacts
            .get(id)
            .filter(|_| self.is_complete(id))
            .map(|a| &a.data[..])
    }

    /// Progress of an artifact.
    pub fn progress(&self, id: &ContentId) -> Option<Progress> {
        let a = self.artifacts.get(id)?;
        let swarm = self.swarm(id)?;
        let stats = swarm.stats();
        Some(Progress {
            have_bytes: stats.have_bytes,
            size: a.ticket.size(),
            have_pieces: stats.have,
            pieces: stats.pieces,
            peers: stats.links.iter().filter(|l| l.peer.is_some()).count(),
            downloaded: stats.downloaded,
            uploaded: stats.uploaded,
            complete: swarm.is_complete(),
        })
    }

    /// Which pieces are held and who sent them.
    pub fn piece_map(&self, id: &ContentId) -> Option<PieceMap> {
        let a = self.artifacts.get(id)?;
        Some(PieceMap {
            peers: a.senders.clone(),
            pieces: a.sources.clone(),
        })
    }

    /// The artifact's links and their counters.
    pub fn links(&self, id: &ContentId) -> Vec<LinkInfo> {
        self.swarm(id).map_or_else(Vec::new, |swarm| {
            swarm
                .stats()
                .links
                .iter()
                .map(|l| LinkInfo {
                    peer: l.peer,
                    peer_pieces: l.peer_pieces,
                    downloaded: l.downloaded,
                    uploaded: l.uploaded,
                })
                .collect()
        })
    }

    /// Stops sharing or fetching an artifact and closes its links.
    pub fn forget(&mut self, now: Instant, id: &ContentId) {
        if self.artifacts.remove(id).is_some() {
            self.ep.remove_swarm(now, id);
            self.drive(now);
        }
    }

    /// A data channel to a peer opened, for `swarm` (`dialed`: we sent the offer); `None`
    /// if we hold no such artifact. The link carries any other swarm the two share as well.
    pub fn open_link(&mut self, now: Instant, swarm: ContentId, dialed: bool) -> Option<LinkId> {
        if !self.artifacts.contains_key(&swarm) {
            return None;
        }
        let conn = self.ep.connect(now, dialed);
        let link = link_of(conn);
        self.links.insert(
            link,
            LinkState {
                frames: FrameBuffer::new(),
            },
        );
        self.ep.open_swarm(now, conn, swarm);
        self.drive(now);
        Some(link)
    }

    /// Open links (each to one peer, carrying every swarm the two share).
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// The link to `peer`, once its handshake arrived.
    pub fn link_to(&self, peer: &PeerId) -> Option<LinkId> {
        self.ep.conn_to(peer).map(link_of)
    }

    /// Adds `swarm` to an open link (to a peer we already share another swarm with).
    pub fn share_link(&mut self, now: Instant, link: LinkId, swarm: ContentId) -> bool {
        let ok = self.ep.open_swarm(now, conn_of(link), swarm);
        self.drive(now);
        ok
    }

    /// A message arrived on `link`.
    pub fn handle_message(&mut self, now: Instant, link: LinkId, data: &[u8]) {
        let Some(state) = self.links.get_mut(&link) else {
            return;
        };
        state.frames.push(data);
        loop {
            match state.frames.next_frame() {
                Ok(Some(body)) => self.ep.handle_frame(now, conn_of(link), body),
                Ok(None) => break,
                Err(_) => {
                    self.links.remove(&link);
                    self.ep.handle_closed(now, conn_of(link));
                    self.out.push_back(Output::Close(link));
                    break;
                }
            }
        }
        self.drive(now);
    }

    /// `link` closed.
    pub fn handle_closed(&mut self, now: Instant, link: LinkId) {
        if self.links.remove(&link).is_some() {
            self.ep.handle_closed(now, conn_of(link));
            self.drive(now);
        }
    }

    /// Time passed; runs every swarm's timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
            self.drive(now);
        }
    }

    /// The earliest time [`Driver::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }

    /// The next thing for the glue to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Carries out the endpoint's output: storage at once, transmits and news to the glue.
    fn drive(&mut self, now: Instant) {
        let mut progressed = BTreeMap::new();
        while let Some(out) = self.ep.poll_output() {
            match out {
                EpOutput::Transmit(conn, segments) => self.out.push_back(Output::Send(
                    link_of(conn),
                    pack_messages(&segments, MAX_CHANNEL_MESSAGE),
                )),
                EpOutput::Close(conn, _) => {
                    if self.links.remove(&link_of(conn)).is_some() {
                        self.out.push_back(Output::Close(link_of(conn)));
                    }
                }
                EpOutput::Action(id, action) => {
                    if self.act(now, id, action) {
                        progressed.insert(id, ());
                    }
                }
                EpOutput::Event(EndpointEvent::Swarm(id, event)) => {
                    let Some(a) = self.artifacts.get_mut(&id) else {
                        continue;
                    };
                    match event {
                        Event::Complete => self.out.push_back(Output::Complete(id)),
                        Event::PeerBanned { peer, .. } => {
                            self.out.push_back(Output::Banned(id, peer));
                        }
                        Event::PeerConnected { .. } | Event::ManifestVerified => {
                            progressed.insert(id, ());
                        }
                        Event::PieceVerified { piece, from } => a.record_source(piece, from),
                        Event::StoreFailed { piece } => {
                            if let Some(s) = a.sources.get_mut(piece as usize) {
                                *s = PieceMap::MISSING;
                            }
                        }
                    }
                }
                EpOutput::Event(
                    EndpointEvent::Connected { .. } | EndpointEvent::LinkClosed { .. },
                ) => {}
            }
        }
        for id in progressed.into_keys() {
            self.out.push_back(Output::Progress(id));
        }
    }

    /// Carries out a storage action in memory; true if a piece was stored.
    fn act(&mut self, now: Instant, id: ContentId, action: Action) -> bool {
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
                let mut ok = false;
                if let (Some(mut at), Some(a)) = (start, self.artifacts.get_mut(&id)) {
                    ok = true;
                    for seg in data.segments() {
                        match a.data.get_mut(at..at + seg.len()) {
                            Some(dst) => dst.copy_from_slice(seg),
                            None => ok = false,
                        }
                        at += seg.len();
                    }
                }
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_stored(now, piece, ok);
                }
                true
            }
            Action::StoreManifest(_) | Action::Disconnect { .. } => false,
        }
    }
}
