//! The node actor: owns the swarms and links, and turns swarm outputs into IO.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::Result;
use pollen_core::{
    ContentId, Hint, Instant, PeerId, Ticket,
    membership::{Holding, MemberEvent},
    signal::{Member, PeerKind},
    swarm::{Action, DisconnectReason, Event, LinkId, SPREAD_FIRST_MIN_LINKS, Swarm, SwarmConfig},
    wire::{self, Message},
};
use tokio::{
    net::TcpStream,
    sync::mpsc::{UnboundedReceiver, UnboundedSender},
    time::Instant as TokioInstant,
};

use super::{
    ApiCall, Input,
    conn::{self, ConnHandle, ConnId},
    dial::{self, AddrState},
    disk::{self, DiskHandle, DiskOp, DiskResult},
    gossip::{self, Gossip},
    tickets,
    webrtc::Command as RtcCommand,
};
use crate::{
    api_types::{
        ArtifactStatus, GetReply, HoldingStatus, MemberStatus, PeerStatus, ShareReply, Status,
    },
    store::{Artifact, Store},
};

/// Bytes a link may have handed to its writer and not yet sent (`SwarmConfig::send_window`).
const SEND_WINDOW: u64 = 256 * 1024;

/// Upload rate per upload slot, bytes per second (`SwarmConfig::slot_rate`), applied when
/// `--max-upload-rate` gives the uplink's capacity: what the simulator found best for mixed
/// and lossy links.
const SLOT_RATE: u64 = 1_000_000;

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before dialing an address again after it turned out to duplicate another link.
const REDIAL_DUPLICATE: Duration = Duration::from_secs(30);
/// How long an accepted link may take to name its swarm.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most accepted links that have not named their swarm yet.
const MAX_UNROUTED: usize = 256;

/// The node's identity and addresses.
pub(crate) struct Settings {
    pub(crate) peer_id: PeerId,
    pub(crate) listen: SocketAddr,
    pub(crate) advertise: SocketAddr,
    /// Peers to fetch every artifact from.
    pub(crate) peers: Vec<SocketAddr>,
    /// Cap on upload bandwidth, shared by all links.
    pub(crate) limiter: conn::SharedLimiter,
    /// Recycled buffers for received blocks, shared by all links.
    pub(crate) buffers: super::buffers::BufferPool,
    /// Upload cap in bytes per second, if any (advertised as capacity; load is measured
    /// against it).
    pub(crate) upload_cap: Option<u64>,
    /// Members to join the cluster through.
    pub(crate) join: Vec<SocketAddr>,
    /// WebRTC to browsers, through signaling (unless disabled).
    pub(crate) rtc: Option<super::webrtc::Rtc>,
    /// The signaling URL put in our tickets (our embedded server's), if any.
    pub(crate) signal_url: Option<String>,
}

/// Where a link goes.
#[derive(Debug, Clone, Copy)]
enum Remote {
    /// A TCP peer at this address.
    Tcp(SocketAddr),
    /// A peer over a WebRTC data channel.
    WebRtc(PeerId, PeerKind),
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::WebRtc(peer, PeerKind::Browser) => write!(f, "webrtc:browser:{peer}"),
            Self::WebRtc(peer, PeerKind::Native) => write!(f, "webrtc:native:{peer}"),
        }
    }
}

/// Most WebRTC links one incomplete artifact dials.
const MAX_RTC_DIALS: usize = 8;
/// Ticks between asking signaling again for members of an artifact still being fetched.
const RTC_REFRESH_TICKS: u64 = 5;

/// One artifact: its swarm, its disk worker, and where its peers are.
struct Entry {
    swarm: Swarm,
    disk: DiskHandle,
    /// Which disk worker `disk` is; results of others are ignored.
    generation: u64,
    ticket: Ticket,
    addrs: BTreeMap<SocketAddr, AddrState>,
    banned: Vec<PeerId>,
    error: Option<String>,
    rate: Rate,
    /// When the node started fetching it (peer exchange waits a moment before crossing zones).
    added: TokioInstant,
}

/// Recent transfer rates, from counters sampled every tick.
#[derive(Default)]
struct Rate {
    last: Option<(TokioInstant, u64, u64)>,
    down: f64,
    up: f64,
}

