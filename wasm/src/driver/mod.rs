//! The browser peer's swarms, without the browser: artifacts held in memory, links carried as
//! messages, and the swarm's actions carried out at once. The browser glue feeds it data
//! channel messages and timers and sends what it returns; tests feed it directly.

mod artifacts;
mod memory;
mod types;

use std::collections::{BTreeMap, VecDeque};

use pollen_core::{
    ContentId, Instant, PeerId,
    endpoint::{ConnId, Endpoint, EndpointConfig, EndpointEvent, Output as EpOutput},
    swarm::{Event, LinkId, Swarm, SwarmConfig},
    wire::{FrameBuffer, pack_messages},
};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

pub use crate::names::fit_name;
use memory::Artifact;
pub use types::{DriverError, LinkInfo, Output, PieceMap, Progress};

/// Largest data channel message sent (every browser accepts 64 KiB).
pub const MAX_CHANNEL_MESSAGE: usize = 64 * 1024;
/// Most bytes queued for a link and not yet sent before the link is dropped as too slow.
pub const MAX_UNSENT: usize = 64 << 20;
/// Largest artifact a browser peer holds (it keeps artifacts in memory).
pub const MAX_BROWSER_ARTIFACT: u64 = 2 << 30;

/// A link's frames not yet whole.
struct LinkState {
    frames: FrameBuffer,
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
            ep: Endpoint::new(EndpointConfig {
                report_sent: true,
                ..EndpointConfig::new(me)
            }),
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

    /// `bytes` of what was given for `link` ([`Output::Send`]) were handed to its channel:
    /// every sender must say so, or a swarm stops once its send window is full.
    pub fn handle_sent(&mut self, now: Instant, link: LinkId, bytes: u64) {
        if self.links.contains_key(&link) {
            self.ep.handle_sent(conn_of(link), bytes);
            self.drive(now);
        }
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
                EpOutput::Event(EndpointEvent::Connected { conn, peer, .. }) => {
                    self.out.push_back(Output::Ready(link_of(conn), peer));
                }
                EpOutput::Event(EndpointEvent::LinkClosed { .. }) => {}
            }
        }
        for id in progressed.into_keys() {
            self.out.push_back(Output::Progress(id));
        }
    }
}
