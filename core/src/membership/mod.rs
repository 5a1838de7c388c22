//! Gossip membership: who is in the cluster, who is alive, and what each member holds.
//!
//! [`Membership`] is a sans-IO state machine with the same shape as the swarm: feed it packets
//! (`handle_packet`) and timeouts (`handle_timeout`), then drain `poll_transmit`,
//! `poll_event` and `poll_timeout`. Every member owns a versioned [`NodeState`] (addresses,
//! zone, role, upload capacity and load, holdings) and only the owner raises its version.
//!
//! Four mechanisms run on top of one member table:
//! - **Rumor mongering**: news (a join, a state change, a suspicion, a death) is piggybacked on
//!   every outgoing packet, and sent to `fanout` random members each round, a bounded number of
//!   times, least-sent first.
//! - **Anti-entropy**: every `sync_interval` a node sends one random member the digest
//!   (id, version, status) of a range of the id space, at most `max_digest` members; the peer
//!   answers with the records the requester lacks (freshest first, bounded by the packet size)
//!   and asks for the ones it lacks (and, when they agree, stays silent). The range advances
//!   each time, so bytes per round stay flat while the whole table is swept.
//! - **Failure detection** (SWIM with Lifeguard's suspicion): one member is pinged per
//!   `probe_interval`; if it is silent for `probe_timeout`, `indirect_probes` others ping it
//!   for us; still silent at the end of the interval, it becomes suspect. A suspect is declared
//!   dead when its suspicion times out, and only once `accusers_for_death` members suspected
//!   it; each confirmation shortens the timeout. A member refutes by raising its version.
//! - **Bounded views** (`active_view`): a node that can keep only a few links (a browser)
//!   talks only to an active set drawn from the table; the rest of the table is its passive
//!   view, and dead active members are replaced from it.
//!
//! A node joins through the addresses it is given (`join`), asking each again, backing off,
//! until the member there is present and whenever it stops being one; and it asks members it
//! declared dead again now and then for `reconnect_timeout`. So any start order, and any
//! partition once healed, converges to one membership.
//!
//! Packets are not authenticated (yet), so no packet is trusted further than these rules
//! need: a member heard of only from others becomes one only once it answers our ping
//! (until then it is not listed, probed or passed on, and it is forgotten after
//! `unverified_timeout`; what one packet or one address can make us wait on is bounded); an
//! ack counts only from the node pinged, with that ping's random sequence number;
//! no record changes a known member's addresses; a record from a third party moves a member's
//! version at most [`MAX_VERSION_STEP`] ahead, so a forged death or departure is either
//! ignored or refuted by its victim, whose versions cannot be used up; and a node that hears
//! any accusation of itself, a newer version of itself or a false state at its own version
//! re-announces itself above it.

mod config;
mod gossip;
mod join;
pub mod packet;
mod probe;
mod rumors;
mod state;
mod suspicion;
mod sync;
mod verify;
mod view;

use alloc::{
    collections::{BTreeMap, VecDeque},
    string::String,
    vec::Vec,
};

pub use config::{MemberEvent, MembershipConfig, Transmit};
use join::{JoinAddr, Lost};
pub use join::{MAX_JOIN_ADDRS, MAX_LOST};
pub use packet::PacketError;
use packet::{Body, Header};
use probe::{Probe, Relay};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rumors::Rumors;
pub use state::{
    Holding, MAX_ADDR_LEN, MAX_ADDRS, MAX_HOLDINGS, MAX_VERSION_STEP, MAX_ZONE_LEN, NodeState,
    Record, Role, StateError, Status,
};
use suspicion::Suspicion;
use verify::Unverified;

use crate::{ContentId, Instant, PeerId};

/// A member as this node sees it.
#[derive(Debug, Clone, Copy)]
pub struct MemberInfo<'a> {
    /// The member.
    pub id: PeerId,
    /// The newest version heard of.
    pub version: u64,
    /// Alive, suspect, dead or left.
    pub status: Status,
    /// Its state at `version` (empty once dead or departed).
    pub state: &'a NodeState,
}

/// One entry of the member table.
struct Member {
    version: u64,
    status: Status,
    by: PeerId,
    state: NodeState,
    /// Where it is reached: its addresses when we learned of it, kept after it dies (no
    /// record moves a member; a node at a new address is a new node, with a new identity).
    addrs: Vec<String>,
    /// When the status last changed.
    since: Instant,
    /// Index in `Membership::present` while alive or suspect.
    slot: Option<usize>,
}

