//! One sans-IO endpoint for every driver: the swarms by content id, the connections, and the
//! routing between them.
//!
//! A connection (a TCP stream, a WebRTC data channel, a simulated link) joins two peers and
//! carries every swarm they share. It opens with a connection handshake (a
//! [`Handshake`] without a swarm), then each swarm gets a channel: [`Message::OpenChannel`]
//! names the swarm, [`Message::Channel`] frames carry the swarm's own frames, and
//! [`Message::CloseChannel`] or [`Message::RefuseChannel`] end it. Each end numbers the
//! direction it sends on, so opening needs no agreement; an open that answers the other's
//! names it, and two unasked opens of one swarm merge into one link.
//!
//! Of two connections between the same peers, both ends keep the same one (see
//! [`Endpoint::handle_frame`]). Drivers do IO, storage and timers, and nothing else: they feed
//! inputs (`connect`, `handle_frame`, `handle_sent`, `handle_closed`, `handle_timeout`, the
//! swarms' storage results through [`Endpoint::swarm_mut`]) and carry out
//! [`Endpoint::poll_output`] until it is empty.

mod conn;
mod mux;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;

use crate::{
    ContentId, Instant, PeerId,
    swarm::{Action, DisconnectReason, Event, LinkId, Swarm},
    wire::{self, DecodeError, Handshake, Kind, Message, encode_own as encode},
};
use conn::{Channel, Conn};

/// A connection, numbered by the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Who we are on every connection.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our identity.
    pub peer_id: PeerId,
    /// The TCP port we accept connections on, if any (sent in the handshake).
    pub listen_port: Option<u16>,
    /// How long a connection may take to send its handshake.
    pub handshake_timeout: Duration,
    /// The driver reports what it sent ([`Endpoint::handle_sent`]), as swarms with a
    /// [`crate::swarm::SwarmConfig::send_window`] need.
    pub report_sent: bool,
}

impl EndpointConfig {
    /// The defaults for `peer_id`.
    pub fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            listen_port: None,
            handshake_timeout: Duration::from_secs(10),
            report_sent: false,
        }
    }
}

/// Something the driver must do or report.
#[derive(Debug)]
pub enum Output {
    /// Send these bytes on the connection, in order (whole frames).
    Transmit(ConnId, Vec<Bytes>),
    /// Carry out a swarm's storage action (never [`Action::Disconnect`]: links are the
    /// endpoint's).
    Action(ContentId, Action),
    /// Close the connection; the endpoint has forgotten it.
    Close(ConnId, CloseReason),
    /// Something happened.
    Event(EndpointEvent),
}

/// What happened, for the driver's bookkeeping and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A connection's handshake arrived.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: PeerId,
        /// The TCP port the peer accepts connections on, if it said.
        listen_port: Option<u16>,
    },
    /// A swarm's event.
    Swarm(ContentId, Event),
    /// A swarm's link on a connection ended.
    LinkClosed {
        /// The connection.
        conn: ConnId,
        /// The swarm.
        swarm: ContentId,
        /// Why.
        reason: LinkEnd,
    },
}

/// Why a swarm's link on a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEnd {
    /// Our swarm closed it.
    Swarm(DisconnectReason),
    /// The peer closed it.
    ByPeer,
    /// The peer does not hold the swarm.
    Refused,
    /// The connection closed, for this reason (`None`: closed by the driver or the network).
    Connection(Option<CloseReason>),
    /// The swarm was removed or replaced.
    Removed,
}

/// Why the endpoint closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer broke the protocol.
    Protocol,
    /// The peer is us.
    SelfConnection,
    /// Another connection joins us to the same peer.
    Duplicate,
    /// The peer did not send its handshake in time.
    HandshakeTimeout,
    /// The connection used up its channel numbers.
    ChannelsExhausted,
}

