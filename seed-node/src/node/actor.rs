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
    endpoint::{CloseReason, Endpoint, EndpointConfig, EndpointEvent, LinkEnd, Output},
    membership::{Holding, MemberEvent},
    policy::presets,
    signal::{Member, PeerKind},
    swarm::{Action, DisconnectReason, Event, Swarm, SwarmConfig},
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

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before dialing an address again after it turned out to duplicate another link.
const REDIAL_DUPLICATE: Duration = Duration::from_secs(30);
/// How long a new connection may take to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most accepted connections that have not sent their handshake yet.
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

/// One artifact: its disk worker and where its peers are (its swarm is in the endpoint).
struct Entry {
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

/// One open connection (it carries every swarm we share with the peer).
struct Conn {
    handle: ConnHandle,
    remote: Remote,
    /// The address we dialed, if we did.
    dialed: Option<SocketAddr>,
    /// The address the peer accepts connections on, once its handshake said.
    listens: Option<SocketAddr>,
}

/// The node's single owner of swarm state.
pub(crate) struct Actor {
    settings: Settings,
    store: Store,
    inputs: UnboundedSender<Input>,
    started: TokioInstant,
    entries: BTreeMap<ContentId, Entry>,
    /// The swarms and their connections.
    ep: Endpoint,
    conns: HashMap<ConnId, Conn>,
    /// The connection to each peer address we know one for.
    by_addr: HashMap<SocketAddr, ConnId>,
    /// Dials in progress, and the artifacts waiting for each.
    dialing: HashMap<SocketAddr, Vec<ContentId>>,
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
        let mut ep_cfg = EndpointConfig::new(settings.peer_id);
        ep_cfg.listen_port = Some(settings.advertise.port());
        ep_cfg.handshake_timeout = HANDSHAKE_TIMEOUT;
        // Every link's writer reports what it sent (`Input::Sent`).
        ep_cfg.report_sent = true;
        let mut actor = Self {
            ep: Endpoint::new(ep_cfg),
            by_addr: HashMap::new(),
            dialing: HashMap::new(),
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
        self.ep
            .poll_timeout()
            .into_iter()
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
            .map(|(id, _)| Holding {
                id: *id,
                complete: self.is_complete(id),
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

    /// A swarm's settings (a native node's preset; `origin`: we hold it whole) and seed.
    fn config(&mut self, origin: bool) -> (SwarmConfig, u64) {
        let cfg = presets::native(
            self.settings.peer_id,
            Some(self.settings.advertise.port()),
            self.settings.upload_cap,
            origin,
        );
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (cfg, self.next_seed)
    }

    /// Starts serving (and, if incomplete, fetching) a stored artifact.
    fn add_artifact(&mut self, artifact: Artifact, saved: Option<Ticket>) -> ContentId {
        let id = artifact.id();
        let ticket = saved.unwrap_or_else(|| self.ticket_for(&artifact));
        let (cfg, seed) = self.config(artifact.have().is_complete());
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
        let (cfg, seed) = self.config(false);
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

    fn swarm(&self, id: &ContentId) -> Option<&Swarm> {
        self.ep.swarm(id)
    }

    fn is_complete(&self, id: &ContentId) -> bool {
        self.swarm(id).is_some_and(Swarm::is_complete)
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
        let now = self.now();
        self.ep.add_swarm(now, swarm);
        self.entries.insert(
            id,
            Entry {
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
        self.drive();
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
        let now = self.now();
        match input {
            Input::Accepted(stream, remote) => {
                if self.ep.unready_count() >= MAX_UNROUTED {
                    tracing::warn!(%remote, "too many links without a handshake; refusing one");
                    return;
                }
                let conn = self.ep.connect(now, false);
                let handle = spawn_link(&self.inputs, &self.settings, conn, stream);
                self.conns.insert(
                    conn,
                    Conn {
                        handle,
                        remote: Remote::Tcp(remote),
                        dialed: None,
                        listens: None,
                    },
                );
            }
            Input::Dialed { addr, result } => self.on_dialed(addr, result),
            Input::Frame(conn, body) => self.ep.handle_frame(now, conn, body),
            Input::Sent(conn, len) => self.ep.handle_sent(conn, len),
            Input::Closed(conn, reason) => {
                tracing::debug!(conn = conn.0, "link closed: {reason}");
                self.drop_conn(conn);
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
                offered,
                dc,
                pc,
            } => self.on_rtc_opened(swarm, peer, kind, offered, dc, pc),
            // Handled by the run loop.
            Input::Shutdown(_) => {}
        }
        self.drive();
    }

    fn on_dialed(&mut self, addr: SocketAddr, result: std::io::Result<TcpStream>) {
        let waiting = self.dialing.remove(&addr).unwrap_or_default();
        let now = self.now();
        let conn = match result {
            // A connection to this peer opened meanwhile (it dialed us): keep that one.
            Ok(_) if self.by_addr.contains_key(&addr) => self.by_addr.get(&addr).copied(),
            Ok(stream) => {
                let conn = self.ep.connect(now, true);
                let handle = spawn_link(&self.inputs, &self.settings, conn, stream);
                self.conns.insert(
                    conn,
                    Conn {
                        handle,
                        remote: Remote::Tcp(addr),
                        dialed: Some(addr),
                        listens: Some(addr),
                    },
                );
                self.by_addr.insert(addr, conn);
                Some(conn)
            }
            Err(err) => {
                tracing::debug!(%addr, "dial failed: {err}");
                None
            }
        };
        for id in waiting {
            let Some(state) = self
                .entries
                .get_mut(&id)
                .and_then(|e| e.addrs.get_mut(&addr))
            else {
                continue;
            };
            state.dialing = false;
            match conn {
                Some(conn) if self.ep.open_swarm(now, conn, id) => state.conn = Some(conn),
                Some(_) => {}
                None => state.back_off(now),
            }
        }
    }

    fn on_disk(&mut self, id: ContentId, result: DiskResult) {
        let now = self.now();
        let (Some(entry), Some(swarm)) = (self.entries.get_mut(&id), self.ep.swarm_mut(&id)) else {
            return;
        };
        match result {
            DiskResult::Read(piece, data) => swarm.handle_piece_read(now, piece, data),
            DiskResult::ReadFailed(piece) => swarm.handle_piece_read_failed(now, piece),
            DiskResult::Checked(checked) => swarm.handle_piece_checked(now, checked),
            DiskResult::Written(piece, Ok(())) => swarm.handle_piece_stored(now, piece, true),
            DiskResult::Written(piece, Err(err)) => {
                tracing::error!(%id, piece, "cannot store: {err}");
                entry.error = Some(err);
                swarm.handle_piece_stored(now, piece, false);
                self.stop_fetching(id);
            }
            DiskResult::CreateFailed(err) => {
                tracing::error!(%id, "cannot create the artifact: {err}");
                entry.error = Some(err);
                self.stop_fetching(id);
            }
        }
    }

    /// After a storage failure: close the artifact's links and stop dialing for it.
    fn stop_fetching(&mut self, id: ContentId) {
        let now = self.now();
        self.ep.unlink_swarm(now, &id);
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
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
            self.drive();
        }
    }

    fn on_tick(&mut self) {
        let at = TokioInstant::now();
        for (id, entry) in &mut self.entries {
            let Some(stats) = self.ep.swarm(id).map(Swarm::stats) else {
                continue;
            };
            if let Some((t, down, up)) = entry.rate.last {
                let secs = at.duration_since(t).as_secs_f64().max(1e-3);
                let sample_down = (stats.downloaded - down) as f64 / secs;
                let sample_up = (stats.uploaded - up) as f64 / secs;
                entry.rate.down = 0.5 * entry.rate.down + 0.5 * sample_down;
                entry.rate.up = 0.5 * entry.rate.up + 0.5 * sample_up;
            }
            entry.rate.last = Some((at, stats.downloaded, stats.uploaded));
        }
        self.publish_state();
        self.dial_missing();
        self.ticks += 1;
        if self.ticks.is_multiple_of(RTC_REFRESH_TICKS)
            && let Some(rtc) = &self.settings.rtc
        {
            for (&id, entry) in &self.entries {
                let links = self.ep.swarm_conns(&id).count();
                let complete = self.ep.swarm(&id).is_some_and(Swarm::is_complete);
                if !complete && entry.error.is_none() && links < MAX_RTC_DIALS {
                    rtc.send(RtcCommand::Refresh(id));
                }
            }
        }
    }

    /// Dials members that signaling found for an artifact we are fetching. Native members are
    /// reached over TCP through gossip; this is how browsers are found.
    fn on_rtc_members(&mut self, server: String, id: ContentId, members: Vec<Member>) {
        let now = self.now();
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let Some(rtc) = &self.settings.rtc else {
            return;
        };
        if self.ep.swarm(&id).is_none_or(Swarm::is_complete) || entry.error.is_some() {
            return;
        }
        let linked: Vec<ConnId> = self.ep.swarm_conns(&id).collect();
        let linked_peers: Vec<PeerId> = linked
            .iter()
            .filter_map(|&c| self.ep.conn_peer(c))
            .collect();
        let mut rtc_links = linked
            .iter()
            .filter(|c| {
                self.conns
                    .get(c)
                    .is_some_and(|c| matches!(c.remote, Remote::WebRtc(..)))
            })
            .count();
        let mut reuse = Vec::new();
        for m in members {
            if rtc_links >= MAX_RTC_DIALS {
                break;
            }
            if m.kind != PeerKind::Browser
                || m.peer == self.settings.peer_id
                || linked_peers.contains(&m.peer)
                || entry.banned.contains(&m.peer)
            {
                continue;
            }
            rtc_links += 1;
            // A browser we already have a connection to gets the swarm on it.
            if let Some(conn) = self.ep.conn_to(&m.peer) {
                reuse.push(conn);
                continue;
            }
            rtc.send(RtcCommand::Dial {
                swarm: id,
                peer: m.peer,
                server: server.clone(),
            });
        }
        for conn in reuse {
            self.ep.open_swarm(now, conn, id);
        }
    }

    /// A data channel opened: it becomes a connection, and carries the swarm it opened for.
    fn on_rtc_opened(
        &mut self,
        id: ContentId,
        peer: PeerId,
        kind: PeerKind,
        offered: bool,
        dc: Arc<dyn webrtc::data_channel::DataChannel>,
        pc: Arc<dyn webrtc::peer_connection::PeerConnection>,
    ) {
        if !self.entries.contains_key(&id) {
            tokio::spawn(async move {
                let _ = pc.close().await;
            });
            return;
        }
        let now = self.now();
        let conn = self.ep.connect(now, offered);
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
                remote: Remote::WebRtc(peer, kind),
                dialed: None,
                listens: None,
            },
        );
        self.ep.open_swarm(now, conn, id);
    }

    /// Dials the known addresses of incomplete artifacts that have no link: the ticket's,
    /// `--peer`s, and the members gossip says hold the artifact (see [`gossip::sources`]), up
    /// to a cap on links ([`dial::to_dial`]).
    fn dial_missing(&mut self) {
        let at = TokioInstant::now();
        let now = self.now();
        let me = [self.settings.advertise, self.settings.listen];
        for (&id, entry) in &mut self.entries {
            if self.ep.swarm(&id).is_none_or(Swarm::is_complete) || entry.error.is_some() {
                continue;
            }
            let sources =
                gossip::sources(&self.gossip.membership, &id, at.duration_since(entry.added));
            for &addr in &sources.dial {
                entry.addrs.entry(addr).or_insert_with(|| AddrState {
                    never: me.contains(&addr),
                    ..AddrState::default()
                });
            }
            let linked = self.ep.swarm_conns(&id).count();
            for addr in dial::to_dial(&entry.addrs, &sources, linked, now) {
                let Some(state) = entry.addrs.get_mut(&addr) else {
                    continue;
                };
                // A connection to the peer carries this swarm too.
                if let Some(&conn) = self.by_addr.get(&addr)
                    && self.ep.open_swarm(now, conn, id)
                {
                    state.conn = Some(conn);
                    continue;
                }
                state.dialing = true;
                if let Some(waiting) = self.dialing.get_mut(&addr) {
                    waiting.push(id);
                    continue;
                }
                self.dialing.insert(addr, vec![id]);
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
                    let _ = inputs.send(Input::Dialed { addr, result });
                });
            }
        }
        self.drive();
    }

    /// Carries out everything the endpoint asks for after an input.
    fn drive(&mut self) {
        while let Some(out) = self.ep.poll_output() {
            match out {
                Output::Transmit(conn, bytes) => {
                    let stuck = self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.handle.send(bytes).is_err());
                    if stuck {
                        tracing::debug!(
                            conn = conn.0,
                            "peer is not reading what we send; dropping it"
                        );
                        self.drop_conn(conn);
                    }
                }
                Output::Action(id, action) => self.on_action(id, action),
                Output::Close(conn, reason) => {
                    tracing::debug!(conn = conn.0, ?reason, "closing a connection");
                    if reason == CloseReason::SelfConnection
                        && let Some(addr) = self.conns.get(&conn).and_then(|c| c.dialed)
                    {
                        for e in self.entries.values_mut() {
                            if let Some(s) = e.addrs.get_mut(&addr) {
                                s.never = true;
                            }
                        }
                    }
                    self.forget_conn(conn);
                }
                Output::Event(EndpointEvent::Connected {
                    conn,
                    peer,
                    listen_port,
                }) => self.on_connected(conn, peer, listen_port),
                Output::Event(EndpointEvent::Swarm(id, event)) => self.on_event(id, event),
                Output::Event(EndpointEvent::LinkClosed {
                    conn,
                    swarm,
                    reason,
                }) => self.on_link_closed(conn, swarm, reason),
            }
        }
    }

