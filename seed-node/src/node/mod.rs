//! `pollen node`: the daemon. A single actor task owns every swarm and link; link tasks,
//! disk workers and the HTTP API talk to it through one channel of [`Input`]s.

mod actor;
mod api;
mod buffers;
mod conn;
mod disk;
mod tickets;

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result};
use pollen_core::{ContentId, PeerId, Ticket};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

use crate::{
    api_types::{GetReply, ShareReply, Status},
    cli::NodeArgs,
    store::{Artifact, Store},
};
use conn::ConnId;
use disk::DiskResult;

/// Everything that can wake the actor.
pub(crate) enum Input {
    /// A peer connected to us.
    Accepted(TcpStream, SocketAddr),
    /// Our dial of `addr` for swarm `swarm` finished.
    Dialed {
        swarm: ContentId,
        addr: SocketAddr,
        result: std::io::Result<TcpStream>,
    },
    /// A frame body arrived on a link.
    Frame(ConnId, bytes::Bytes),
    /// A link closed, and why.
    Closed(ConnId, String),
    /// A disk worker (of an artifact, in a generation) finished something.
    Disk(ContentId, u64, DiskResult),
    /// A request from the HTTP API.
    Api(ApiCall),
}

/// Requests from the HTTP API, each with its reply channel.
pub(crate) enum ApiCall {
    /// Seed a freshly imported artifact.
    AddSeed(Box<Artifact>, oneshot::Sender<ShareReply>),
    /// The ticket of an artifact the node already holds completely.
    TicketFor(ContentId, oneshot::Sender<Result<ShareReply, String>>),
    /// Fetch an artifact.
    Get(Ticket, oneshot::Sender<Result<GetReply, String>>),
    /// Report status.
    Status(oneshot::Sender<Status>),
    /// Write a complete artifact to a path.
    Export(ContentId, PathBuf, oneshot::Sender<Result<(), String>>),
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
    let settings = actor::Settings {
        peer_id: PeerId::from_bytes(id),
        listen,
        advertise,
        peers: args.peers,
        limiter: args
            .max_upload_rate
            .map(|r| std::sync::Arc::new(std::sync::Mutex::new(conn::Limiter::new(r.0)))),
        buffers,
    };

    let (tx, rx) = mpsc::unbounded_channel();
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
    let app = api::router(api::AppState {
        inputs: tx.clone(),
        store: store.clone(),
    });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(api, app).await {
            tracing::error!("the API server stopped: {err}");
        }
    });
    eprintln!(
        "pollen node {}: peers on {listen} (advertised as {advertise}), API on http://{api_addr}, data in {}",
        settings.peer_id,
        args.data.display()
    );
    let actor = actor::Actor::start(settings, store, tx)?;
    tokio::select! {
        () = actor.run(rx) => {}
        () = shutdown_signal() => eprintln!("pollen node: stopping"),
    }
    Ok(())
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
