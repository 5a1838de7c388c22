//! pollen-signal: the WebSocket bootstrap server.
//!
//! Peers connect to `/signal`, name themselves, join swarms, receive a random sample of each
//! swarm's members, and exchange WebRTC offers, answers and ICE candidates with them through
//! the server. The protocol is [`pollen_core::signal`]. Every connection is held to
//! [`Limits`]; anything refused is answered with an error message, never a crash, and other
//! connections are unaffected. The server as a whole is held to [`Config`]: connections in
//! all and per address (refused with 503 and 429 before the upgrade), how long a connection
//! may stay in no swarm, and how long a write may wait; so every wait of a session ends, and
//! an idle connection costs a few KiB. `pollen-signal` runs it alone with [`serve`], which
//! also bounds connections until they are upgraded; `pollen node` embeds [`router`] in its
//! HTTP server.

mod admission;
mod rate;
mod registry;
mod serve;
mod session;

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use admission::{Admission, Refused};
use axum::{
    Router,
    extract::{ConnectInfo, FromRequestParts, State, WebSocketUpgrade},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
pub use pollen_core::signal::Limits;
use pollen_core::{
    ContentId, PeerId,
    signal::{self, ErrorCode, FromServer, Member, PeerKind, Signal},
};
use registry::Registry;
pub use serve::serve;

/// The path the WebSocket endpoint is served on.
pub const PATH: &str = "/signal";

/// Messages beyond this many times the limit are refused by the WebSocket layer itself (the
/// session still answers with an error before closing).
const HARD_CAP_FACTOR: usize = 4;

/// Bytes the WebSocket layer reads from the socket at a time, and allocates up front for each
/// connection. tungstenite's default (128 KiB, zero-filled on the first read) was nearly all of
/// an idle connection's memory; a message larger than this grows the buffer while it arrives.
const READ_BUFFER: usize = 4 * 1024;

/// Server-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// What each connection is held to.
    pub limits: Limits,
    /// Most connections at once; more are refused with 503.
    pub max_connections: usize,
    /// Most connections at once from one address (an IPv4 address, or an IPv6 /64: one
    /// host or one subscriber); more from it are refused with 429, so that one client cannot
    /// take every one of [`max_connections`](Self::max_connections).
    ///
    /// Counted only where the server is told the remote address: [`serve`] does; an app that
    /// embeds the [`router`] must serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` or insert a
    /// [`ConnectInfo<SocketAddr>`] into each request's extensions. Without it only the total is
    /// capped. Behind a reverse proxy every connection comes from the proxy's address: set this
    /// to `max_connections` there.
    ///
    /// [`serve`] holds connections not yet upgraded to the same two caps, separately.
    pub max_connections_per_ip: usize,
    /// How long a connection may stay in no swarm (from its start, or from leaving its last
    /// swarm) before it is closed with an [`ErrorCode::Idle`] error, however often it pings:
    /// pings keep a member waiting for offers connected, not a connection that does nothing.
    pub unjoined_timeout: Duration,
    /// Longest a TCP connection served by [`serve`] may take to become a WebSocket (send its
    /// request and be answered); it is closed then. Not applied to the bare [`router`].
    pub upgrade_timeout: Duration,
    /// Longest wait for one write to a connection (a peer that does not read its socket stops
    /// them); the connection is dropped then, and its queued relays with it.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_connections: 10_000,
            max_connections_per_ip: 16,
            unjoined_timeout: Duration::from_secs(300),
            upgrade_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A running signaling server's shared state; cheap to clone.
#[derive(Clone)]
pub struct Signaling {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    registry: Mutex<Registry>,
    /// Open WebSocket connections (and those being upgraded).
    websockets: Arc<Admission>,
    next_conn: AtomicU64,
}

/// Counts of what a server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Connections that said Hello.
    pub peers: usize,
    /// Swarms with at least one member.
    pub swarms: usize,
    /// Addresses (IPv4 addresses and IPv6 /64s) with open connections, where known.
    pub addresses: usize,
}

