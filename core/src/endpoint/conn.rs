//! One connection's state: its handshake, the swarms it carries, and what it has sent.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use bytes::Bytes;

use crate::{ContentId, Instant, PeerId, swarm::LinkId};

/// One swarm's link on a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    /// The swarm's id for the link.
    pub(crate) link: LinkId,
    /// Our number for the direction we send on.
    pub(crate) out: u32,
    /// The peer's number for the direction it sends on, once it opened or answered.
    pub(crate) inbound: Option<u32>,
    /// Both ends opened the channel at once (each opened its own direction unasked).
    pub(crate) glare: bool,
    /// We opened it unasked (it moves with us to a connection that replaces this one).
    pub(crate) ours: bool,
}

/// Bytes handed to the driver for a connection and not yet reported sent.
#[derive(Debug, Clone, Copy)]
struct Unsent {
    /// The swarm link whose frames they carry, if any.
    link: Option<(ContentId, LinkId)>,
    /// Bytes of headers (or of the connection's own frames) not yet sent, counted first.
    overhead: u64,
    /// The swarm's own bytes not yet sent.
    inner: u64,
}

/// One connection.
pub(crate) struct Conn {
    /// We opened it (dialed, or sent the WebRTC offer).
    pub(crate) dialed: bool,
    /// When it opened (its handshake must arrive in time).
    pub(crate) opened_at: Instant,
    /// The peer and its listen port, once its handshake arrived.
    pub(crate) peer: Option<PeerId>,
    pub(crate) listen_port: Option<u16>,
    /// When its handshake arrived.
    pub(crate) ready_at: Option<Instant>,
    /// A block has gone either way on it.
    pub(crate) carried_blocks: bool,
    /// The swarms linked on it.
    pub(crate) channels: BTreeMap<ContentId, Channel>,
    /// The peer's channel numbers, to their swarms.
    pub(crate) inbound: BTreeMap<u32, ContentId>,
    /// Swarms we open once the handshake arrives.
    pub(crate) pending: BTreeSet<ContentId>,
    next_channel: u32,
    /// Segments waiting for the driver, in order.
    pub(crate) outbox: Vec<Bytes>,
    /// Whether the driver reports sent bytes (else `unsent` stays empty).
    tracks_sent: bool,
    unsent: VecDeque<Unsent>,
}

impl Conn {
    pub(crate) fn new(now: Instant, dialed: bool, tracks_sent: bool) -> Self {
        Self {
            dialed,
            opened_at: now,
            peer: None,
            listen_port: None,
            ready_at: None,
            carried_blocks: false,
            channels: BTreeMap::new(),
            inbound: BTreeMap::new(),
            pending: BTreeSet::new(),
            next_channel: 0,
            outbox: Vec::new(),
            tracks_sent,
            unsent: VecDeque::new(),
        }
    }

    /// A fresh channel number for our direction (`None` once they ran out).
    pub(crate) fn new_channel(&mut self) -> Option<u32> {
        let n = self.next_channel;
        self.next_channel = n.checked_add(1)?;
        Some(n)
    }

    /// The swarm whose channel we send on as `out`.
    pub(crate) fn by_out(&self, out: u32) -> Option<ContentId> {
        self.channels
            .iter()
            .find(|(_, c)| c.out == out)
            .map(|(id, _)| *id)
    }

    /// Forgets a swarm's channel; returns it.
    pub(crate) fn remove(&mut self, id: &ContentId) -> Option<Channel> {
        let ch = self.channels.remove(id)?;
        if let Some(n) = ch.inbound {
            self.inbound.remove(&n);
        }
        Some(ch)
    }

    /// Queues bytes of the connection itself.
    pub(crate) fn push_own(&mut self, frame: Vec<u8>) {
        self.note_unsent(Unsent {
            link: None,
            overhead: frame.len() as u64,
            inner: 0,
        });
        self.outbox.push(Bytes::from(frame));
    }

    /// Notes a swarm link's wrapped frames just put in the outbox: `inner` of the `wire`
    /// bytes are the swarm's.
    pub(crate) fn note_swarm(&mut self, link: (ContentId, LinkId), wire: u64, inner: u64) {
        self.note_unsent(Unsent {
            link: Some(link),
            overhead: wire.saturating_sub(inner),
            inner,
        });
    }

    fn note_unsent(&mut self, u: Unsent) {
        if self.tracks_sent {
            self.unsent.push_back(u);
        }
    }

    /// The driver sent `bytes` of this connection: `to_swarm` hears how many of each swarm
    /// link's own bytes that was (headers count as sent first).
    pub(crate) fn sent(
        &mut self,
        mut bytes: u64,
        mut to_swarm: impl FnMut(ContentId, LinkId, u64),
    ) {
        while bytes > 0 {
            let Some(front) = self.unsent.front_mut() else {
                break;
            };
            let overhead = bytes.min(front.overhead);
            front.overhead -= overhead;
            bytes -= overhead;
            let inner = bytes.min(front.inner);
            front.inner -= inner;
            bytes -= inner;
            if let (Some((id, link)), true) = (front.link, inner > 0) {
                to_swarm(id, link, inner);
            }
            if front.overhead == 0 && front.inner == 0 {
                self.unsent.pop_front();
            }
        }
    }
}
