//! `pollen node`: the daemon. A single actor task owns every swarm and link; link tasks,
//! disk workers and the HTTP API talk to it through one channel of [`Input`]s.

mod actor;
mod api;
mod buffers;
mod conn;
mod dial;
mod disk;
mod errors;
mod gossip;
mod http;
mod metrics;
mod tickets;
mod web;
mod webrtc;

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result};
use pollen_core::{
    ContentId, Instant, PeerId, Ticket,
    membership::{Membership, MembershipConfig, NodeState, Role},
};
use tokio::{
    net::{TcpListener, TcpStream, UdpSocket},
    sync::{mpsc, oneshot},
};

use crate::{
    api_types::{ArtifactReply, GetReply, RemoveReply, ShareReply, Status},
    cli::NodeArgs,
    store::{Artifact, Store},
};
use conn::ConnId;
use disk::DiskResult;
use errors::ApiError;

/// Everything that can wake the actor.
pub(crate) enum Input {
    /// A peer connected to us.
    Accepted(TcpStream, SocketAddr),
    /// Our dial of `addr` finished.
    Dialed {
        addr: SocketAddr,
        result: std::io::Result<TcpStream>,
    },
    /// A frame body arrived on a link.
    Frame(ConnId, bytes::Bytes),
    /// A link's writer put this many bytes of what the swarm gave it on the wire (into a
    /// socket kept at most `TCP_NOTSENT_LOWAT` ahead, or a data channel).
    Sent(ConnId, u64),
    /// A link closed, and why.
    Closed(ConnId, String),
    /// A disk worker (of an artifact, in a generation) finished something.
    Disk(ContentId, u64, DiskResult),
    /// A request from the HTTP API.
    Api(ApiCall),
    /// A membership datagram arrived.
    Gossip(SocketAddr, Vec<u8>),
    /// Leave the cluster and stop; reply when done.
    Shutdown(oneshot::Sender<()>),
    /// An artifact's files are deleted (its removal is over).
    Removed(ContentId),
    /// A signaling server sampled members of a swarm.
    RtcMembers {
        server: String,
        swarm: ContentId,
        members: Vec<pollen_core::signal::Member>,
    },
    /// A WebRTC data channel to a peer opened for a swarm.
    RtcOpened {
        swarm: ContentId,
        peer: PeerId,
        kind: pollen_core::signal::PeerKind,
        /// We sent the offer.
        offered: bool,
        dc: std::sync::Arc<dyn ::webrtc::data_channel::DataChannel>,
        pc: std::sync::Arc<dyn ::webrtc::peer_connection::PeerConnection>,
    },
}

/// Requests from the HTTP API, each with its reply channel.
pub(crate) enum ApiCall {
    /// Seed a freshly imported artifact.
    AddSeed(Box<Artifact>, oneshot::Sender<ShareReply>),
    /// The ticket of an artifact the node already holds completely.
    TicketFor(ContentId, oneshot::Sender<Result<ShareReply, ApiError>>),
    /// Fetch an artifact.
    Get(Ticket, oneshot::Sender<Result<GetReply, ApiError>>),
    /// Stop fetching or seeding an artifact and delete it (`true`: only if incomplete, a
    /// cancel).
    Remove(
        ContentId,
        bool,
        oneshot::Sender<Result<RemoveReply, ApiError>>,
    ),
    /// Fill in an incomplete artifact's missing pieces from a file holding it.
    Repair(ContentId, PathBuf, oneshot::Sender<Result<u32, ApiError>>),
    /// Report status.
    Status(oneshot::Sender<Status>),
    /// Pin (`true`) or unpin an artifact.
    Pin(ContentId, bool, oneshot::Sender<Result<(), ApiError>>),
    /// Report one artifact's status, with its change counter and a way to watch it.
    Artifact(
        ContentId,
        oneshot::Sender<Option<(ArtifactReply, tokio::sync::watch::Receiver<actor::Change>)>>,
    ),
    /// Write a complete artifact to a path.
    Export(
        ContentId,
        PathBuf,
        bool,
        oneshot::Sender<Result<(), ApiError>>,
    ),
}

