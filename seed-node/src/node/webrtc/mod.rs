//! WebRTC data channels to browsers (and to any peer found through signaling), with the
//! `webrtc` crate.
//!
//! The manager task connects to signaling servers, joins the swarms the actor names, answers
//! offers for them, and dials members when the actor asks. Descriptions are sent whole, once
//! ICE gathering finished (host candidates are immediate; STUN is waited for a moment), and
//! the browser's trickled candidates are added as they come. An open channel is handed to the
//! actor as [`Input::RtcOpened`]; from then on it is a link like a TCP one (see [`link`]).

pub(crate) mod link;
mod signal_client;

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use pollen_core::{
    ContentId, PeerId,
    signal::{FromServer, PeerKind, Signal, ToServer},
};
use rtc::{
    ice::mdns::MulticastDnsMode, peer_connection::configuration::setting_engine::SctpMaxMessageSize,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use webrtc::{
    data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit},
    peer_connection::{
        PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
        RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState,
        RTCSessionDescription, SettingEngineBuilder,
    },
};

use super::Input;

/// Longest wait for ICE gathering before sending a description anyway.
const GATHER_WAIT: Duration = Duration::from_secs(2);
/// How long a connection may take from offer to open channel.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes a data channel may buffer before sends wait.
const SEND_BUFFER: usize = 1 << 20;
/// Largest SCTP message accepted (Chromium sends up to 256 KiB).
const MAX_SCTP_MESSAGE: u32 = 256 * 1024;

/// How the node reaches browsers.
#[derive(Debug, Clone)]
pub(crate) struct RtcConfig {
    /// The address peer connections bind their UDP sockets to.
    pub(crate) udp_ip: IpAddr,
    /// STUN/TURN server URLs (none are needed on a LAN).
    pub(crate) ice_servers: Vec<String>,
    /// TURN user name and credential, if the TURN servers need them.
    pub(crate) turn_credentials: Option<(String, String)>,
}

/// What the actor asks of the manager.
#[derive(Debug)]
pub(crate) enum Command {
    /// Join `swarm` on every server we use, and on `servers` (from its ticket).
    Join {
        swarm: ContentId,
        servers: Vec<String>,
    },
    /// Ask again for a sample of `swarm`'s members.
    Refresh(ContentId),
    /// Leave `swarm` on every server it was joined on (the node removed the artifact).
    Leave(ContentId),
    /// Open a connection to `peer` for `swarm`, through `server`.
    Dial {
        swarm: ContentId,
        peer: PeerId,
        server: String,
    },
}

/// The actor's handle on the manager.
#[derive(Clone)]
pub(crate) struct Rtc {
    tx: UnboundedSender<Command>,
}

impl Rtc {
    /// Queues a command (dropped if the manager stopped).
    pub(crate) fn send(&self, cmd: Command) {
        let _ = self.tx.send(cmd);
    }
}

/// What the manager's helpers tell it.
pub(super) enum Internal {
    /// A signaling server said something.
    Signal(String, FromServer),
    /// The peer connection exists.
    Created(Tag, Arc<dyn PeerConnection>),
    /// A description is ready to send.
    Local(Tag, Signal),
    /// The remote description is set: early candidates may be added.
    RemoteSet(Tag),
    /// A data channel opened.
    Open(Tag, Arc<dyn DataChannel>),
    /// The connection failed, closed, or never opened.
    Gone(Tag),
}

/// A connection is named by the swarm it serves and the peer at the other end.
type Key = (ContentId, PeerId);

/// One attempt at a connection: news of an earlier attempt for the same key is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tag {
    key: Key,
    attempt: u64,
}

struct Pc {
    attempt: u64,
    /// Set once built.
    pc: Option<Arc<dyn PeerConnection>>,
    server: String,
    kind: PeerKind,
    remote_set: bool,
    pending: Vec<RTCIceCandidateInit>,
    /// Handed to the actor as a link.
    opened: bool,
    /// We sent the offer.
    offered: bool,
}

/// Starts the manager; `servers` are the signaling servers to use for every swarm.
pub(crate) fn spawn(
    me: PeerId,
    config: RtcConfig,
    servers: Vec<String>,
    inputs: UnboundedSender<Input>,
) -> Rtc {
    let (tx, rx) = unbounded_channel();
    let (itx, irx) = unbounded_channel();
    let mut manager = Manager {
        me,
        config,
        default_servers: servers,
        servers: HashMap::new(),
        joined: HashMap::new(),
        pcs: HashMap::new(),
        attempts: 0,
        inputs,
        internal: itx,
    };
    tokio::spawn(async move { manager.run(rx, irx).await });
    Rtc { tx }
}

