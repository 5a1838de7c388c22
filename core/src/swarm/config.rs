//! Tunables of the swarm, and the outputs it asks its driver to carry out.

use alloc::vec::Vec;
use core::time::Duration;

use crate::{Manifest, PeerId};

/// Tunables of one swarm; the defaults suit data-centre links.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Our identity, sent in every handshake.
    pub peer_id: PeerId,
    /// The TCP port we accept links on, announced in handshakes.
    pub listen_port: Option<u16>,
    /// Block size requested from peers (clamped to the piece size and the wire's limit).
    pub block_size: u32,
    /// Fewest block requests kept outstanding on a link (also the start, before its rate is
    /// known).
    pub min_pipeline: usize,
    /// Most block requests outstanding on one link.
    pub max_pipeline: usize,
    /// How much data to keep requested from a link, in time at its measured rate: enough to
    /// cover the round trip, short enough that requests chosen now are not stale when served.
    pub pipeline_time: Duration,
    /// Most peers we upload to at once.
    pub upload_slots: usize,
    /// Most requests we queue for one peer; more are rejected.
    pub max_queued_requests: usize,
    /// How long a request may stay unanswered before it is re-requested elsewhere.
    pub request_timeout: Duration,
    /// How long a link with requests outstanding may send no block before they are
    /// re-requested elsewhere (a crashed peer is noticed in this time, not `request_timeout`).
    pub stall_timeout: Duration,
    /// How often upload slots rotate among waiting peers.
    pub rechoke_interval: Duration,
    /// How long a link may take to send its handshake.
    pub handshake_timeout: Duration,
    /// Pieces picked at random before switching to rarest first.
    pub random_first_pieces: u32,
    /// Verified pieces kept in memory to serve blocks from.
    pub piece_cache: usize,
    /// Most links downloading the same piece during end-game.
    pub endgame_duplicates: u8,
    /// Most bytes of downloaded pieces waiting to be checked and stored; beyond this no new
    /// piece is started, so a disk slower than the network does not make memory grow.
    pub max_pending_bytes: u64,
    /// For an origin: refuse to send a piece again while another linked peer holds it (or
    /// while its first copy is on its way to another peer), so that peers spread what the
    /// origin sent once and the origin spends its upload on pieces the swarm lacks. A peer
    /// partway through a piece it was served gets the rest. A refused piece is advertised again at a rechoke to a
    /// peer that got no piece since the last one, so a peer whose other sources left still
    /// gets it.
    pub spread_first: bool,
    /// With `spread_first`: refuse only while at least this many links are ready, so an
    /// origin linked to a few peers, whose upload is then a large part of the swarm's, serves
    /// at its full rate. 0 refuses whatever the count.
    pub spread_first_min_links: usize,
    /// Most bytes handed to the driver on one link and not yet reported sent with
    /// [`super::Swarm::handle_sent`]; block data beyond it waits in the swarm, so frames sent
    /// later (requests, haves) overtake it instead of queueing behind a slow uplink's backlog.
    /// `None` (the default) hands everything out at once, for drivers that do not report.
    pub send_window: Option<u64>,
    /// Upload rate each upload slot should get, bytes per second: with an `upload_capacity`
    /// the slots in use are capacity / `slot_rate` (at least two, at most `upload_slots`), so
    /// a slow uplink serves a few peers well instead of many peers slowly. `None` (the
    /// default), or no capacity, uses `upload_slots`.
    pub slot_rate: Option<u64>,
    /// Our uplink's capacity, bytes per second, if known (a configured upload limit).
    pub upload_capacity: Option<u64>,
    /// While nothing arrived from anyone for this long (no block, no manifest part), a link
    /// that could give us something (it holds pieces we want, or we fetch the manifest from
    /// it), that never gave anything (no block or manifest part; a refusal only restarts its
    /// wait) and gave nothing for this long either is dropped ([`DisconnectReason::Unproductive`]), so a driver can
    /// link to other holders instead: a peer that claims pieces and never serves them does
    /// not stall a fetch for good. `None` (the default) keeps every link.
    pub idle_link_timeout: Option<Duration>,
}