/// How a record reached us: rumors are passed on, synced records are not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Rumor,
    Sync,
}

/// Who vouches for a record we merge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source<'a> {
    /// Our own conclusion (a failed probe, a suspicion run out), or the driver's word
    /// (`insert_record`).
    Local,
    /// A packet whose sender is the member itself, from this transport address.
    Itself(&'a str),
    /// A packet from anyone else, from this transport address.
    Other(&'a str),
}

/// One node's view of the cluster; see the module documentation.
pub struct Membership {
    cfg: MembershipConfig,
    me: PeerId,
    version: u64,
    state: NodeState,
    left: bool,
    members: BTreeMap<PeerId, Member>,
    /// Members heard of from others, until they answer our ping (see `verify`).
    unverified: BTreeMap<PeerId, Unverified>,
    /// How many of them each transport address told us of.
    unverified_by_source: BTreeMap<String, usize>,
    /// Unverified members waiting for a ping, first heard first.
    verify_queue: VecDeque<PeerId>,
    /// Pings left this round for unverified members.
    verify_budget: usize,
    /// Members the packet being handled may still add.
    admit_budget: usize,
    /// Members alive or suspect, for random choice.
    present: Vec<PeerId>,
    rumors: Rumors,
    suspicions: BTreeMap<PeerId, Suspicion>,
    rng: Xoshiro256PlusPlus,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MemberEvent>,
    probe: Option<Probe>,
    probe_order: Vec<PeerId>,
    /// Members to probe before the round-robin continues (suspected by others).
    urgent: Vec<PeerId>,
    next_probe: Instant,
    relays: Vec<Relay>,
    next_round: Instant,
    next_sync: Instant,
    sync_cursor: PeerId,
    /// Ways into the cluster we were given (see `join`).
    join_addrs: Vec<JoinAddr>,
    /// Members last seen dead that we try to reach again.
    lost: BTreeMap<PeerId, Lost>,
    active: Vec<PeerId>,
    /// A packet being handled carried a version of us beyond what we follow: answer its sender
    /// with our record.
    correct_sender: bool,
    stats: MembershipStats,
}

/// Counters of what this node sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Packets received and decoded.
    pub packets_received: u64,
    /// Packets refused by the decoder.
    pub packets_refused: u64,
}

impl Membership {
    /// A node `me` with `state`, alone until it joins or is joined; `seed` drives its random
    /// choices.
    pub fn new(
        cfg: MembershipConfig,
        me: PeerId,
        state: NodeState,
        now: Instant,
        seed: u64,
    ) -> Result<Self, StateError> {
        state.check()?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        // Spread the first probe and round over an interval so nodes started together do not
        // act in lockstep.
        let jitter = |rng: &mut Xoshiro256PlusPlus, d: core::time::Duration| {
            let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
            now + core::time::Duration::from_micros(rng.next_u64() % micros)
        };
        let next_probe = jitter(&mut rng, cfg.probe_interval);
        let next_round = jitter(&mut rng, cfg.round_interval);
        let next_sync = jitter(&mut rng, cfg.sync_interval);
        let verify_budget = cfg.verify_per_round;
        Ok(Self {
            cfg,
            me,
            version: 1,
            state,
            left: false,
            members: BTreeMap::new(),
            unverified: BTreeMap::new(),
            unverified_by_source: BTreeMap::new(),
            verify_queue: VecDeque::new(),
            verify_budget,
            admit_budget: 0,
            present: Vec::new(),
            rumors: Rumors::default(),
            suspicions: BTreeMap::new(),
            rng,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            probe: None,
            probe_order: Vec::new(),
            urgent: Vec::new(),
            next_probe,
            relays: Vec::new(),
            next_round,
            next_sync,
            sync_cursor: PeerId::from_bytes([0; 32]),
            join_addrs: Vec::new(),
            lost: BTreeMap::new(),
            active: Vec::new(),
            correct_sender: false,
            stats: MembershipStats::default(),
        })
    }

    /// Our identity.
    pub fn local_id(&self) -> PeerId {
        self.me
    }

    /// Our current version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Our current state.
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Rumors still being spread.
    pub fn rumors_in_flight(&self) -> usize {
        self.rumors.len()
    }