struct Manager {
    me: PeerId,
    config: RtcConfig,
    default_servers: Vec<String>,
    /// Open signaling connections by URL.
    servers: HashMap<String, UnboundedSender<ToServer>>,
    /// The servers each swarm is joined on.
    joined: HashMap<ContentId, BTreeSet<String>>,
    pcs: HashMap<Key, Pc>,
    attempts: u64,
    inputs: UnboundedSender<Input>,
    internal: UnboundedSender<Internal>,
}

impl Manager {
    /// The current attempt's entry for `tag`, if it is current.
    fn current(&mut self, tag: Tag) -> Option<&mut Pc> {
        self.pcs
            .get_mut(&tag.key)
            .filter(|p| p.attempt == tag.attempt)
    }

    fn drop_pc(&mut self, key: Key) {
        if let Some(conn) = self.pcs.remove(&key).and_then(|p| p.pc) {
            tokio::spawn(async move {
                let _ = conn.close().await;
            });
        }
    }

    async fn run(
        &mut self,
        mut commands: UnboundedReceiver<Command>,
        mut internal: UnboundedReceiver<Internal>,
    ) {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                Some(msg) = internal.recv() => self.on_internal(msg),
            }
        }
    }

    fn server(&mut self, url: &str) -> UnboundedSender<ToServer> {
        if let Some(tx) = self.servers.get(url) {
            return tx.clone();
        }
        let (tx, rx) = unbounded_channel();
        tokio::spawn(signal_client::run(
            url.to_string(),
            self.me,
            rx,
            self.internal.clone(),
            Vec::new(),
        ));
        self.servers.insert(url.to_string(), tx.clone());
        tx
    }

    fn signal(&mut self, url: &str, msg: ToServer) {
        let _ = self.server(url).send(msg);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Join { swarm, servers } => {
                let mut all: BTreeSet<String> = self.default_servers.iter().cloned().collect();
                all.extend(servers.into_iter().filter(|u| valid_url(u)));
                for url in &all {
                    self.signal(url, ToServer::Join { swarm });
                }
                self.joined.entry(swarm).or_default().extend(all);
            }
            Command::Leave(swarm) => {
                for url in self.joined.remove(&swarm).into_iter().flatten() {
                    self.signal(&url, ToServer::Leave { swarm });
                }
            }
            Command::Refresh(swarm) => {
                let urls: Vec<String> = self
                    .joined
                    .get(&swarm)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                for url in urls {
                    self.signal(&url, ToServer::Join { swarm });
                }
            }
            Command::Dial {
                swarm,
                peer,
                server,
            } => {
                let key = (swarm, peer);
                if !self.pcs.contains_key(&key) {
                    self.start(key, server, PeerKind::Browser, None);
                }
            }
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Signal(url, FromServer::Members { swarm, members }) => {
                let _ = self.inputs.send(Input::RtcMembers {
                    server: url,
                    swarm,
                    members,
                });
            }
            Internal::Signal(
                url,
                FromServer::Relay {
                    swarm,
                    from,
                    kind,
                    signal,
                },
            ) => {
                self.on_relay(url, (swarm, from), kind, signal);
            }
            Internal::Signal(..) => {}
            Internal::Created(tag, conn) => {
                if let Some(pc) = self.current(tag) {
                    pc.pc = Some(conn);
                } else {
                    tokio::spawn(async move {
                        let _ = conn.close().await;
                    });
                }
            }
            Internal::Local(tag, signal) => {
                if let Some(pc) = self.current(tag) {
                    let url = pc.server.clone();
                    let (swarm, to) = tag.key;
                    self.signal(&url, ToServer::Relay { swarm, to, signal });
                }
            }
            Internal::RemoteSet(tag) => {
                if let Some(pc) = self.current(tag) {
                    pc.remote_set = true;
                    let pending = std::mem::take(&mut pc.pending);
                    if let Some(conn) = pc.pc.clone() {
                        tokio::spawn(async move {
                            for c in pending {
                                let _ = conn.add_ice_candidate(c).await;
                            }
                        });
                    }
                }
            }
            Internal::Open(tag, dc) => {
                if let Some(pc) = self.current(tag)
                    && let Some(conn) = pc.pc.clone()
                {
                    pc.opened = true;
                    let kind = pc.kind;
                    let offered = pc.offered;
                    let _ = self.inputs.send(Input::RtcOpened {
                        swarm: tag.key.0,
                        peer: tag.key.1,
                        kind,
                        offered,
                        dc,
                        pc: conn,
                    });
                }
            }
            Internal::Gone(tag) => {
                if self.current(tag).is_some() {
                    self.drop_pc(tag.key);
                }
            }
        }
    }

    fn on_relay(&mut self, url: String, key: Key, kind: PeerKind, signal: Signal) {
        match signal {
            Signal::Offer(sdp) => {
                if !self.joined.contains_key(&key.0) {
                    return;
                }
                if let Some(existing) = self.pcs.get(&key) {
                    // Both sides offered at once: the core's rule says whose offer stands.
                    if pollen_core::policy::offer_wins(&self.me, &key.1, existing.opened) {
                        return;
                    }
                    self.drop_pc(key);
                }
                self.start(key, url, kind, Some(sdp));
            }
            Signal::Answer(sdp) => {
                let Some((conn, attempt)) = self
                    .pcs
                    .get(&key)
                    .and_then(|p| Some((p.pc.clone()?, p.attempt)))
                else {
                    return;
                };
                let tag = Tag { key, attempt };
                let internal = self.internal.clone();
                tokio::spawn(async move {
                    let ok = match RTCSessionDescription::answer(sdp) {
                        Ok(desc) => conn.set_remote_description(desc).await.is_ok(),
                        Err(_) => false,
                    };
                    let _ = internal.send(if ok {
                        Internal::RemoteSet(tag)
                    } else {
                        Internal::Gone(tag)
                    });
                });
            }
            Signal::Candidate {
                candidate,
                mid,
                mline_index,
            } => {
                let Some(pc) = self.pcs.get_mut(&key) else {
                    return;
                };
                let init = RTCIceCandidateInit {
                    candidate,
                    sdp_mid: mid,
                    sdp_mline_index: mline_index,
                    ..Default::default()
                };
                if let (true, Some(conn)) = (pc.remote_set, pc.pc.clone()) {
                    tokio::spawn(async move {
                        let _ = conn.add_ice_candidate(init).await;
                    });
                } else {
                    pc.pending.push(init);
                }
            }
        }
    }

    /// Creates a peer connection for `key`: dialing (no `offer`: we create the channel and
    /// offer) or answering `offer`.
    fn start(&mut self, key: Key, server: String, kind: PeerKind, offer: Option<String>) {
        self.attempts += 1;
        let tag = Tag {
            key,
            attempt: self.attempts,
        };
        self.pcs.insert(
            key,
            Pc {
                attempt: tag.attempt,
                pc: None,
                server,
                kind,
                remote_set: false,
                pending: Vec::new(),
                opened: false,
                offered: offer.is_none(),
            },
        );
        let config = self.config.clone();
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let setup = async {
                let (events_tx, events) = unbounded_channel();
                let pc = build(&config, events_tx).await.map_err(|e| e.to_string())?;
                let pc: Arc<dyn PeerConnection> = Arc::new(pc);
                let _ = internal.send(Internal::Created(tag, pc.clone()));
                negotiate(tag, pc, offer, events, internal.clone()).await
            };
            let result = tokio::time::timeout(OPEN_TIMEOUT, setup)
                .await
                .unwrap_or_else(|_| Err("timed out".to_string()));
            if let Err(err) = result {
                tracing::debug!(peer = %key.1, "WebRTC connection failed: {err}");
                let _ = internal.send(Internal::Gone(tag));
            }
        });
    }
}

