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
    swarm::{Action, DisconnectReason, Event, Stored, Swarm, SwarmConfig},
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
    errors::{ApiError, DiskError},
    gossip::{self, Gossip},
    tickets,
    webrtc::Command as RtcCommand,
};
use crate::{
    api_types::{
        ArtifactReply, ArtifactStatus, GetReply, HoldingStatus, MemberStatus, PeerStatus,
        RemoveReply, ShareReply, SourceStatus, Status,
    },
    store::{Artifact, Store},
};

mod api;
mod artifacts;
mod budget;
mod links;
mod metered;
mod quota;
mod rtc;

pub(crate) use budget::fd_budget;
use links::spawn_link;

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before dialing an address again after it turned out to duplicate another link.
const REDIAL_DUPLICATE: Duration = Duration::from_secs(30);
/// Wait before dialing an address again after its link was dropped for sending nothing we
/// wanted while nobody else did either.
const REDIAL_UNPRODUCTIVE: Duration = Duration::from_secs(60);
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
    /// Bytes of frame bodies being received at once, shared by all links.
    pub(crate) receiving: conn::ReceiveBudget,
    /// Upload cap in bytes per second, if any (advertised as capacity; load is measured
    /// against it).
    pub(crate) upload_cap: Option<u64>,
    /// Members to join the cluster through.
    pub(crate) join: Vec<SocketAddr>,
    /// WebRTC to browsers, through signaling (unless disabled).
    pub(crate) rtc: Option<super::webrtc::Rtc>,
    /// The signaling URL put in our tickets (our embedded server's), if any.
    pub(crate) signal_url: Option<String>,
    /// Most artifacts fetched at once (`--max-fetches`).
    pub(crate) max_fetches: usize,
    /// Most peer connections at once (from the open-file limit).
    pub(crate) max_conns: usize,
    /// The node's metrics.
    pub(crate) metrics: std::sync::Arc<super::metrics::Metrics>,
    /// Most bytes of artifacts the node keeps (`--max-storage`).
    pub(crate) max_storage: Option<u64>,
    /// Complete artifacts unused this long are removed (`--evict-after`).
    pub(crate) evict_after: Option<Duration>,
    /// A fetched artifact stops being served once this many nodes hold it whole.
    pub(crate) seed_copies: Option<usize>,
    /// A fetched artifact stops being served this long after it completed.
    pub(crate) seed_time: Option<Duration>,
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
    /// Why the artifact stopped fetching, if storage failed it.
    error: Option<DiskError>,
    rate: Rate,
    /// When the node started fetching it (peer exchange waits a moment before crossing zones).
    added: TokioInstant,
    /// The last error of each address whose dial failed or whose link ended badly.
    dial_errors: BTreeMap<SocketAddr, String>,
    /// Its change counter, which API waiters watch ([`crate::api_types::ArtifactReply`]).
    changes: tokio::sync::watch::Sender<Change>,
    /// Pieces that no longer verified on disk since the node started (dropped, fetched again).
    corrupt_on_disk: u32,
    /// Whether the node fetched it (it was not whole when added).
    fetched: bool,
    /// When it was last fetched, shared, written out or served.
    last_used: TokioInstant,
    /// When the node finished fetching it.
    completed_at: Option<TokioInstant>,
    /// When it last sent bytes to a peer.
    last_upload: Option<TokioInstant>,
    /// Its swarm, out of the endpoint, once the node stopped serving it (`--seed-copies`,
    /// `--seed-time`): held for the node's own use only.
    dormant: Option<Swarm>,
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
    /// When it opened.
    opened: TokioInstant,
    /// Since when it carries no artifact, if it does not.
    idle_since: Option<TokioInstant>,
}

/// How recently an artifact must have sent bytes to count as being served.
const SERVING: Duration = Duration::from_secs(10);

impl Entry {
    /// Whether it sent bytes to a peer in the last [`SERVING`].
    fn serving_at(&self, at: TokioInstant) -> bool {
        self.last_upload
            .is_some_and(|t| at.saturating_duration_since(t) < SERVING)
    }
}