    /// Counters of packets and bytes.
    pub fn stats(&self) -> MembershipStats {
        self.stats
    }

    /// Joins the cluster through the members at `addrs` (added to those given before; at
    /// most [`MAX_JOIN_ADDRS`] in all). Each is asked to let us in until the member there is
    /// present, and again whenever it is not (it restarted, or a partition cut it off): after
    /// `join_retry`, then waiting twice as long each time, up to `reconnect_interval`.
    pub fn join(&mut self, now: Instant, addrs: Vec<String>) {
        if addrs.is_empty() {
            return;
        }
        self.add_join_addrs(now, addrs);
        self.handle_timeout(now);
    }

    /// Replaces our state; the change spreads as news. A state equal to the current one
    /// changes nothing.
    pub fn set_state(&mut self, state: NodeState) -> Result<(), StateError> {
        state.check()?;
        if state != self.state {
            self.state = state;
            self.announce();
        }
        Ok(())
    }

    /// Leaves the cluster: tells `fanout` members at once and spreads the news. Call
    /// `handle_timeout` for a round or two before closing the transport, so it spreads.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.left = true;
        self.announce();
        self.gossip_round();
        self.next_round = now + self.cfg.round_interval;
    }

    /// Members we know of, alive or not (not those heard of only from others that have yet
    /// to answer our ping: see [`Membership::unverified_count`]).
    pub fn members(&self) -> impl Iterator<Item = MemberInfo<'_>> {
        self.members.iter().map(|(id, m)| info(*id, m))
    }

    /// One member, if known.
    pub fn member(&self, id: &PeerId) -> Option<MemberInfo<'_>> {
        self.members.get(id).map(|m| info(*id, m))
    }

    /// Members alive or suspect (ourselves excluded).
    pub fn present_count(&self) -> usize {
        self.present.len()
    }

    /// Members our links should go to when views are bounded (else empty).
    pub fn active_view(&self) -> &[PeerId] {
        &self.active
    }

    /// Present members that hold or fetch `id`: same zone first, then complete holders, then
    /// the least loaded.
    pub fn holders(&self, id: &ContentId) -> Vec<(MemberInfo<'_>, Holding)> {
        let mut out: Vec<(MemberInfo<'_>, Holding)> = self
            .present
            .iter()
            .filter_map(|p| {
                let m = self.members.get(p)?;
                Some((info(*p, m), m.state.holding(id)?))
            })
            .collect();
        out.sort_by_key(|(m, h)| {
            (
                m.state.zone != self.state.zone,
                !h.complete,
                m.state.load,
                m.id,
            )
        });
        out
    }

    /// Handles a packet that arrived from `from` (the transport address to answer to).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        from: &str,
        bytes: &[u8],
    ) -> Result<(), PacketError> {
        let packet = match packet::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.packets_refused += 1;
                return Err(e);
            }
        };
        self.stats.packets_received += 1;
        let Header { sender, body } = packet.header;
        if sender == self.me || self.left {
            return Ok(());
        }
        self.note_join_peer(from, sender);
        let via = match body {
            Body::Gossip | Body::Ping { .. } | Body::Ack { .. } | Body::PingReq { .. } => {
                Via::Rumor
            }
            // A joiner's own record is news; the rest of a join or sync is not.
            Body::Join => Via::Rumor,
            Body::Welcome | Body::SyncRequest { .. } | Body::SyncReply { .. } | Body::SyncPush => {
                Via::Sync
            }
        };
        self.admit_budget = self.cfg.max_new_per_packet;
        for record in packet.records {
            let source = if record.id == sender {
                Source::Itself(from)
            } else {
                Source::Other(from)
            };
            self.merge(now, record, via, source);
        }
        // A join's welcome and a sync's answer carry our record anyway.
        if core::mem::take(&mut self.correct_sender)
            && !matches!(body, Body::Join | Body::SyncRequest { .. })
        {
            let record = packet::encode_record(&self.own_record());
            self.send(
                Some(sender),
                String::from(from),
                Body::SyncPush,
                alloc::vec![record],
            );
        }
        let reply_to = Some(sender);
        match body {
            Body::Join => self.on_join(sender, from),
            Body::Welcome => self.next_sync = now,
            Body::Ping { seq } => {
                self.send(reply_to, String::from(from), Body::Ack { seq }, Vec::new());
            }
            Body::Ack { seq } => self.on_ack(now, sender, seq),
            Body::PingReq { seq, target, addr } => {
                self.on_ping_req(now, sender, from, seq, target, addr)
            }
            Body::Gossip | Body::SyncPush => {}
            Body::SyncRequest {
                start,
                end,
                digest,
                full,
            } => self.on_sync_request(sender, from, start, end, &digest, full),
            Body::SyncReply { wants } => self.on_sync_reply(sender, from, &wants),
        }
        // (A sync request's digest may have set it again: its answer carries our record.)
        self.correct_sender = false;
        self.send_verify_pings(now);
        Ok(())
    }

    /// Runs whatever is due at `now`: probes, gossip rounds, syncs, joins, suspicions.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            if now >= self.next_round {
                self.next_round = now + self.cfg.round_interval;
                self.gossip_round();
            }
            return;
        }
        self.reconnect(now);
        self.expire_suspicions(now);
        self.expire_relays(now);
        self.escalate_probe(now);
        if now >= self.next_probe {
            self.next_probe = now + self.cfg.probe_interval;
            self.end_probe(now);
            self.start_probe(now);
        }
        if now >= self.next_round {
            self.next_round = now + self.cfg.round_interval;
            self.refresh_active_view();
            self.gossip_round();
            self.verify_round(now);
        }
        if now >= self.next_sync {
            self.next_sync = now + self.cfg.sync_interval;
            self.reap(now);
            self.start_sync();
        }
    }

    /// When `handle_timeout` should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.next_round;
        if self.left {
            return Some(next);
        }
        next = next.min(self.next_probe).min(self.next_sync);
        if let Some(at) = self.next_reconnect() {
            next = next.min(at);
        }
        if let Some(at) = self.probe_deadline() {
            next = next.min(at);
        }
        for s in self.suspicions.values().filter(|s| !s.waiting) {
            next = next.min(s.deadline(&self.cfg));
        }
        Some(next)
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next change in the membership.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }

    /// Adds a member on the driver's word, as if a sync had brought its record and it had
    /// answered our ping (simulator bootstrap and tests).
    pub fn insert_record(&mut self, now: Instant, record: Record) {
        if record.check() {
            self.merge(now, record, Via::Sync, Source::Local);
        }
    }

    /// Our own record.
    pub fn own_record(&self) -> Record {
        Record {
            id: self.me,
            version: self.version,
            status: self.own_status(),
            by: self.me,
            state: (!self.left).then(|| self.state.clone()),
        }
    }

    fn own_status(&self) -> Status {
        if self.left {
            Status::Left
        } else {
            Status::Alive
        }
    }

    /// Builds a packet with `records` first, fills the rest with rumors, and queues it.
    fn send(&mut self, to: Option<PeerId>, addr: String, body: Body, records: Vec<Vec<u8>>) {
        let mut payload = Vec::new();
        packet::start(
            &Header {
                sender: self.me,
                body,
            },
            &mut payload,
        );
        let budget = self.cfg.max_packet.min(packet::MAX_PACKET);
        // Room for the record count (at most 3 bytes for any packet that fits).
        let mut left = budget.saturating_sub(payload.len() + 3);
        let mut chosen: Vec<Vec<u8>> = Vec::new();
        for r in records {
            if r.len() <= left {
                left -= r.len();
                chosen.push(r);
            }
        }
        if !self.rumors.is_empty() {
            let limit = self.retransmit_limit();
            chosen.extend(self.rumors.take(left, limit));
        }
        packet::push_records(chosen.iter().map(Vec::as_slice), &mut payload);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += payload.len() as u64;
        self.transmits.push_back(Transmit { to, addr, payload });
    }

    /// Sends a packet to member `id` at its first address, if it has one.
    fn send_to(&mut self, id: PeerId, body: Body, records: Vec<Vec<u8>>) {
        if let Some(addr) = self.addr_of(&id) {
            self.send(Some(id), addr, body, records);
        }
    }

    fn addr_of(&self, id: &PeerId) -> Option<String> {
        self.members.get(id)?.addrs.first().cloned()
    }
}

fn info(id: PeerId, m: &Member) -> MemberInfo<'_> {
    MemberInfo {
        id,
        version: m.version,
        status: m.status,
        state: &m.state,
    }
}
