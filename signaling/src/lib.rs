//! pollen-signal: the WebSocket bootstrap server.
//!
//! Peers connect to `/signal`, name themselves, join swarms, receive a random sample of each
//! swarm's members, and exchange WebRTC offers, answers and ICE candidates with them through
//! the server. The protocol is [`pollen_core::signal`]. Every connection is held to
//! [`Limits`]; anything refused is answered with an error message, never a crash, and other
//! connections are unaffected. `pollen-signal` runs it alone; `pollen node` embeds
//! [`router`] in its HTTP server.

mod rate;
mod registry;
mod session;

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use axum::{
    Router,
    extract::{State, WebSocketUpgrade},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
pub use pollen_core::signal::Limits;
use pollen_core::{
    ContentId, PeerId,
    signal::{self, ErrorCode, FromServer, Member, PeerKind, Signal},
};
use registry::Registry;

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_connections: 10_000,
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
    connections: AtomicUsize,
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
                connections: AtomicUsize::new(0),
                next_conn: AtomicU64::new(0),
            }),
        }
    }

    /// What the server holds now.
    pub fn stats(&self) -> Stats {
        let reg = self.registry();
        Stats {
            connections: self.inner.connections.load(Ordering::Relaxed),
            peers: reg.peer_count(),
            swarms: reg.swarm_count(),
        }
    }

    fn limits(&self) -> Limits {
        self.inner.config.limits
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

    fn leave(&self, me: PeerId, swarm: ContentId) {
        self.registry().leave(me, swarm);
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
pub fn router(server: Signaling) -> Router {
    Router::new().route(PATH, get(upgrade)).with_state(server)
}

async fn upgrade(State(server): State<Signaling>, ws: WebSocketUpgrade) -> Response {
    let limits = server.limits();
    let open = server.inner.connections.fetch_add(1, Ordering::Relaxed);
    if open >= server.inner.config.max_connections {
        server.inner.connections.fetch_sub(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many signaling connections; try again later",
        )
            .into_response();
    }
    // Counted until the session ends, or until the upgrade is dropped if it fails.
    let counted = Counted(server.clone());
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
            session::run(socket, counted.0.clone(), conn).await;
            drop(counted);
        })
}

/// One open connection in [`Inner::connections`], released on drop.
struct Counted(Signaling);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.inner.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