impl Signaling {
    /// A server with `config`.
    pub fn new(config: Config) -> Self {
        let mut seed = [0u8; 8];
        // Samples only need to differ between joins, not to be unpredictable.
        let _ = getrandom::fill(&mut seed);
        Self {
            inner: Arc::new(Inner {
                config,
                registry: Mutex::new(Registry::new(u64::from_le_bytes(seed))),
                websockets: Admission::new(config.max_connections, config.max_connections_per_ip),
                next_conn: AtomicU64::new(0),
            }),
        }
    }

    /// What the server holds now.
    pub fn stats(&self) -> Stats {
        let (connections, addresses) = self.inner.websockets.counts();
        let reg = self.registry();
        Stats {
            connections,
            peers: reg.peer_count(),
            swarms: reg.swarm_count(),
            addresses,
        }
    }

    fn config(&self) -> &Config {
        &self.inner.config
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry stays consistent across a panic in another session: use it anyway.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn hello(
        &self,
        conn: u64,
        peer: PeerId,
        kind: PeerKind,
        outbox: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<(), ErrorCode> {
        self.registry().hello(conn, peer, kind, outbox)
    }

    fn join(
        &self,
        me: PeerId,
        swarm: ContentId,
        limits: &Limits,
    ) -> Result<Vec<Member>, ErrorCode> {
        let max = (limits.max_members as usize).min(signal::MAX_MEMBERS);
        self.registry()
            .join(me, swarm, limits.max_swarms as usize, max)
    }

    /// Leaves `swarm`; returns how many swarms `me` is still in.
    fn leave(&self, me: PeerId, swarm: ContentId) -> usize {
        self.registry().leave(me, swarm)
    }

    fn relay(
        &self,
        from: PeerId,
        to: PeerId,
        swarm: ContentId,
        signal: Signal,
    ) -> Result<(), ErrorCode> {
        self.registry().relay(from, to, swarm, |kind| {
            signal::encode_from_server(&FromServer::Relay {
                swarm,
                from,
                kind,
                signal,
            })
            // Bounds were checked on the way in; the relayed message is the same size.
            .unwrap_or_default()
        })
    }

    fn disconnect(&self, conn: u64, peer: PeerId) {
        self.registry().disconnect(conn, peer);
    }
}

/// The WebSocket endpoint at [`PATH`], ready to merge into an axum app.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` (or otherwise give
/// each request a [`ConnectInfo<SocketAddr>`]) for [`Config::max_connections_per_ip`] to apply,
/// or with [`serve`], which does that and bounds connections until they are upgraded.
pub fn router(server: Signaling) -> Router {
    Router::new().route(PATH, get(upgrade)).with_state(server)
}

async fn upgrade(
    State(server): State<Signaling>,
    RemoteIp(ip): RemoteIp,
    ws: WebSocketUpgrade,
) -> Response {
    let config = server.inner.config;
    let admitted = match server.inner.websockets.admit(ip) {
        Ok(admitted) => admitted,
        Err(Refused::Total) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many signaling connections; try again later",
            )
                .into_response();
        }
        Err(Refused::PerAddress) => {
            tracing::debug!(
                ?ip,
                "refusing a signaling connection: too many from its address"
            );
            return (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many signaling connections from your address (at most {}); close one first",
                    config.max_connections_per_ip
                ),
            )
                .into_response();
        }
    };
    let limits = config.limits;
    let conn = server.inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let hard_cap = (limits.max_message as usize).saturating_mul(HARD_CAP_FACTOR);
    ws.max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .read_buffer_size(READ_BUFFER)
        // Each message is written (and flushed) before the next: nothing waits to be batched,
        // and what waits for a slow reader is at most a message or two.
        .write_buffer_size(0)
        .max_write_buffer_size(hard_cap.saturating_mul(2))
        .on_upgrade(move |socket| async move {
            // Counted until the session ends, or until this is dropped unrun if the upgrade
            // fails.
            session::run(socket, server, conn).await;
            drop(admitted);
        })
}

/// The remote address's IP, where the server was given it as a [`ConnectInfo<SocketAddr>`]
/// (`pollen-signal` is; an embedding server may not be).
struct RemoteIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for RemoteIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}