/// The swarms and connections of one peer.
pub struct Endpoint {
    cfg: EndpointConfig,
    swarms: BTreeMap<ContentId, Swarm>,
    conns: BTreeMap<ConnId, Conn>,
    /// Each swarm link's connection and swarm.
    links: BTreeMap<LinkId, (ConnId, ContentId)>,
    next_conn: u64,
    next_link: u64,
    /// Swarms that may have output.
    dirty: BTreeSet<ContentId>,
    /// Connections with bytes in their outbox, in order.
    ready: VecDeque<ConnId>,
    out: VecDeque<Output>,
    /// Connections waiting for their handshake, by deadline.
    handshakes: BTreeSet<(Instant, ConnId)>,
    /// The time of the latest input.
    now: Instant,
}

impl Endpoint {
    /// An endpoint with no swarm and no connection.
    pub fn new(cfg: EndpointConfig) -> Self {
        Self {
            cfg,
            swarms: BTreeMap::new(),
            conns: BTreeMap::new(),
            links: BTreeMap::new(),
            next_conn: 0,
            next_link: 0,
            dirty: BTreeSet::new(),
            ready: VecDeque::new(),
            out: VecDeque::new(),
            handshakes: BTreeSet::new(),
            now: Instant::from_micros(0),
        }
    }

    /// Our identity.
    pub fn peer_id(&self) -> PeerId {
        self.cfg.peer_id
    }

    // ----- swarms -----

    /// Adds a swarm; a swarm of the same artifact is replaced (its links closed) and returned.
    pub fn add_swarm(&mut self, now: Instant, swarm: Swarm) -> Option<Swarm> {
        self.now = self.now.max(now);
        let id = swarm.id();
        let old = self.remove_swarm(now, &id);
        self.swarms.insert(id, swarm);
        self.dirty.insert(id);
        old
    }

    /// Removes a swarm, closing its links; its pending actions are dropped.
    pub fn remove_swarm(&mut self, now: Instant, id: &ContentId) -> Option<Swarm> {
        self.unlink_swarm(now, id);
        self.dirty.remove(id);
        self.swarms.remove(id)
    }

