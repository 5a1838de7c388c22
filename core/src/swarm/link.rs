//! What the swarm knows about one link.

use alloc::{collections::VecDeque, vec::Vec};

use bytes::Bytes;

use crate::{Bitfield, Instant, PeerId, wire::BlockRef};

/// Bytes waiting to be sent on a link, in order: small frames are appended to a buffer, block
/// data is queued as shared slices of the piece it comes from, never copied.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    segments: Vec<Bytes>,
    tail: Vec<u8>,
}

impl Outbox {
    /// Appends encoded bytes.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
    }

    /// Appends shared bytes without copying them.
    pub(crate) fn push_shared(&mut self, bytes: Bytes) {
        if !self.tail.is_empty() {
            self.segments
                .push(Bytes::from(core::mem::take(&mut self.tail)));
        }
        self.segments.push(bytes);
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.tail.is_empty()
    }

    /// Takes everything waiting, in order.
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        if !self.tail.is_empty() {
            self.segments
                .push(Bytes::from(core::mem::take(&mut self.tail)));
        }
        core::mem::take(&mut self.segments)
    }
}

/// A block served to the peer but held back by the send window: its frame header and the
/// shared slices of its data.
#[derive(Debug)]
pub(crate) struct HeldBlock {
    pub(crate) block: BlockRef,
    pub(crate) frame: Vec<Bytes>,
    /// Bytes on the wire.
    pub(crate) len: u64,
}

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
    /// How many pieces the peer held at our last rechoke (whether it is stalled since).
    pub(crate) held_at_rechoke: u32,
    /// Pieces we began serving the peer, latest last (at most `MAX_STARTED`): their other
    /// blocks are never refused under `spread_first`.
    pub(crate) started: VecDeque<u32>,
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
    /// When the link last made progress: a block arrived, or a request went out while none
    /// was outstanding.
    pub(crate) progress_at: Instant,
    /// When the link last sent us a block or a manifest part, or answered a request with a
    /// refusal, or we last became interested in it (or it connected): how long it has been
    /// of no use is counted from here.
    pub(crate) useful_at: Instant,
    /// Whether it ever sent us a block or a manifest part: a peer that did is not taken for
    /// one that never serves.
    pub(crate) answered: bool,
    /// This link's key in the swarm's `deadlines`: when its requests time out or stall.
    pub(crate) deadline: Option<Instant>,
    /// Requests from the peer waiting for a piece to be read.
    pub(crate) queued: VecDeque<BlockRef>,
    /// Encoded frames waiting for the driver.
    pub(crate) outbox: Outbox,
    /// Blocks served but held back until the send window has room (with a window only).
    pub(crate) held: VecDeque<HeldBlock>,
    /// Bytes handed to the driver and not yet reported sent (with a window only).
    pub(crate) in_flight: u64,
    /// Payload bytes received.
    pub(crate) downloaded: u64,
    /// Payload bytes sent.
    pub(crate) uploaded: u64,
    /// Download rate from the peer, bytes per second, smoothed.
    pub(crate) rate: RateMeter,
    /// Request timeouts in a row without a block in between.
    pub(crate) snubs: u8,
    /// Piece hashes we sent the peer (it needs the manifest once).
    pub(crate) manifest_served: u64,
    /// Whether our manifest fetch from this peer timed out (we ask another).
    pub(crate) fetch_failed: bool,
    /// Whether the peer said it holds the manifest ([`crate::wire::Message::HaveManifest`]).
    pub(crate) has_manifest: bool,
    /// When the peer last refused to send us the manifest (we ask it again only after
    /// `stall_timeout`, if no other peer has it).
    pub(crate) manifest_refused_at: Option<Instant>,
    /// How we answered the peer's manifest requests.
    pub(crate) manifest_answer: ManifestAnswer,
    /// Whether we dialed it ([`crate::swarm::Swarm::handle_dialed`]).
    pub(crate) dialed: bool,
}

/// How we answered a peer's requests for the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestAnswer {
    /// It did not ask yet.
    NotAsked,
    /// We refused its request (a spreading seed lets peers pass the manifest on); the parts
    /// of that request are dropped, and its next request is served.
    Refused,
    /// We serve it.
    Served,
}

/// A smoothed rate, from byte counts sampled over windows of at least [`RateMeter::WINDOW`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RateMeter {
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Bytes per second; zero until the first window closes.
    pub(crate) per_sec: u64,
}

impl RateMeter {
    /// Shortest window a sample is taken over.
    const WINDOW: core::time::Duration = core::time::Duration::from_millis(50);

    /// Counts `bytes` received at `now`.
    pub(crate) fn record(&mut self, now: Instant, bytes: u64) {
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes;
        let elapsed = now.saturating_since(start);
        if elapsed >= Self::WINDOW {
            let sample = (self.window_bytes as u128 * 1_000_000 / elapsed.as_micros()) as u64;
            self.per_sec = if self.per_sec == 0 {
                sample
            } else {
                (self.per_sec + sample) / 2
            };
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
    }
}

impl Link {
    pub(crate) fn new(now: Instant, pieces: u32) -> Self {
        Self {
            peer: None,
            connected_at: now,
            remote_have: Bitfield::new(pieces),
            held_at_rechoke: 0,
            started: VecDeque::new(),
            peer_unchoked_us: false,
            we_are_interested: false,
            peer_interested: false,
            we_unchoked_peer: false,
            choke_changed_at: now,
            outstanding: VecDeque::new(),
            progress_at: now,
            useful_at: now,
            answered: false,
            deadline: None,
            queued: VecDeque::new(),
            outbox: Outbox::default(),
            held: VecDeque::new(),
            in_flight: 0,
            downloaded: 0,
            uploaded: 0,
            rate: RateMeter::default(),
            snubs: 0,
            manifest_served: 0,
            fetch_failed: false,
            has_manifest: false,
            manifest_refused_at: None,
            manifest_answer: ManifestAnswer::NotAsked,
            dialed: false,
        }
    }

    /// Whether the handshake has arrived.
    pub(crate) fn ready(&self) -> bool {
        self.peer.is_some()
    }
}
