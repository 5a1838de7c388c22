//! Tunables of the membership protocol, and what it asks its driver to do.

use alloc::{string::String, vec::Vec};
use core::time::Duration;

use crate::PeerId;

/// Tunables of membership; the defaults suit a data-centre LAN (memberlist's, mostly).
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// How often a gossip round runs: rumors go to `fanout` random members.
    pub round_interval: Duration,
    /// Members each round's rumors go to.
    pub fanout: usize,
    /// How often one member is probed.
    pub probe_interval: Duration,
    /// How long a direct ping may go unanswered before others are asked to ping.
    pub probe_timeout: Duration,
    /// Members asked to ping a silent member on our behalf.
    pub indirect_probes: usize,
    /// Suspicion lasts at least `suspicion_mult × probe_interval × max(1, log10 N)`.
    pub suspicion_mult: u32,
    /// ... and at most `suspicion_max_mult` times that, shortened by each confirmation.
    pub suspicion_max_mult: u32,
    /// Independent suspicions that shorten the timeout to its minimum.
    pub suspicion_confirmations: u32,
    /// Members who must have suspected a member before it is declared dead (fewer when
    /// fewer others exist): one member's word alone never kills a node.
    pub accusers_for_death: usize,
    /// Each rumor is sent `retransmit_mult × ceil(log2(N + 1))` times.
    pub retransmit_mult: u32,
    /// How often an anti-entropy exchange starts with one random member.
    pub sync_interval: Duration,
    /// Most members listed in one sync request.
    pub max_digest: usize,
    /// Largest packet we send, in bytes.
    pub max_packet: usize,
    /// How long dead and departed members are remembered (so stale news cannot revive them).
    pub dead_retention: Duration,
    /// Most members remembered; news of more is ignored.
    pub max_members: usize,
    /// How long a member we heard of only from others (it never answered our ping nor is in
    /// our table) waits to answer our ping before it is forgotten. Until it answers it is not a
    /// member: not listed, probed, counted nor passed on.
    pub unverified_timeout: Duration,
    /// Pings sent per gossip round to members heard of from others, to verify them.
    pub verify_per_round: usize,
    /// Most members waiting to be verified at once; news of more is ignored until some are
    /// verified or forgotten.
    pub max_unverified: usize,
    /// Most of those one transport address may have told us of.
    pub max_unverified_per_source: usize,
    /// Most members one packet may add (to be verified, or directly with bounded views).
    pub max_new_per_packet: usize,
    /// Most members we talk to (a browser's handful of data channels); `None`: everyone.
    pub active_view: Option<usize>,
    /// How long after a join is sent to a join address that is not a member yet it is sent
    /// again; each retry waits twice as long as the one before, up to `reconnect_interval`.
    pub join_retry: Duration,
    /// The longest wait between two joins sent to a join address that is not a member (it
    /// never answered, restarted, or a partition cut it off), and the first wait before we try
    /// to reach a member declared dead again (each try waits twice as long, up to eight times
    /// this).
    pub reconnect_interval: Duration,
    /// How long we keep trying to reach a member declared dead (it may only have been cut off:
    /// when the partition heals, the two sides find each other again).
    pub reconnect_timeout: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            round_interval: Duration::from_millis(200),
            fanout: 3,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            suspicion_mult: 4,
            suspicion_max_mult: 6,
            suspicion_confirmations: 3,
            accusers_for_death: 2,
            retransmit_mult: 2,
            sync_interval: Duration::from_secs(1),
            max_digest: 128,
            max_packet: 8 * 1024,
            dead_retention: Duration::from_secs(120),
            max_members: 100_000,
            unverified_timeout: Duration::from_secs(10),
            verify_per_round: 8,
            max_unverified: 1024,
            max_unverified_per_source: 256,
            max_new_per_packet: 64,
            active_view: None,
            join_retry: Duration::from_secs(1),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(3600),
        }
    }
}

/// A packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The member it is for, when known (a join goes to an address only).
    pub to: Option<PeerId>,
    /// Where to send it: an address the member advertised, or where its packet came from.
    pub addr: String,
    /// The packet.
    pub payload: Vec<u8>,
}

/// What changed in the membership, for the driver to act on or log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member appeared (or came back).
    Joined(PeerId),
    /// A member's state changed (addresses, zone, holdings, load).
    Updated(PeerId),
    /// A member is suspected dead.
    Suspected(PeerId),
    /// A suspected member refuted and is alive.
    Recovered(PeerId),
    /// A member was declared dead.
    Died(PeerId),
    /// A member left on purpose.
    Left(PeerId),
    /// Someone suspected us; we re-announced ourselves.
    Refuted,
    /// Our active view gained a member: open a link to it (bounded views only).
    Connect(PeerId),
    /// Our active view lost a member: its link may close (bounded views only).
    Disconnect(PeerId),
}