/// Events of one peer connection, for its negotiation task.
enum PcEvent {
    Gathered,
    Channel(Arc<dyn DataChannel>),
    Failed,
}

struct Handler {
    events: UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(PcEvent::Gathered);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) {
            let _ = self.events.send(PcEvent::Failed);
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.events.send(PcEvent::Channel(dc));
    }
}

async fn build(
    config: &RtcConfig,
    events: UnboundedSender<PcEvent>,
) -> Result<impl PeerConnection + use<>, webrtc::error::Error> {
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(MAX_SCTP_MESSAGE))
        .build();
    PeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(ice_servers(config))
                .build(),
        )
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler { events }))
        .with_udp_addrs(vec![format!("{}:0", config.udp_ip)])
        .with_data_channel_send_buffer_limit(SEND_BUFFER)
        .build()
        .await
}

/// STUN URLs share one server entry; TURN URLs carry the credentials.
fn ice_servers(config: &RtcConfig) -> Vec<RTCIceServer> {
    let (turn, stun): (Vec<String>, Vec<String>) = config
        .ice_servers
        .iter()
        .cloned()
        .partition(|u| u.starts_with("turn:") || u.starts_with("turns:"));
    let mut out = Vec::new();
    if !stun.is_empty() {
        out.push(RTCIceServer {
            urls: stun,
            ..Default::default()
        });
    }
    if !turn.is_empty() {
        let (username, credential) = config.turn_credentials.clone().unwrap_or_default();
        out.push(RTCIceServer {
            urls: turn,
            username,
            credential,
        });
    }
    out
}