/// One open link.
struct Conn {
    handle: ConnHandle,
    swarm: Option<ContentId>,
    remote: Remote,
    peer: Option<PeerId>,
    /// When the link opened (an accepted link must name its swarm soon).
    opened: TokioInstant,
    /// The address we dialed, if we did.
    dialed: Option<SocketAddr>,
}

/// The node's single owner of swarm state.
pub(crate) struct Actor {
    settings: Settings,
    store: Store,
    inputs: UnboundedSender<Input>,
    started: TokioInstant,
    entries: BTreeMap<ContentId, Entry>,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    next_seed: u64,
    /// The generation the next disk worker gets.
    next_generation: u64,
    /// Seconds ticked since start.
    ticks: u64,
    gossip: Gossip,
}

impl Actor {
    /// Loads every stored artifact and saved ticket.
    pub(crate) fn start(
        settings: Settings,
        store: Store,
        inputs: UnboundedSender<Input>,
        gossip: Gossip,
    ) -> Result<Self> {
        let mut actor = Self {
            gossip,
            next_seed: u64::from_le_bytes(
                settings.peer_id.as_bytes()[..8]
                    .try_into()
                    .unwrap_or_default(),
            ),
            settings,
            store,
            inputs,
            started: TokioInstant::now(),
            entries: BTreeMap::new(),
            conns: HashMap::new(),
            next_conn: 0,
            next_generation: 0,
            ticks: 0,
        };
        let saved: BTreeMap<ContentId, Ticket> = tickets::load_all(actor.store.dir())
            .into_iter()
            .map(|t| (t.id(), t))
            .collect();
        let scan = actor.store.scan()?;
        for err in &scan.unusable {
            tracing::warn!("skipping an unusable artifact: {err}");
        }
        for id in scan.usable {
            match actor.store.open_artifact(id) {
                Ok(Some(artifact)) => {
                    if let Some(reason) = artifact.reset_reason() {
                        tracing::warn!(%id, "held pieces were reset and will be fetched again: {reason}");
                    }
                    let ticket = saved.get(&id).cloned();
                    actor.add_artifact(artifact, ticket);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%id, "cannot open: {err}"),
            }
        }
        for (id, ticket) in saved {
            if !actor.entries.contains_key(&id) {
                actor.add_download(ticket);
            }
        }
        let now = actor.now();
        let join = actor
            .settings
            .join
            .iter()
            .map(ToString::to_string)
            .collect();
        actor.gossip.membership.join(now, join);
        actor.drive_gossip();
        Ok(actor)
    }

    /// Processes inputs until every sender is gone.
    pub(crate) async fn run(mut self, mut inputs: UnboundedReceiver<Input>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(Input::Shutdown(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(input) => self.on_input(input),
                    None => return,
                },
                () = tokio::time::sleep_until(deadline) => self.on_timeouts(),
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.started.elapsed().as_micros() as u64)
    }

    fn next_deadline(&self) -> TokioInstant {
        let far = self.started + Duration::from_secs(3600 * 24 * 365);
        self.entries
            .values()
            .filter_map(|e| e.swarm.poll_timeout())
            .chain(self.gossip.membership.poll_timeout())
            .map(|at| self.started + Duration::from_micros(at.as_micros()))
            .min()
            .unwrap_or(far)
    }

