//! What the swarm knows about one link.

use alloc::{collections::VecDeque, vec::Vec};

use crate::{Bitfield, Instant, PeerId, wire::BlockRef};

/// A block we asked for and its deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outstanding {
    pub(crate) block: BlockRef,
    pub(crate) deadline: Instant,
}

/// State of one link.
#[derive(Debug)]
pub(crate) struct Link {
    /// The peer, once its handshake arrived.
    pub(crate) peer: Option<PeerId>,
    /// When the link was connected (for the handshake deadline).
    pub(crate) connected_at: Instant,
    /// Pieces the peer holds.
    pub(crate) remote_have: Bitfield,
    /// Whether the peer lets us request.
    pub(crate) peer_unchoked_us: bool,
    /// Whether we told the peer we are interested.
    pub(crate) we_are_interested: bool,
    /// Whether the peer is interested in us.
    pub(crate) peer_interested: bool,
    /// Whether we let the peer request.
    pub(crate) we_unchoked_peer: bool,
    /// When we last changed our choke state towards the peer (slot rotation order).
    pub(crate) choke_changed_at: Instant,
    /// Our requests awaiting blocks, oldest first.
    pub(crate) outstanding: VecDeque<Outstanding>,
    /// Requests from the peer waiting for a piece to be read.
    pub(crate) queued: VecDeque<BlockRef>,
    /// Encoded frames waiting for the driver.
    pub(crate) outbox: Vec<u8>,
    /// Payload bytes received.
    pub(crate) downloaded: u64,
    /// Payload bytes sent.
    pub(crate) uploaded: u64,
}

impl Link {
    pub(crate) fn new(now: Instant, pieces: u32) -> Self {
        Self {
            peer: None,
            connected_at: now,
            remote_have: Bitfield::new(pieces),
            peer_unchoked_us: false,
            we_are_interested: false,
            peer_interested: false,
            we_unchoked_peer: false,
            choke_changed_at: now,
            outstanding: VecDeque::new(),
            queued: VecDeque::new(),
            outbox: Vec::new(),
            downloaded: 0,
            uploaded: 0,
        }
    }

    /// Whether the handshake has arrived.
    pub(crate) fn ready(&self) -> bool {
        self.peer.is_some()
    }
}