    fn on_action(&mut self, id: ContentId, action: Action) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let sent = match action {
            Action::ReadPiece { piece } => entry.disk.send(DiskOp::Read(piece)),
            Action::CheckPiece(check) => entry.disk.check(check),
            Action::StorePiece { piece, data } => entry.disk.send(DiskOp::Write(piece, data)),
            Action::StoreManifest(m) => {
                let name = entry.ticket.name().map(str::to_string);
                entry.disk.send(DiskOp::Create(m, name))
            }
            // The endpoint keeps link closes to itself.
            Action::Disconnect { .. } => Ok(()),
        };
        if sent.is_err() {
            // The disk worker is gone: nothing sent to it will ever complete.
            tracing::error!(%id, "the disk worker stopped; no longer fetching");
            entry
                .error
                .get_or_insert_with(|| "the disk worker stopped".into());
            self.stop_fetching(id);
        }
    }

    /// A connection's handshake arrived: note where the peer listens, so artifacts that
    /// want that address use this connection.
    fn on_connected(&mut self, conn: ConnId, peer: PeerId, listen_port: Option<u16>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let (Remote::Tcp(remote), Some(port), None) = (c.remote, listen_port, c.dialed) {
            let addr = SocketAddr::new(remote.ip(), port);
            c.listens = Some(addr);
            self.by_addr.entry(addr).or_insert(conn);
        }
        if let Some(addr) = c.dialed {
            for e in self.entries.values_mut() {
                if let Some(s) = e.addrs.get_mut(&addr) {
                    s.failures = 0;
                }
            }
        }
        tracing::debug!(%peer, conn = conn.0, "peer connected");
    }