    /// Tells the cluster we are leaving, and gives the news a moment to spread.
    async fn leave(&mut self) {
        let now = self.now();
        self.gossip.membership.leave(now);
        self.gossip.drain();
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.now();
            self.gossip.membership.handle_timeout(now);
            self.gossip.drain();
        }
    }

    /// Sends what membership queued and acts on its news.
    fn drive_gossip(&mut self) {
        let mut changed = false;
        for event in self.gossip.drain() {
            match event {
                MemberEvent::Joined(p) => {
                    tracing::info!(peer = %p, "member joined");
                    changed = true;
                }
                MemberEvent::Updated(_) | MemberEvent::Recovered(_) => changed = true,
                MemberEvent::Suspected(p) => tracing::info!(peer = %p, "member suspected"),
                MemberEvent::Died(p) => tracing::warn!(peer = %p, "member declared dead"),
                MemberEvent::Left(p) => tracing::info!(peer = %p, "member left"),
                MemberEvent::Refuted => tracing::info!("refuted a suspicion of this node"),
                MemberEvent::Connect(_) | MemberEvent::Disconnect(_) => {}
            }
        }
        if changed {
            self.dial_missing();
        }
    }

    /// Advertises what this node holds and how loaded its uplink is.
    fn publish_state(&mut self) {
        let holdings = self
            .entries
            .iter()
            .filter(|(_, e)| e.error.is_none())
            .map(|(id, e)| Holding {
                id: *id,
                complete: e.swarm.is_complete(),
            })
            .collect();
        let load = match self.settings.upload_cap {
            Some(cap) if cap > 0 => {
                let up: f64 = self.entries.values().map(|e| e.rate.up).sum();
                // In steps of 25%, so small wobbles are not news.
                ((up / cap as f64 * 4.0).round() as u8).min(4) * 25
            }
            _ => 0,
        };
        self.gossip.publish(holdings, load);
        self.drive_gossip();
    }

    fn config(&mut self) -> (SwarmConfig, u64) {
        let mut cfg = SwarmConfig::new(self.settings.peer_id);
        cfg.listen_port = Some(self.settings.advertise.port());
        // Every link's writer reports what it sent (`Input::Sent`).
        cfg.send_window = Some(SEND_WINDOW);
        cfg.slot_rate = Some(SLOT_RATE);
        cfg.upload_capacity = self.settings.upload_cap;
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (cfg, self.next_seed)
    }

    /// Starts serving (and, if incomplete, fetching) a stored artifact.
    fn add_artifact(&mut self, artifact: Artifact, saved: Option<Ticket>) -> ContentId {
        let id = artifact.id();
        let ticket = saved.unwrap_or_else(|| self.ticket_for(&artifact));
        let (mut cfg, seed) = self.config();
        if artifact.have().is_complete() {
            // An origin: peers spread what it sent once, so it sends about one copy (see
            // `SwarmConfig::spread_first`).
            cfg.spread_first = true;
            cfg.spread_first_min_links = SPREAD_FIRST_MIN_LINKS;
        }
        let swarm = Swarm::with_manifest(
            cfg,
            artifact.manifest().clone(),
            artifact.have().clone(),
            self.now(),
            seed,
        );
        let disk = disk::spawn(
            self.store.clone(),
            id,
            self.next_generation,
            Some(artifact),
            self.inputs.clone(),
        );
        self.insert(id, swarm, disk, ticket);
        id
    }

    /// Starts fetching an artifact the store does not have yet.
    fn add_download(&mut self, ticket: Ticket) {
        let id = ticket.id();
        let (cfg, seed) = self.config();
        let swarm = Swarm::new(cfg, &ticket, self.now(), seed);
        let disk = disk::spawn(
            self.store.clone(),
            id,
            self.next_generation,
            None,
            self.inputs.clone(),
        );
        if let Some(m) = swarm.manifest() {
            // Tiny artifacts need no manifest from anyone; create them at once.
            let _ = disk.send(DiskOp::Create(m.clone(), ticket.name().map(str::to_string)));
        }
        self.insert(id, swarm, disk, ticket);
    }

    fn insert(&mut self, id: ContentId, swarm: Swarm, disk: DiskHandle, ticket: Ticket) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let mut addrs = BTreeMap::new();
        let hinted = ticket.hints().iter().filter_map(|h| match h {
            Hint::Node(addr) => Some(*addr),
            Hint::Signal(_) => None,
        });
        for addr in hinted.chain(self.settings.peers.iter().copied()) {
            let is_self = addr == self.settings.advertise || addr == self.settings.listen;
            addrs.insert(
                addr,
                AddrState {
                    never: is_self,
                    pinned: true,
                    ..AddrState::default()
                },
            );
        }
        self.entries.insert(
            id,
            Entry {
                swarm,
                disk,
                generation,
                ticket,
                addrs,
                banned: Vec::new(),
                error: None,
                rate: Rate::default(),
                added: TokioInstant::now(),
            },
        );
        self.drive(id);
        self.publish_state();
        self.dial_missing();
        if let Some(rtc) = &self.settings.rtc
            && let Some(entry) = self.entries.get(&id)
        {
            let servers = entry
                .ticket
                .hints()
                .iter()
                .filter_map(|h| match h {
                    Hint::Signal(url) => Some(url.clone()),
                    Hint::Node(_) => None,
                })
                .collect();
            rtc.send(RtcCommand::Join { swarm: id, servers });
        }
    }

    /// The ticket this node hands out for an artifact it holds.
    fn ticket_for(&self, artifact: &Artifact) -> Ticket {
        let m = artifact.manifest();
        let mut t =
            Ticket::new(m.id(), m.layout().size()).expect("a stored artifact has a valid size");
        if let Some(name) = artifact.name() {
            t = t.clone().with_name(name).unwrap_or(t);
        }
        t = t
            .clone()
            .with_hint(Hint::Node(self.settings.advertise))
            .unwrap_or(t);
        if let Some(url) = &self.settings.signal_url {
            t = t.clone().with_hint(Hint::Signal(url.clone())).unwrap_or(t);
        }
        t
    }

    // ----- inputs -----

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Accepted(stream, remote) => {
                let unrouted = self.conns.values().filter(|c| c.swarm.is_none()).count();
                if unrouted >= MAX_UNROUTED {
                    tracing::warn!(%remote, "too many links without a handshake; refusing one");
                    return;
                }
                let conn = self.new_conn();
                let handle = spawn_link(&self.inputs, &self.settings, conn, stream);
                self.conns.insert(
                    conn,
                    Conn {
                        handle,
                        swarm: None,
                        remote: Remote::Tcp(remote),
                        peer: None,
                        opened: TokioInstant::now(),
                        dialed: None,
                    },
                );
            }
            Input::Dialed {
                swarm,
                addr,
                result,
            } => self.on_dialed(swarm, addr, result),
            Input::Frame(conn, body) => self.on_frame(conn, body),
            Input::Sent(conn, len) => {
                if let Some(id) = self.conns.get(&conn).and_then(|c| c.swarm)
                    && let Some(entry) = self.entries.get_mut(&id)
                {
                    entry.swarm.handle_sent(LinkId(conn.0), len);
                    self.drive(id);
                }
            }
            Input::Closed(conn, reason) => {
                tracing::debug!(conn = conn.0, "link closed: {reason}");
                self.drop_conn(conn, None);
            }
            Input::Disk(id, generation, result) => {
                // Results of a worker an entry no longer uses are stale.
                if self
                    .entries
                    .get(&id)
                    .is_some_and(|e| e.generation == generation)
                {
                    self.on_disk(id, result);
                }
            }
            Input::Api(call) => self.on_api(call),
            Input::Gossip(from, bytes) => {
                let now = self.now();
                if let Err(err) =
                    self.gossip
                        .membership
                        .handle_packet(now, &from.to_string(), &bytes)
                {
                    tracing::debug!(%from, "refused a gossip packet: {err}");
                }
                self.drive_gossip();
            }
            Input::RtcMembers {
                server,
                swarm,
                members,
            } => self.on_rtc_members(server, swarm, members),
            Input::RtcOpened {
                swarm,
                peer,
                kind,
                dc,
                pc,
            } => self.on_rtc_opened(swarm, peer, kind, dc, pc),
            // Handled by the run loop.
            Input::Shutdown(_) => {}
        }
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    fn on_dialed(&mut self, id: ContentId, addr: SocketAddr, result: std::io::Result<TcpStream>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let state = entry.addrs.entry(addr).or_default();
        state.dialing = false;
        match result {
            // A link to this peer opened meanwhile (it dialed us): keep that one.
            Ok(_) if state.conn.is_some() => {}
            Ok(stream) => {
                let conn = ConnId(self.next_conn + 1);
                self.next_conn += 1;
                state.conn = Some(conn);
                let handle = spawn_link(&self.inputs, &self.settings, conn, stream);
                self.conns.insert(
                    conn,
                    Conn {
                        handle,
                        swarm: Some(id),
                        remote: Remote::Tcp(addr),
                        peer: None,
                        opened: TokioInstant::now(),
                        dialed: Some(addr),
                    },
                );
                let now = self.now();
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.swarm.handle_dialed(now, LinkId(conn.0));
                }
                self.drive(id);
            }
            Err(err) => {
                tracing::debug!(%addr, "dial failed: {err}");
                state.back_off();
            }
        }
    }

    fn on_frame(&mut self, conn: ConnId, body: bytes::Bytes) {
        let now = self.now();
        let link = LinkId(conn.0);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let id = match c.swarm {
            Some(id) => id,
            None => {
                // An accepted link: its handshake names the swarm it wants.
                let wanted = match wire::decode(&body) {
                    Ok(Message::Handshake(hs)) => hs.swarm.map(|s| (s, hs.listen_port)),
                    _ => None,
                };
                let Some((id, listen_port)) = wanted.filter(|(s, _)| self.entries.contains_key(s))
                else {
                    self.drop_conn(conn, None);
                    return;
                };
                c.swarm = Some(id);
                let remote = c.remote;
                if let Some(entry) = self.entries.get_mut(&id) {
                    // If we meant to dial this peer, the link it opened will do.
                    if let (Some(port), Remote::Tcp(remote)) = (listen_port, remote) {
                        let addr = SocketAddr::new(remote.ip(), port);
                        if let Some(state) = entry.addrs.get_mut(&addr) {
                            state.conn.get_or_insert(conn);
                        }
                    }
                    entry.swarm.handle_connected(now, link);
                }
                id
            }
        };
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.swarm.handle_frame(now, link, body);
        }
        self.drive(id);
    }

    fn on_disk(&mut self, id: ContentId, result: DiskResult) {
        let now = self.now();
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        match result {
            DiskResult::Read(piece, data) => entry.swarm.handle_piece_read(now, piece, data),
            DiskResult::ReadFailed(piece) => entry.swarm.handle_piece_read_failed(now, piece),
            DiskResult::Checked(checked) => entry.swarm.handle_piece_checked(now, checked),
            DiskResult::Written(piece, Ok(())) => entry.swarm.handle_piece_stored(now, piece, true),
            DiskResult::Written(piece, Err(err)) => {
                tracing::error!(%id, piece, "cannot store: {err}");
                entry.error = Some(err);
                entry.swarm.handle_piece_stored(now, piece, false);
                self.stop_fetching(id);
            }
            DiskResult::CreateFailed(err) => {
                tracing::error!(%id, "cannot create the artifact: {err}");
                entry.error = Some(err);
                self.stop_fetching(id);
            }
        }
        self.drive(id);
    }

    /// After a storage failure: close the artifact's links and stop dialing for it.
    fn stop_fetching(&mut self, id: ContentId) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.swarm == Some(id))
            .map(|(&k, _)| k)
            .collect();
        for conn in conns {
            self.drop_conn(conn, None);
        }
        if let Some(entry) = self.entries.get_mut(&id) {
            for state in entry.addrs.values_mut() {
                state.never = true;
            }
        }
    }

    fn on_timeouts(&mut self) {
        let now = self.now();
        if self
            .gossip
            .membership
            .poll_timeout()
            .is_some_and(|t| t <= now)
        {
            self.gossip.membership.handle_timeout(now);
            self.drive_gossip();
        }
        let due: Vec<ContentId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.swarm.poll_timeout().is_some_and(|t| t <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.swarm.handle_timeout(now);
            }
            self.drive(id);
        }
    }

    fn on_tick(&mut self) {
        let at = TokioInstant::now();
        for entry in self.entries.values_mut() {
            let stats = entry.swarm.stats();
            if let Some((t, down, up)) = entry.rate.last {
                let secs = at.duration_since(t).as_secs_f64().max(1e-3);
                let sample_down = (stats.downloaded - down) as f64 / secs;
                let sample_up = (stats.uploaded - up) as f64 / secs;
                entry.rate.down = 0.5 * entry.rate.down + 0.5 * sample_down;
                entry.rate.up = 0.5 * entry.rate.up + 0.5 * sample_up;
            }
            entry.rate.last = Some((at, stats.downloaded, stats.uploaded));
        }
        let stale: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.swarm.is_none() && at.duration_since(c.opened) > ROUTE_TIMEOUT)
            .map(|(&k, _)| k)
            .collect();
        for conn in stale {
            self.drop_conn(conn, None);
        }
        self.publish_state();
        self.dial_missing();
        self.ticks += 1;
        if self.ticks.is_multiple_of(RTC_REFRESH_TICKS)
            && let Some(rtc) = &self.settings.rtc
        {
            for (&id, entry) in &self.entries {
                let links = self.conns.values().filter(|c| c.swarm == Some(id)).count();
                if !entry.swarm.is_complete() && entry.error.is_none() && links < MAX_RTC_DIALS {
                    rtc.send(RtcCommand::Refresh(id));
                }
            }
        }
    }

    /// Dials members that signaling found for an artifact we are fetching. Native members are
    /// reached over TCP through gossip; this is how browsers are found.
    fn on_rtc_members(&mut self, server: String, id: ContentId, members: Vec<Member>) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let Some(rtc) = &self.settings.rtc else {
            return;
        };
        if entry.swarm.is_complete() || entry.error.is_some() {
            return;
        }
        let linked: Vec<PeerId> = self
            .conns
            .values()
            .filter(|c| c.swarm == Some(id))
            .filter_map(|c| match c.remote {
                Remote::WebRtc(p, _) => Some(p),
                Remote::Tcp(_) => c.peer,
            })
            .collect();
        let mut rtc_links = self
            .conns
            .values()
            .filter(|c| c.swarm == Some(id) && matches!(c.remote, Remote::WebRtc(..)))
            .count();
        for m in members {
            if rtc_links >= MAX_RTC_DIALS {
                break;
            }
            if m.kind != PeerKind::Browser
                || m.peer == self.settings.peer_id
                || linked.contains(&m.peer)
                || entry.banned.contains(&m.peer)
            {
                continue;
            }
            rtc_links += 1;
            rtc.send(RtcCommand::Dial {
                swarm: id,
                peer: m.peer,
                server: server.clone(),
            });
        }
    }

    /// A data channel opened: it becomes a link of the artifact's swarm.
    fn on_rtc_opened(
        &mut self,
        id: ContentId,
        peer: PeerId,
        kind: PeerKind,
        dc: Arc<dyn webrtc::data_channel::DataChannel>,
        pc: Arc<dyn webrtc::peer_connection::PeerConnection>,
    ) {
        if !self.entries.contains_key(&id) {
            tokio::spawn(async move {
                let _ = pc.close().await;
            });
            return;
        }
        let conn = self.new_conn();
        let handle = super::webrtc::link::spawn(
            conn,
            dc,
            pc,
            self.inputs.clone(),
            self.settings.limiter.clone(),
        );
        self.conns.insert(
            conn,
            Conn {
                handle,
                swarm: Some(id),
                remote: Remote::WebRtc(peer, kind),
                peer: None,
                opened: TokioInstant::now(),
                dialed: None,
            },
        );
        let now = self.now();
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.swarm.handle_connected(now, LinkId(conn.0));
        }
        self.drive(id);
    }

    /// Dials the known addresses of incomplete artifacts that have no link: the ticket's,
    /// `--peer`s, and the members gossip says hold the artifact (see [`gossip::sources`]), up
    /// to a cap on links ([`dial::to_dial`]).
    fn dial_missing(&mut self) {
        let now = TokioInstant::now();
        let me = [self.settings.advertise, self.settings.listen];
        for (&id, entry) in &mut self.entries {
            if entry.swarm.is_complete() || entry.error.is_some() {
                continue;
            }
            let sources = gossip::sources(
                &self.gossip.membership,
                &id,
                now.duration_since(entry.added),
            );
            for &addr in &sources.dial {
                entry.addrs.entry(addr).or_insert_with(|| AddrState {
                    never: me.contains(&addr),
                    ..AddrState::default()
                });
            }
            let linked = self.conns.values().filter(|c| c.swarm == Some(id)).count();
            for addr in dial::to_dial(&entry.addrs, &sources, linked, now) {
                let Some(state) = entry.addrs.get_mut(&addr) else {
                    continue;
                };
                state.dialing = true;
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    let result =
                        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                            Ok(r) => r,
                            Err(_) => Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "dial timed out",
                            )),
                        };
                    let _ = inputs.send(Input::Dialed {
                        swarm: id,
                        addr,
                        result,
                    });
                });
            }
        }
    }

    /// Carries out everything a swarm asks for after an input.
    fn drive(&mut self, id: ContentId) {
        loop {
            let Some(entry) = self.entries.get_mut(&id) else {
                return;
            };
            if let Some((link, bytes)) = entry.swarm.poll_transmit() {
                let conn = ConnId(link.0);
                let stuck = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.handle.send(bytes).is_err());
                if stuck {
                    tracing::debug!(
                        conn = conn.0,
                        "peer is not reading what we send; dropping it"
                    );
                    self.drop_conn(conn, None);
                }
                continue;
            }
            if let Some(action) = entry.swarm.poll_action() {
                let sent = match action {
                    Action::ReadPiece { piece } => entry.disk.send(DiskOp::Read(piece)),
                    Action::CheckPiece(check) => entry.disk.check(check),
                    Action::StorePiece { piece, data } => {
                        entry.disk.send(DiskOp::Write(piece, data))
                    }
                    Action::StoreManifest(m) => {
                        let name = entry.ticket.name().map(str::to_string);
                        entry.disk.send(DiskOp::Create(m, name))
                    }
                    Action::Disconnect { link, reason } => {
                        self.drop_conn(ConnId(link.0), Some(reason));
                        Ok(())
                    }
                };
                if sent.is_err() {
                    // The disk worker is gone: nothing sent to it will ever complete.
                    tracing::error!(%id, "the disk worker stopped; no longer fetching");
                    if let Some(entry) = self.entries.get_mut(&id) {
                        entry
                            .error
                            .get_or_insert_with(|| "the disk worker stopped".into());
                    }
                    self.stop_fetching(id);
                }
                continue;
            }
            if let Some(event) = entry.swarm.poll_event() {
                self.on_event(id, event);
                continue;
            }
            return;
        }
    }

    fn on_event(&mut self, id: ContentId, event: Event) {
        match event {
            Event::PeerConnected { link, peer } => {
                let mut dialed = None;
                if let Some(c) = self.conns.get_mut(&ConnId(link.0)) {
                    c.peer = Some(peer);
                    dialed = c.dialed;
                }
                if let Some(state) =
                    dialed.and_then(|a| self.entries.get_mut(&id)?.addrs.get_mut(&a))
                {
                    state.failures = 0;
                }
                tracing::debug!(%id, %peer, "peer connected");
            }
            Event::PeerBanned { peer, piece } => {
                tracing::warn!(%id, %peer, ?piece, "banned a peer that sent data failing verification");
                if let Some(e) = self.entries.get_mut(&id) {
                    e.banned.push(peer);
                }
            }
            Event::Complete => {
                tracing::info!(%id, "complete");
                self.publish_state();
            }
            Event::ManifestVerified => tracing::debug!(%id, "manifest verified"),
            Event::StoreFailed { piece } => tracing::debug!(%id, piece, "store failed"),
            Event::PieceVerified { .. } => {}
        }
    }

    /// Closes a link and forgets it everywhere.
    fn drop_conn(&mut self, conn: ConnId, reason: Option<DisconnectReason>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        c.handle.close();
        let Some(id) = c.swarm else {
            return;
        };
        let now = self.now();
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if reason.is_none() {
            // Closed from outside: the swarm must forget it too.
            entry.swarm.handle_disconnected(now, LinkId(conn.0));
        }
        for state in entry.addrs.values_mut().filter(|s| s.conn == Some(conn)) {
            state.conn = None;
            match reason {
                Some(DisconnectReason::SelfConnection | DisconnectReason::Banned) => {
                    state.never = true;
                }
                Some(DisconnectReason::Duplicate) => {
                    state.retry_at = Some(TokioInstant::now() + REDIAL_DUPLICATE);
                }
                _ => state.back_off(),
            }
        }
        if reason.is_none() {
            self.drive(id);
        }
    }

    // ----- API -----

    fn on_api(&mut self, call: ApiCall) {
        match call {
            ApiCall::AddSeed(artifact, reply) => {
                // A download of the same artifact may be running: close its links first, so
                // none is left talking to a swarm that no longer knows it.
                let old: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.swarm == Some(artifact.id()))
                    .map(|(&k, _)| k)
                    .collect();
                for conn in old {
                    self.drop_conn(conn, None);
                }
                let id = self.add_artifact(*artifact, None);
                let _ = reply.send(self.share_reply(id));
            }
            ApiCall::TicketFor(id, reply) => {
                let result = match self.entries.get(&id) {
                    Some(e) if e.swarm.is_complete() => Ok(self.share_reply(id)),
                    Some(_) => Err("this artifact is still being downloaded by the node".into()),
                    None => Err("the node does not hold this artifact".into()),
                };
                let _ = reply.send(result);
            }
            ApiCall::Get(ticket, reply) => {
                let id = ticket.id();
                if !self.entries.contains_key(&id) {
                    if let Err(err) = tickets::save(self.store.dir(), &ticket) {
                        let _ = reply.send(Err(format!("cannot save the ticket: {err}")));
                        return;
                    }
                    self.join_through_hints(&ticket);
                    self.add_download(ticket);
                }
                let _ = reply.send(Ok(GetReply { id: id.to_string() }));
            }
            ApiCall::Status(reply) => {
                let _ = reply.send(self.status());
            }
            ApiCall::Export(id, path, reply) => match self.entries.get(&id) {
                Some(e) if e.swarm.is_complete() => {
                    let _ = e.disk.send(DiskOp::Export(path, reply));
                }
                Some(_) => {
                    let _ = reply.send(Err("the artifact is not complete yet".into()));
                }
                None => {
                    let _ = reply.send(Err("the node does not hold this artifact".into()));
                }
            },
        }
    }

    fn share_reply(&self, id: ContentId) -> ShareReply {
        let ticket = self
            .entries
            .get(&id)
            .map(|e| e.ticket.to_string())
            .unwrap_or_default();
        let size = self
            .entries
            .get(&id)
            .map(|e| e.ticket.size())
            .unwrap_or_default();
        ShareReply {
            id: id.to_string(),
            size,
            ticket,
        }
    }

    fn status(&self) -> Status {
        let artifacts = self
            .entries
            .iter()
            .map(|(id, e)| {
                let stats = e.swarm.stats();
                let peers = stats
                    .links
                    .iter()
                    .filter_map(|l| {
                        let peer = l.peer?;
                        let conn = self.conns.get(&ConnId(l.link.0))?;
                        Some(PeerStatus {
                            peer_id: peer.to_string(),
                            zone: self
                                .gossip
                                .membership
                                .member(&peer)
                                .map(|m| m.state.zone.clone()),
                            addr: conn.remote.to_string(),
                            pieces: l.peer_pieces,
                            downloaded: l.downloaded,
                            uploaded: l.uploaded,
                        })
                    })
                    .collect();
                ArtifactStatus {
                    id: id.to_string(),
                    name: e.ticket.name().map(str::to_string),
                    size: e.ticket.size(),
                    pieces: stats.pieces,
                    have_pieces: stats.have,
                    have_bytes: stats.have_bytes,
                    complete: e.swarm.is_complete(),
                    has_manifest: stats.has_manifest,
                    downloaded: stats.downloaded,
                    uploaded: stats.uploaded,
                    download_rate: e.rate.down as u64,
                    upload_rate: e.rate.up as u64,
                    peers,
                    banned: e.banned.iter().map(ToString::to_string).collect(),
                    error: e.error.clone(),
                    ticket: e.ticket.to_string(),
                }
            })
            .collect();
        let members = self
            .gossip
            .membership
            .members()
            .map(|m| MemberStatus {
                peer_id: m.id.to_string(),
                status: gossip::status_word(m.status).to_string(),
                zone: m.state.zone.clone(),
                addr: m.state.addrs.first().cloned(),
                holds: m
                    .state
                    .holdings
                    .iter()
                    .map(|h| HoldingStatus {
                        id: h.id.to_string(),
                        complete: h.complete,
                    })
                    .collect(),
            })
            .collect();
        Status {
            peer_id: self.settings.peer_id.to_string(),
            listen: self.settings.listen.to_string(),
            advertise: self.settings.advertise.to_string(),
            zone: self.gossip.membership.state().zone.clone(),
            signal_url: self.settings.signal_url.clone(),
            artifacts,
            members,
        }
    }

    /// A ticket's node hints double as ways into the cluster when we know no member yet.
    fn join_through_hints(&mut self, ticket: &Ticket) {
        if self.gossip.membership.present_count() > 0 {
            return;
        }
        let addrs: Vec<String> = ticket
            .hints()
            .iter()
            .filter_map(|h| match h {
                Hint::Node(addr) if *addr != self.settings.advertise => Some(addr.to_string()),
                _ => None,
            })
            .collect();
        let now = self.now();
        self.gossip.membership.join(now, addrs);
        self.drive_gossip();
    }
}

/// Starts a link's tasks with the node-wide inputs, upload cap and buffer pool. A free
/// function, so callers can hold other fields of the actor borrowed meanwhile.
fn spawn_link(
    inputs: &UnboundedSender<Input>,
    settings: &Settings,
    conn: ConnId,
    stream: TcpStream,
) -> conn::ConnHandle {
    conn::spawn(
        conn,
        stream,
        inputs.clone(),
        settings.limiter.clone(),
        settings.buffers.clone(),
    )
}