/// An artifact's change counter, as API waiters watch it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// Moves on every change worth telling (a piece stored, a peer linked, completion, an
    /// error).
    pub(crate) generation: u64,
    /// The artifact is complete or stopped by an error: waiters answer at once.
    pub(crate) settled: bool,
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
    /// Each swarm link's payload bytes (received, sent) at the last metrics update.
    link_bytes: HashMap<(ContentId, pollen_core::swarm::LinkId), (u64, u64)>,
    /// Gossip datagrams and bytes sent at the last metrics update.
    gossip_sent: (u64, u64),
    /// Artifacts never evicted.
    pins: std::collections::BTreeSet<ContentId>,
    /// Artifacts whose files are being deleted: not fetched or shared again until then.
    removing: std::collections::BTreeSet<ContentId>,
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
            link_bytes: HashMap::new(),
            gossip_sent: (0, 0),
            pins: std::collections::BTreeSet::new(),
            removing: std::collections::BTreeSet::new(),
        };
        actor.pins = quota::load_pins(actor.store.dir());
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
                    match (artifact.reset_reason(), artifact.rebuilt()) {
                        (Some(reason), Some(kept)) => tracing::warn!(
                            %id,
                            "the record of held pieces was unusable ({reason}); rebuilt from the data: {kept} of {} pieces verify, the rest are fetched again",
                            artifact.manifest().layout().piece_count()
                        ),
                        (Some(reason), None) => tracing::warn!(
                            %id,
                            "held pieces were reset and will be fetched again: {reason}"
                        ),
                        _ => {}
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

    /// Tells API waiters that an artifact's progress or state changed.
    fn changed(&self, id: &ContentId) {
        if let Some(e) = self.entries.get(id) {
            let settled = e.error.is_some() || self.is_complete(id);
            e.changes.send_modify(|c| {
                c.generation = c.generation.wrapping_add(1);
                c.settled = settled;
            });
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
            self.apply_origin_policy();
            self.dial_missing();
        }
    }

    // ----- inputs -----

    fn on_input(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Accepted(stream, remote) => {
                if !self.admit(remote) {
                    return;
                }
                let now = self.now();
                let conn = self.ep.connect(now, false);
                let handle = spawn_link(&self.inputs, &self.settings, conn, stream);
                self.conns.insert(
                    conn,
                    Conn {
                        handle,
                        remote: Remote::Tcp(remote),
                        dialed: None,
                        listens: None,
                        opened: TokioInstant::now(),
                        idle_since: None,
                    },
                );
            }
            Input::Dialed { addr, result } => self.on_dialed(addr, result),
            Input::Frame(conn, body) => self.ep.handle_frame(now, conn, body),
            Input::Sent(conn, len) => self.ep.handle_sent(conn, len),
            Input::Removed(id) => {
                self.removing.remove(&id);
            }
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
                self.settings.metrics.gossip("in", 1, bytes.len() as u64);
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
            let Some(stats) = self
                .ep
                .swarm(id)
                .or(entry.dormant.as_ref())
                .map(Swarm::stats)
            else {
                continue;
            };
            if let Some((t, down, up)) = entry.rate.last {
                let secs = at.duration_since(t).as_secs_f64().max(1e-3);
                let sample_down = stats.downloaded.saturating_sub(down) as f64 / secs;
                let sample_up = stats.uploaded.saturating_sub(up) as f64 / secs;
                entry.rate.down = 0.5 * entry.rate.down + 0.5 * sample_down;
                entry.rate.up = 0.5 * entry.rate.up + 0.5 * sample_up;
                if stats.uploaded > up {
                    entry.last_upload = Some(at);
                }
            }
            entry.rate.last = Some((at, stats.downloaded, stats.uploaded));
            // Fetching and serving count as use.
            let fetching = stats.have < stats.pieces && entry.error.is_none();
            if fetching || entry.serving_at(at) {
                entry.last_used = at;
            }
        }
        self.enforce_quota(0);
        self.retire_seeds(at);
        self.apply_origin_policy();
        self.publish_state();
        self.update_metrics();
        self.close_idle_conns(at);
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
}