    fn on_link_closed(&mut self, conn: ConnId, id: ContentId, reason: LinkEnd) {
        let now = self.now();
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        for state in entry.addrs.values_mut().filter(|s| s.conn == Some(conn)) {
            state.conn = None;
            match reason {
                LinkEnd::Swarm(DisconnectReason::SelfConnection | DisconnectReason::Banned)
                | LinkEnd::Connection(Some(CloseReason::SelfConnection)) => state.never = true,
                LinkEnd::Swarm(DisconnectReason::Duplicate) => {
                    state.retry_at = Some(now + REDIAL_DUPLICATE);
                }
                // Our swarm moved to the connection that replaced this one.
                LinkEnd::Connection(Some(CloseReason::Duplicate)) | LinkEnd::Removed => {}
                _ => state.back_off(now),
            }
        }
    }

    fn on_event(&mut self, id: ContentId, event: Event) {
        match event {
            Event::PeerConnected { peer, .. } => tracing::debug!(%id, %peer, "peer linked"),
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

    /// Closes a connection from our side and forgets it everywhere.
    fn drop_conn(&mut self, conn: ConnId) {
        let now = self.now();
        self.ep.handle_closed(now, conn);
        self.forget_conn(conn);
    }

    /// Closes a connection's IO and forgets the addresses that led to it.
    fn forget_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        c.handle.close();
        for addr in c.dialed.iter().chain(c.listens.iter()) {
            if self.by_addr.get(addr) == Some(&conn) {
                self.by_addr.remove(addr);
            }
        }
    }

    // ----- API -----

    fn on_api(&mut self, call: ApiCall) {
        match call {
            ApiCall::AddSeed(artifact, reply) => {
                // A download of the same artifact may be running: the endpoint closes its
                // links as the new swarm replaces it.
                let id = self.add_artifact(*artifact, None);
                let _ = reply.send(self.share_reply(id));
            }
            ApiCall::TicketFor(id, reply) => {
                let result = match self.entries.get(&id) {
                    Some(_) if self.is_complete(&id) => Ok(self.share_reply(id)),
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
                Some(e) if self.is_complete(&id) => {
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
            .filter_map(|(id, e)| {
                let swarm = self.ep.swarm(id)?;
                let stats = swarm.stats();
                let peers = stats
                    .links
                    .iter()
                    .filter_map(|l| {
                        let peer = l.peer?;
                        let conn = self.conns.get(&self.ep.link_conn(l.link)?)?;
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
                Some(ArtifactStatus {
                    id: id.to_string(),
                    name: e.ticket.name().map(str::to_string),
                    size: e.ticket.size(),
                    pieces: stats.pieces,
                    have_pieces: stats.have,
                    have_bytes: stats.have_bytes,
                    complete: swarm.is_complete(),
                    has_manifest: stats.has_manifest,
                    downloaded: stats.downloaded,
                    uploaded: stats.uploaded,
                    download_rate: e.rate.down as u64,
                    upload_rate: e.rate.up as u64,
                    peers,
                    banned: e.banned.iter().map(ToString::to_string).collect(),
                    error: e.error.clone(),
                    ticket: e.ticket.to_string(),
                })
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
            connections: self.conns.len(),
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