impl SwarmConfig {
    /// Defaults for a peer with identity `peer_id`.
    pub fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            listen_port: None,
            block_size: 128 * 1024,
            min_pipeline: 2,
            max_pipeline: 64,
            pipeline_time: Duration::from_millis(100),
            upload_slots: 8,
            max_queued_requests: 128,
            request_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(5),
            rechoke_interval: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            random_first_pieces: 4,
            piece_cache: 16,
            endgame_duplicates: 2,
            max_pending_bytes: 64 << 20,
            spread_first: false,
            spread_first_min_links: 0,
            send_window: None,
            slot_rate: None,
            upload_capacity: None,
            idle_link_timeout: None,
        }
    }
}

/// The `spread_first_min_links` node and simulator origins use: with fewer links the origin's
/// upload is too large a part of the swarm's to leave idle (in the simulator, spreading
/// first at N = 10 cost 0.6 T_min; at N = 100 and more, a few hundredths).
pub const SPREAD_FIRST_MIN_LINKS: usize = 16;

/// A link between us and one peer, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// What became of a piece the driver was asked to store ([`Action::StorePiece`]), for
/// [`super::Swarm::handle_piece_stored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The piece is in storage, durably: the swarm holds it from now on.
    Written,
    /// Storing it failed: the swarm does not hold it and will fetch it again.
    Failed,
}

/// Something the driver must do for the swarm.
#[derive(Debug, Clone)]
pub enum Action {
    /// Read piece `piece` from storage, verify it, and call [`super::Swarm::handle_piece_read`].
    ReadPiece {
        /// The piece.
        piece: u32,
    },
    /// Run the check (on any thread) and give the result to
    /// [`super::Swarm::handle_piece_checked`].
    CheckPiece(super::PieceCheck),
    /// Persist a verified piece, then call [`super::Swarm::handle_piece_stored`] with how
    /// that went.
    StorePiece {
        /// The piece.
        piece: u32,
        /// Its bytes, already verified.
        data: crate::PieceData,
    },
    /// Persist the manifest, which has been verified against the content id.
    StoreManifest(Manifest),
    /// Close the link; the swarm has already forgotten it.
    Disconnect {
        /// The link.
        link: LinkId,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Why the swarm closes a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer broke the protocol (malformed frame, message out of order, bad request).
    Protocol,
    /// The peer serves another artifact.
    WrongSwarm,
    /// The peer is us.
    SelfConnection,
    /// We already have a link to this peer.
    Duplicate,
    /// The peer sent data that failed verification, now or earlier.
    Banned,
    /// The peer did not complete its handshake in time.
    HandshakeTimeout,
    /// The peer let our requests time out again and again.
    Unresponsive,
    /// The peer holds pieces we want but sent us none while nobody else did either
    /// ([`SwarmConfig::idle_link_timeout`]).
    Unproductive,
}

/// Something that happened, for the driver to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link completed its handshake.
    PeerConnected {
        /// The link.
        link: LinkId,
        /// The peer.
        peer: PeerId,
    },
    /// The manifest arrived and verified against the content id.
    ManifestVerified,
    /// A piece verified and is being stored.
    PieceVerified {
        /// The piece.
        piece: u32,
        /// Who sent it.
        from: PeerId,
    },
    /// A peer sent data that failed verification and is banned.
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// The piece that failed, if it was a piece (otherwise the manifest).
        piece: Option<u32>,
    },
    /// Storing a piece failed; it will be fetched again.
    StoreFailed {
        /// The piece.
        piece: u32,
    },
    /// Every piece is held.
    Complete,
}

/// Counters of one link, for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// The link.
    pub link: LinkId,
    /// The peer, once its handshake arrived.
    pub peer: Option<PeerId>,
    /// Pieces the peer says it holds.
    pub peer_pieces: u32,
    /// Payload bytes received from the peer.
    pub downloaded: u64,
    /// Payload bytes sent to the peer.
    pub uploaded: u64,
    /// Whether the peer lets us request.
    pub unchoked_by_peer: bool,
    /// Whether we let the peer request.
    pub unchoked_by_us: bool,
}

/// A snapshot of a swarm's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmStats {
    /// Pieces held.
    pub have: u32,
    /// Pieces in the artifact.
    pub pieces: u32,
    /// Bytes held.
    pub have_bytes: u64,
    /// Payload bytes received (including blocks of pieces that failed or were wasted).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Whether the manifest is known.
    pub has_manifest: bool,
    /// Per-link counters.
    pub links: Vec<LinkStats>,
}