/// Runs the node until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: NodeArgs) -> Result<()> {
    let store = Store::open(&args.data)
        .with_context(|| format!("cannot open the data directory {}", args.data.display()))?;
    let peers = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen for peers on {}", args.listen))?;
    let api = TcpListener::bind(args.api)
        .await
        .with_context(|| format!("cannot serve the API on {}", args.api))?;
    let listen = peers.local_addr()?;
    // Membership datagrams use the same port number as peer links.
    let udp = UdpSocket::bind(listen)
        .await
        .with_context(|| format!("cannot bind the gossip socket on UDP {listen}"))?;
    let udp = std::sync::Arc::new(udp);
    let api_addr = api.local_addr()?;
    let advertise = args.advertise.unwrap_or_else(|| {
        if listen.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], listen.port()))
        } else {
            listen
        }
    });
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no OS randomness for a peer id: {e}"))?;
    let buffers = buffers::BufferPool::for_frames();
    let trimmed = buffers.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            every.tick().await;
            trimmed.trim_if_idle();
        }
    });
    let peer_id = PeerId::from_bytes(id);
    let metrics = std::sync::Arc::new(metrics::Metrics::new());
    let (peer_conns, http_conns, signal_conns) = actor::fd_budget(raise_fd_limit());
    let state = NodeState {
        addrs: vec![advertise.to_string()],
        zone: args.zone.clone().unwrap_or_default(),
        role: Role::Seed,
        upload_capacity: args.max_upload_rate.map_or(0, |r| r.0),
        ..NodeState::default()
    };
    let seed = u64::from_le_bytes(id[8..16].try_into().unwrap_or_default());
    let membership = Membership::new(
        MembershipConfig::default(),
        peer_id,
        state,
        Instant::ZERO,
        seed,
    )
    .context("the --zone label is too long (at most 64 bytes)")?;
    let gossip = gossip::Gossip::new(membership, udp.clone());
    let settings = actor::Settings {
        peer_id,
        listen,
        advertise,
        peers: args.peers,
        limiter: args
            .max_upload_rate
            .map(|r| std::sync::Arc::new(std::sync::Mutex::new(conn::Limiter::new(r.0)))),
        buffers,
        receiving: conn::ReceiveBudget::new(),
        upload_cap: args.max_upload_rate.map(|r| r.0),
        join: args.join,
        rtc: None,
        signal_url: None,
        max_fetches: args.max_fetches,
        max_conns: peer_conns,
        metrics: metrics.clone(),
        max_storage: args.max_storage.map(|s| s.0),
        evict_after: args.evict_after.map(|d| d.0),
        seed_copies: args.seed_copies,
        seed_time: args.seed_time.map(|d| d.0),
    };
    let mut settings = settings;
    let signal_host = if api_addr.ip().is_unspecified() {
        advertise.ip()
    } else {
        api_addr.ip()
    };
    let own_signal = (!args.no_signal).then(|| {
        format!(
            "ws://{}{}",
            SocketAddr::new(signal_host, api_addr.port()),
            pollen_signal::PATH
        )
    });
    let turn_credentials = match &args.turn_credentials {
        None => None,
        Some(s) => Some(
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .context("--turn-credentials takes USER:PASSWORD")?,
        ),
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let servers: Vec<String> = own_signal.iter().cloned().chain(args.signal).collect();
    settings.rtc = Some(webrtc::spawn(
        peer_id,
        webrtc::RtcConfig {
            udp_ip: advertise.ip(),
            ice_servers: args.ice_servers,
            turn_credentials,
        },
        servers,
        tx.clone(),
    ));
    settings.signal_url = own_signal.clone();
    gossip::spawn_receiver(udp, tx.clone());
    let accept_tx = tx.clone();
    tokio::spawn(async move {
        loop {
            match peers.accept().await {
                Ok((stream, addr)) => {
                    if accept_tx.send(Input::Accepted(stream, addr)).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!("accepting a peer: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    let mut app = api::router(api::AppState {
        inputs: tx.clone(),
        store: store.clone(),
        metrics,
    });
    if own_signal.is_some() {
        let signaling = pollen_signal::Signaling::new(pollen_signal::Config {
            max_connections: signal_conns,
            // A dashboard tab left open shares nothing for hours; it is local, and counted.
            unjoined_timeout: std::time::Duration::from_secs(3600),
            ..pollen_signal::Config::default()
        });
        app = app.merge(pollen_signal::router(signaling));
    }
    let web_dir = web::find_dir(args.web.as_deref());
    if let Some(dir) = web_dir.as_deref()
        && !dir.join("index.html").is_file()
    {
        anyhow::bail!(
            "{} holds no index.html: give --web the directory ./scripts/run builds (target/pollen-www)",
            dir.display()
        );
    }
    app = app.merge(web::router(web_dir.as_deref()));
    tokio::spawn(http::serve(api, app, http_conns));
    eprintln!(
        "pollen node {}: peers on {listen} (advertised as {advertise}), API on http://{api_addr}, data in {}{}{}",
        settings.peer_id,
        args.data.display(),
        own_signal
            .as_deref()
            .map(|u| format!(", signaling on {u}"))
            .unwrap_or_default(),
        if web_dir.is_some() {
            format!(
                ", dashboard on http://{}/",
                SocketAddr::new(signal_host, api_addr.port())
            )
        } else {
            String::new()
        }
    );
    tracing::info!(
        peer = %settings.peer_id,
        %listen,
        %advertise,
        api = %api_addr,
        data = %args.data.display(),
        "node started"
    );
    let stop_tx = tx.clone();
    let actor = actor::Actor::start(settings, store, tx, gossip)?;
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("pollen node: leaving the cluster and stopping");
        let (done, _) = oneshot::channel();
        let _ = stop_tx.send(Input::Shutdown(done));
    });
    actor.run(rx).await;
    Ok(())
}

/// Raises the soft open-file limit to the hard one (many peers need many sockets); returns
/// the limit in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if limit.maximum.is_none_or(|hard| hard > soft) {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum.unwrap_or(u64::MAX);
        }
    }
    soft
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
