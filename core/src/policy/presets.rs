//! The swarm settings of each kind of peer, so the node, the browser and the simulator run
//! the same ones.

use core::time::Duration;

use crate::{
    PeerId,
    swarm::{SPREAD_FIRST_MIN_LINKS, SwarmConfig},
};

/// Bytes a native link may have handed to its writer and not yet sent
/// ([`SwarmConfig::send_window`]).
pub const NATIVE_SEND_WINDOW: u64 = 256 * 1024;

/// How long a native fetch that gets no block from anyone keeps a link that sends none
/// ([`SwarmConfig::idle_link_timeout`]): the node then links to other holders. Longer than
/// two rechokes, so an origin that spreads first (and re-offers a refused piece at its next
/// rechoke) is not taken for an idle peer.
pub const NATIVE_IDLE_LINK_TIMEOUT: Duration = Duration::from_secs(25);

/// Upload rate per upload slot, bytes per second ([`SwarmConfig::slot_rate`]), applied when
/// the uplink's capacity is known: what the simulator found best for mixed and lossy links.
pub const NATIVE_SLOT_RATE: u64 = 1_000_000;

/// Upload slots of a browser peer: its links are slower and fewer than a data centre's.
pub const BROWSER_UPLOAD_SLOTS: usize = 4;

/// Bytes a browser link may have queued for its data channel and not yet handed to it: swarms
/// sharing one peer connection take turns by this much.
pub const BROWSER_SEND_WINDOW: u64 = 256 * 1024;

/// A native node's swarm (a seed node, or a simulated one): a send window (its writers
/// report what they sent), slots sized to `upload_capacity` when known, and, for an artifact
/// it holds whole from the start (`origin`), spreading each piece first.
pub fn native(
    peer: PeerId,
    listen_port: Option<u16>,
    upload_capacity: Option<u64>,
    origin: bool,
) -> SwarmConfig {
    let mut cfg = SwarmConfig::new(peer);
    cfg.listen_port = listen_port;
    cfg.send_window = Some(NATIVE_SEND_WINDOW);
    cfg.slot_rate = Some(NATIVE_SLOT_RATE);
    cfg.upload_capacity = upload_capacity;
    cfg.idle_link_timeout = Some(NATIVE_IDLE_LINK_TIMEOUT);
    if origin {
        // Peers spread what it sent once, so it sends about one copy.
        cfg.spread_first = true;
        cfg.spread_first_min_links = SPREAD_FIRST_MIN_LINKS;
    }
    cfg
}

/// A browser peer's swarm: few upload slots, and a send window (its glue reports what it
/// handed to the data channel).
pub fn browser(peer: PeerId) -> SwarmConfig {
    let mut cfg = SwarmConfig::new(peer);
    cfg.upload_slots = BROWSER_UPLOAD_SLOTS;
    cfg.send_window = Some(BROWSER_SEND_WINDOW);
    cfg
}
