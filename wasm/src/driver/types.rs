//! What the driver reports: its outputs, progress, piece maps, links and errors.

use pollen_core::{ContentId, PeerId, swarm::LinkId};

use super::MAX_BROWSER_ARTIFACT;

/// Why the driver refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// The artifact is larger than a browser peer holds.
    TooLarge(u64),
    /// The name is not valid in a ticket.
    Ticket(String),
    /// The page cannot hold the artifact in memory.
    OutOfMemory(u64),
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(size) => write!(
                f,
                "an artifact of {size} bytes is larger than a browser peer holds ({MAX_BROWSER_ARTIFACT} bytes)"
            ),
            Self::Ticket(err) => write!(f, "cannot make a ticket: {err}"),
            Self::OutOfMemory(size) => write!(
                f,
                "this page cannot set aside {size} bytes of memory for the artifact"
            ),
        }
    }
}

impl std::error::Error for DriverError {}

/// What the driver asks of its glue. A link is one data channel to one peer; it carries
/// every swarm the two share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these messages on the link, in order.
    Send(LinkId, Vec<Vec<u8>>),
    /// Close the link (the driver has forgotten it).
    Close(LinkId),
    /// The link's handshake arrived: it joins us to this peer, and can carry any other
    /// swarm the two share ([`super::Driver::share_link`]).
    Ready(LinkId, PeerId),
    /// An artifact's progress changed.
    Progress(ContentId),
    /// An artifact is complete and verified.
    Complete(ContentId),
    /// A peer sent data that failed verification and was banned.
    Banned(ContentId, PeerId),
}

/// Progress of one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Verified bytes held.
    pub have_bytes: u64,
    /// The artifact's size.
    pub size: u64,
    /// Verified pieces held.
    pub have_pieces: u32,
    /// Pieces in the artifact.
    pub pieces: u32,
    /// Links with a completed handshake.
    pub peers: usize,
    /// Payload bytes received.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Whether every piece is held.
    pub complete: bool,
}

/// Which pieces of an artifact are held, and who sent each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceMap {
    /// The peers pieces came from; `pieces` refers to them by index.
    pub peers: Vec<PeerId>,
    /// One entry per piece: [`PieceMap::MISSING`], [`PieceMap::LOCAL`], or
    /// `FIRST_PEER + i` for `peers[i]` ([`PieceMap::OTHER`] beyond the last index that fits).
    pub pieces: Vec<u8>,
}

impl PieceMap {
    /// Not held yet.
    pub const MISSING: u8 = 0;
    /// Held from the start (shared from this page).
    pub const LOCAL: u8 = 1;
    /// The first peer's index.
    pub const FIRST_PEER: u8 = 2;
    /// From a peer beyond the ones that fit in a byte.
    pub const OTHER: u8 = u8::MAX;
}

/// One connected peer of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The peer, once its handshake arrived.
    pub peer: Option<PeerId>,
    /// Pieces the peer says it holds.
    pub peer_pieces: u32,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
}