/// Offers or answers, then waits for the channel to open and hands it over.
async fn negotiate(
    tag: Tag,
    pc: Arc<dyn PeerConnection>,
    offer: Option<String>,
    mut events: UnboundedReceiver<PcEvent>,
    internal: UnboundedSender<Internal>,
) -> Result<(), String> {
    let err = |what: &str, e: webrtc::error::Error| format!("{what}: {e}");
    let mut channel = None;
    let signal = match offer {
        None => {
            let init = RTCDataChannelInit {
                ordered: true,
                ..Default::default()
            };
            let dc = pc
                .create_data_channel(&tag.key.0.to_string(), Some(init))
                .await
                .map_err(|e| err("create data channel", e))?;
            channel = Some(dc);
            let offer = pc
                .create_offer(None)
                .await
                .map_err(|e| err("create offer", e))?;
            pc.set_local_description(offer)
                .await
                .map_err(|e| err("set local offer", e))?;
            Signal::Offer(gathered_sdp(&pc, &mut events, &mut channel).await?)
        }
        Some(sdp) => {
            let desc = RTCSessionDescription::offer(sdp).map_err(|e| err("parse offer", e))?;
            pc.set_remote_description(desc)
                .await
                .map_err(|e| err("set remote offer", e))?;
            let _ = internal.send(Internal::RemoteSet(tag));
            let answer = pc
                .create_answer(None)
                .await
                .map_err(|e| err("create answer", e))?;
            pc.set_local_description(answer)
                .await
                .map_err(|e| err("set local answer", e))?;
            Signal::Answer(gathered_sdp(&pc, &mut events, &mut channel).await?)
        }
    };
    let _ = internal.send(Internal::Local(tag, signal));
    let dc = loop {
        if let Some(dc) = channel.take() {
            break dc;
        }
        match events.recv().await {
            Some(PcEvent::Channel(dc)) => channel = Some(dc),
            Some(PcEvent::Gathered) => {}
            Some(PcEvent::Failed) | None => return Err("connection failed".into()),
        }
    };
    // Wait for the channel to open; messages after it stay queued for the link's reader.
    loop {
        tokio::select! {
            ev = dc.poll() => match ev {
                Some(DataChannelEvent::OnOpen) => break,
                Some(DataChannelEvent::OnClose) | None => return Err("channel closed before opening".into()),
                Some(_) => {}
            },
            ev = events.recv() => if matches!(ev, Some(PcEvent::Failed) | None) {
                return Err("connection failed".into());
            },
        }
    }
    let _ = internal.send(Internal::Open(tag, dc));
    // Report a later failure of the connection.
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if matches!(ev, PcEvent::Failed) {
                let _ = internal.send(Internal::Gone(tag));
                return;
            }
        }
    });
    Ok(())
}

/// The local description once gathering completed (or after [`GATHER_WAIT`]).
async fn gathered_sdp(
    pc: &Arc<dyn PeerConnection>,
    events: &mut UnboundedReceiver<PcEvent>,
    channel: &mut Option<Arc<dyn DataChannel>>,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + GATHER_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(PcEvent::Gathered)) | Err(_) => break,
            Ok(Some(PcEvent::Channel(dc))) => *channel = Some(dc),
            Ok(Some(PcEvent::Failed) | None) => return Err("connection failed".into()),
        }
    }
    pc.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| "no local description".to_string())
}

/// Whether a signaling URL is one we can connect to.
pub(crate) fn valid_url(url: &str) -> bool {
    url.starts_with("ws://") || url.starts_with("wss://")
}