    /// Closes every link of a swarm (and cancels its pending opens), keeping the swarm.
    pub fn unlink_swarm(&mut self, now: Instant, id: &ContentId) {
        self.now = self.now.max(now);
        let conns: Vec<ConnId> = self.swarm_conns(id).collect();
        for conn in conns {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.pending.remove(id);
            }
            self.close_channel(now, conn, id, LinkEnd::Removed);
        }
    }

    /// A swarm.
    pub fn swarm(&self, id: &ContentId) -> Option<&Swarm> {
        self.swarms.get(id)
    }

    /// A swarm, to give it storage results; its output is collected by the next
    /// [`Endpoint::poll_output`].
    pub fn swarm_mut(&mut self, id: &ContentId) -> Option<&mut Swarm> {
        let swarm = self.swarms.get_mut(id)?;
        self.dirty.insert(*id);
        Some(swarm)
    }

    // ----- connections -----

    /// A connection opened (`dialed`: we opened it); we send our handshake on it.
    pub fn connect(&mut self, now: Instant, dialed: bool) -> ConnId {
        self.now = self.now.max(now);
        self.next_conn += 1;
        let id = ConnId(self.next_conn);
        let mut conn = Conn::new(now, dialed, self.cfg.report_sent);
        conn.push_own(encode(&Message::Handshake(Handshake {
            peer_id: self.cfg.peer_id,
            swarm: None,
            listen_port: self.cfg.listen_port,
        })));
        self.conns.insert(id, conn);
        self.handshakes
            .insert((now + self.cfg.handshake_timeout, id));
        self.ready.push_back(id);
        id
    }

    /// Links swarm `id` on the connection (once its handshake arrived); false if there is no
    /// such swarm or connection.
    pub fn open_swarm(&mut self, now: Instant, conn: ConnId, id: ContentId) -> bool {
        self.now = self.now.max(now);
        if !self.swarms.contains_key(&id) {
            return false;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if c.channels.contains_key(&id) {
            return true;
        }
        if c.peer.is_none() {
            c.pending.insert(id);
            return true;
        }
        self.open_channel(now, conn, id, None);
        true
    }

    /// The connection ended (closed by the peer, the network or the driver).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        self.forget_conn(now, conn, None);
    }

    /// One frame body (as [`wire::split_frame`] gives it) arrived on the connection.
    ///
    /// The first must be the peer's connection handshake. Of two connections to one peer, both
    /// ends keep the one the smaller peer id opened while the older has carried no block and
    /// is younger than the handshake timeout; otherwise the older stays, so a peer claiming
    /// another's id cannot take over a connection in use.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, body: Bytes) {
        self.now = self.now.max(now);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let ready = c.peer.is_some();
        match wire::decode(&body) {
            Err(DecodeError::UnknownKind(_)) => {}
            Err(_) => self.close(now, conn, CloseReason::Protocol),
            Ok(Message::Handshake(hs)) if !ready && hs.swarm.is_none() => {
                self.on_hello(now, conn, hs);
            }
            Ok(_) if !ready => self.close(now, conn, CloseReason::Protocol),
            Ok(Message::Channel { channel, frames }) => {
                self.on_channel(now, conn, channel, &body, frames);
            }
            Ok(Message::OpenChannel {
                channel,
                swarm,
                answers,
            }) => self.on_open(now, conn, channel, swarm, answers),
            Ok(Message::CloseChannel { channel }) => self.on_close(now, conn, channel),
            Ok(Message::RefuseChannel { channel }) => self.on_refuse(now, conn, channel),
            Ok(_) => self.close(now, conn, CloseReason::Protocol),
        }
    }

    /// A `Block` frame arrived inside a `Channel` frame on the connection, its data carried
    /// apart from the frame (see [`wire::decode_channel_header`] and
    /// [`wire::decode_block_header`]): the same as [`Endpoint::handle_frame`] with a `Channel`
    /// frame holding only that block.
    pub fn handle_block(
        &mut self,
        now: Instant,
        conn: ConnId,
        channel: u32,
        piece: u32,
        offset: u32,
        data: Bytes,
    ) {
        self.now = self.now.max(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.peer.is_none() {
            self.close(now, conn, CloseReason::Protocol);
            return;
        }
        // Frames of a channel we closed since are dropped.
        let Some(id) = c.inbound.get(&channel).copied() else {
            return;
        };
        let Some(link) = c.channels.get(&id).map(|ch| ch.link) else {
            return;
        };
        c.carried_blocks = true;
        if let Some(s) = self.swarms.get_mut(&id) {
            s.handle_block(now, link, piece, offset, data);
            self.dirty.insert(id);
        }
    }

    /// The driver put `bytes` of what it was given for the connection on the wire.
    pub fn handle_sent(&mut self, conn: ConnId, bytes: u64) {
        let Self {
            conns,
            swarms,
            dirty,
            ..
        } = self;
        let Some(c) = conns.get_mut(&conn) else {
            return;
        };
        c.sent(bytes, |id, link, n| {
            if let Some(s) = swarms.get_mut(&id) {
                s.handle_sent(link, n);
                dirty.insert(id);
            }
        });
    }

    /// Time passed: late handshakes and every swarm's due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let late: Vec<ConnId> = self
            .handshakes
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, c)| c)
            .collect();
        for conn in late {
            self.close(now, conn, CloseReason::HandshakeTimeout);
        }
        for (id, s) in &mut self.swarms {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
                self.dirty.insert(*id);
            }
        }
    }

    /// When [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.swarms
            .values()
            .filter_map(Swarm::poll_timeout)
            .chain(self.handshakes.first().map(|&(at, _)| at))
            .min()
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            while let Some(id) = self.dirty.pop_first() {
                self.drain_swarm(id);
            }
            if let Some(o) = self.out.pop_front() {
                return Some(o);
            }
            let conn = self.ready.pop_front()?;
            if let Some(c) = self.conns.get_mut(&conn)
                && !c.outbox.is_empty()
            {
                return Some(Output::Transmit(conn, core::mem::take(&mut c.outbox)));
            }
        }
    }

    // ----- queries -----

    /// The peer at the other end, once its handshake arrived.
    pub fn conn_peer(&self, conn: ConnId) -> Option<PeerId> {
        self.conns.get(&conn)?.peer
    }

    /// The ready connection to `peer`, if any.
    pub fn conn_to(&self, peer: &PeerId) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.peer.as_ref() == Some(peer))
            .map(|(&k, _)| k)
    }

    /// The connection a swarm link runs on.
    pub fn link_conn(&self, link: LinkId) -> Option<ConnId> {
        self.links.get(&link).map(|&(c, _)| c)
    }

    /// The connections swarm `id` is linked (or about to be) on.
    pub fn swarm_conns(&self, id: &ContentId) -> impl Iterator<Item = ConnId> + '_ {
        let id = *id;
        self.conns
            .iter()
            .filter(move |(_, c)| c.channels.contains_key(&id) || c.pending.contains(&id))
            .map(|(&k, _)| k)
    }

    /// The swarms linked (or about to be) on a connection.
    pub fn conn_swarms(&self, conn: ConnId) -> Vec<ContentId> {
        self.conns.get(&conn).map_or_else(Vec::new, |c| {
            c.channels.keys().chain(c.pending.iter()).copied().collect()
        })
    }

    /// How many connections are open.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections still waiting for their handshake.
    pub fn unready_count(&self) -> usize {
        self.handshakes.len()
    }

    // ----- internals -----

    fn on_hello(&mut self, now: Instant, conn: ConnId, hs: Handshake) {
        if hs.peer_id == self.cfg.peer_id {
            self.close(now, conn, CloseReason::SelfConnection);
            return;
        }
        let timeout = self.cfg.handshake_timeout;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.handshakes.remove(&(c.opened_at + timeout, conn));
        c.peer = Some(hs.peer_id);
        c.listen_port = hs.listen_port;
        c.ready_at = Some(now);
        let new_dialed = c.dialed;
        let existing = self
            .conns
            .iter()
            .find(|&(&k, o)| k != conn && o.peer == Some(hs.peer_id))
            .map(|(&k, o)| {
                let fresh = !o.carried_blocks && o.ready_at.is_some_and(|at| now < at + timeout);
                let ours: Vec<ContentId> = o
                    .channels
                    .iter()
                    .filter(|(_, ch)| ch.ours)
                    .map(|(id, _)| *id)
                    .chain(o.pending.iter().copied())
                    .collect();
                (k, fresh, o.dialed, ours)
            });
        if let Some((old, fresh, old_dialed, ours)) = existing {
            let keep_ours = self.cfg.peer_id < hs.peer_id;
            if fresh && new_dialed == keep_ours && old_dialed != keep_ours {
                // The new one replaces the old: our swarms on it move over.
                self.close(now, old, CloseReason::Duplicate);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.pending.extend(ours);
                }
            } else {
                let moved: Vec<ContentId> = self
                    .conns
                    .get(&conn)
                    .map(|c| c.pending.iter().copied().collect())
                    .unwrap_or_default();
                self.close(now, conn, CloseReason::Duplicate);
                for id in moved {
                    self.open_swarm(now, old, id);
                }
                return;
            }
        }
        self.out.push_back(Output::Event(EndpointEvent::Connected {
            conn,
            peer: hs.peer_id,
            listen_port: hs.listen_port,
        }));
        let pending = self
            .conns
            .get_mut(&conn)
            .map(|c| core::mem::take(&mut c.pending))
            .unwrap_or_default();
        for id in pending {
            if self.swarms.contains_key(&id) {
                self.open_channel(now, conn, id, None);
            }
        }
    }

    /// Opens our direction of swarm `id`'s channel, answering the peer's `inbound` if given.
    fn open_channel(&mut self, now: Instant, conn: ConnId, id: ContentId, inbound: Option<u32>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(out) = c.new_channel() else {
            self.close(now, conn, CloseReason::ChannelsExhausted);
            return;
        };
        self.next_link += 1;
        let link = LinkId(self.next_link);
        c.channels.insert(
            id,
            Channel {
                link,
                out,
                inbound,
                glare: false,
                ours: inbound.is_none(),
            },
        );
        if let Some(n) = inbound {
            c.inbound.insert(n, id);
        }
        c.push_own(encode(&Message::OpenChannel {
            channel: out,
            swarm: id,
            answers: inbound,
        }));
        self.ready.push_back(conn);
        self.links.insert(link, (conn, id));
        if let Some(s) = self.swarms.get_mut(&id) {
            s.handle_connected(now, link);
            self.dirty.insert(id);
        }
    }

    fn on_open(
        &mut self,
        now: Instant,
        conn: ConnId,
        channel: u32,
        swarm: ContentId,
        answers: Option<u32>,
    ) {
        let known = self.swarms.contains_key(&swarm);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.inbound.contains_key(&channel) {
            self.close(now, conn, CloseReason::Protocol);
            return;
        }
        match (answers, c.channels.get_mut(&swarm)) {
            (None, _) if !known => {
                c.push_own(encode(&Message::RefuseChannel { channel }));
                self.ready.push_back(conn);
            }
            (None, None) => self.open_channel(now, conn, swarm, Some(channel)),
            // Both opened it at once: one link.
            (None, Some(ch)) if ch.inbound.is_none() => {
                ch.inbound = Some(channel);
                ch.glare = true;
                c.inbound.insert(channel, swarm);
            }
            (Some(k), Some(ch)) if ch.out == k && ch.inbound.is_none() => {
                ch.inbound = Some(channel);
                c.inbound.insert(channel, swarm);
            }
            (None, Some(_)) => self.close(now, conn, CloseReason::Protocol),
            (Some(k), Some(ch)) if ch.out == k => self.close(now, conn, CloseReason::Protocol),
            // It answers a channel we closed since: our close is on its way; drop its frames.
            (Some(_), _) => {}
        }
    }

    fn on_channel(
        &mut self,
        now: Instant,
        conn: ConnId,
        channel: u32,
        body: &Bytes,
        frames: &[u8],
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // Frames of a channel we closed since are dropped.
        let Some(id) = c.inbound.get(&channel).copied() else {
            return;
        };
        let Some(link) = c.channels.get(&id).map(|ch| ch.link) else {
            return;
        };
        if mux::check(frames).is_err() {
            self.close(now, conn, CloseReason::Protocol);
            return;
        }
        let Some(s) = self.swarms.get_mut(&id) else {
            return;
        };
        for b in mux::bodies(body, frames) {
            if b.get(1) == Some(&(Kind::Block as u8)) {
                c.carried_blocks = true;
            }
            s.handle_frame(now, link, b);
        }
        self.dirty.insert(id);
    }

    fn on_close(&mut self, now: Instant, conn: ConnId, channel: u32) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(id) = c.inbound.get(&channel).copied() else {
            return;
        };
        let Some(ch) = c.remove(&id) else {
            return;
        };
        if ch.glare {
            // The peer may take our unasked open for a new one once its close has passed it:
            // say that ours is closed too.
            c.push_own(encode(&Message::CloseChannel { channel: ch.out }));
            self.ready.push_back(conn);
        }
        self.forget_link(now, conn, id, ch.link, LinkEnd::ByPeer);
    }

    fn on_refuse(&mut self, now: Instant, conn: ConnId, channel: u32) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(id) = c.by_out(channel) else {
            return;
        };
        if let Some(ch) = c.remove(&id) {
            self.forget_link(now, conn, id, ch.link, LinkEnd::Refused);
        }
    }

    /// Closes our side of swarm `id`'s channel on `conn` and tells the swarm.
    fn close_channel(&mut self, now: Instant, conn: ConnId, id: &ContentId, reason: LinkEnd) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(ch) = c.remove(id) else {
            return;
        };
        c.push_own(encode(&Message::CloseChannel { channel: ch.out }));
        self.ready.push_back(conn);
        self.forget_link(now, conn, *id, ch.link, reason);
    }

    /// Forgets a link whose channel is gone, telling the swarm unless the swarm closed it.
    fn forget_link(
        &mut self,
        now: Instant,
        conn: ConnId,
        swarm: ContentId,
        link: LinkId,
        reason: LinkEnd,
    ) {
        self.links.remove(&link);
        if !matches!(reason, LinkEnd::Swarm(_))
            && let Some(s) = self.swarms.get_mut(&swarm)
        {
            s.handle_disconnected(now, link);
            self.dirty.insert(swarm);
        }
        self.out.push_back(Output::Event(EndpointEvent::LinkClosed {
            conn,
            swarm,
            reason,
        }));
    }

    /// Closes a connection and tells the driver to.
    fn close(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        if self.forget_conn(now, conn, Some(reason)) {
            self.out.push_back(Output::Close(conn, reason));
        }
    }

    /// Forgets a connection and its links; false if it was unknown.
    fn forget_conn(&mut self, now: Instant, conn: ConnId, reason: Option<CloseReason>) -> bool {
        let Some(c) = self.conns.remove(&conn) else {
            return false;
        };
        self.handshakes
            .remove(&(c.opened_at + self.cfg.handshake_timeout, conn));
        for (id, ch) in c.channels {
            self.forget_link(now, conn, id, ch.link, LinkEnd::Connection(reason));
        }
        // Swarms still waiting for the handshake end with it too, so drivers can dial again.
        for swarm in c.pending {
            self.out.push_back(Output::Event(EndpointEvent::LinkClosed {
                conn,
                swarm,
                reason: LinkEnd::Connection(reason),
            }));
        }
        true
    }

    /// Moves a swarm's output into the endpoint's.
    fn drain_swarm(&mut self, id: ContentId) {
        let now_closes: Vec<(ConnId, LinkId, DisconnectReason)>;
        let mut bad_conns = Vec::new();
        {
            let Some(s) = self.swarms.get_mut(&id) else {
                return;
            };
            let mut closes = Vec::new();
            loop {
                let mut busy = false;
                while let Some((link, segments)) = s.poll_transmit() {
                    busy = true;
                    let Some(&(conn, _)) = self.links.get(&link) else {
                        continue;
                    };
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    let Some(ch) = c.channels.get(&id) else {
                        continue;
                    };
                    let inner: u64 = segments.iter().map(|b| b.len() as u64).sum();
                    if c.outbox.is_empty() {
                        self.ready.push_back(conn);
                    }
                    let w = mux::wrap(ch.out, segments, &mut c.outbox);
                    c.carried_blocks |= w.blocks;
                    c.note_swarm((id, link), w.len, inner);
                }
                while let Some(action) = s.poll_action() {
                    busy = true;
                    match action {
                        Action::Disconnect { link, reason } => {
                            if let Some(&(conn, _)) = self.links.get(&link) {
                                closes.push((conn, link, reason));
                            }
                        }
                        other => self.out.push_back(Output::Action(id, other)),
                    }
                }
                while let Some(event) = s.poll_event() {
                    busy = true;
                    if let Event::PeerConnected { link, peer } = event
                        && let Some(&(conn, _)) = self.links.get(&link)
                        && self.conns.get(&conn).and_then(|c| c.peer) != Some(peer)
                    {
                        // A swarm handshake naming another peer than the connection's.
                        bad_conns.push(conn);
                    }
                    self.out
                        .push_back(Output::Event(EndpointEvent::Swarm(id, event)));
                }
                if !busy {
                    break;
                }
            }
            now_closes = closes;
        }
        for (conn, link, reason) in now_closes {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.channels.get(&id).is_some_and(|ch| ch.link == link)
                && let Some(ch) = c.remove(&id)
            {
                c.push_own(encode(&Message::CloseChannel { channel: ch.out }));
                self.ready.push_back(conn);
                self.links.remove(&link);
                self.out.push_back(Output::Event(EndpointEvent::LinkClosed {
                    conn,
                    swarm: id,
                    reason: LinkEnd::Swarm(reason),
                }));
            }
        }
        for conn in bad_conns {
            self.close(self.now, conn, CloseReason::Protocol);
        }
    }
}
