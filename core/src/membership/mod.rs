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
//!   and asks for the ones it lacks. The range advances each time, so bytes per round stay flat
//!   while the whole table is swept.
//! - **Failure detection** (SWIM with Lifeguard's suspicion): one member is pinged per
//!   `probe_interval`; if it is silent for `probe_timeout`, `indirect_probes` others ping it
//!   for us; still silent at the end of the interval, it becomes suspect. A suspect is declared
//!   dead when its suspicion times out, and only once `accusers_for_death` members suspected
//!   it; each confirmation shortens the timeout. A member refutes by raising its version.
//! - **Bounded views** (`active_view`): a node that can keep only a few links (a browser)
//!   talks only to an active set drawn from the table; the rest of the table is its passive
//!   view, and dead active members are replaced from it.

mod config;
pub mod packet;
mod rumors;
mod state;
mod suspicion;

use alloc::{
    collections::{BTreeMap, VecDeque},
    string::String,
    vec::Vec,
};

pub use config::{MemberEvent, MembershipConfig, Transmit};
pub use packet::PacketError;
use packet::{Body, Digest, Header};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rumors::Rumors;
pub use state::{
    Holding, MAX_ADDR_LEN, MAX_ADDRS, MAX_HOLDINGS, MAX_ZONE_LEN, NodeState, Record, Role,
    StateError, Status,
};
use suspicion::Suspicion;

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
    /// When the status last changed.
    since: Instant,
    /// Index in `Membership::present` while alive or suspect.
    slot: Option<usize>,
}

/// Our probe of one member this interval.
struct Probe {
    target: PeerId,
    seq: u32,
    sent: Instant,
    indirect: bool,
    acked: bool,
}

/// A ping we send for another member, whose ack we relay.
struct Relay {
    seq: u32,
    their_seq: u32,
    to: PeerId,
    addr: String,
    expires: Instant,
}

/// How a record reached us: rumors are passed on, synced records are not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Rumor,
    Sync,
}

/// One node's view of the cluster; see the module documentation.
pub struct Membership {
    cfg: MembershipConfig,
    me: PeerId,
    version: u64,
    state: NodeState,
    left: bool,
    members: BTreeMap<PeerId, Member>,
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
    seq: u32,
    relays: Vec<Relay>,
    next_round: Instant,
    next_sync: Instant,
    sync_cursor: PeerId,
    join_addrs: Vec<String>,
    joined: bool,
    next_join: Instant,
    active: Vec<PeerId>,
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
        Ok(Self {
            cfg,
            me,
            version: 1,
            state,
            left: false,
            members: BTreeMap::new(),
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
            seq: 0,
            relays: Vec::new(),
            next_round,
            next_sync,
            sync_cursor: PeerId::from_bytes([0; 32]),
            join_addrs: Vec::new(),
            joined: true,
            next_join: now,
            active: Vec::new(),
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

    /// Joins the cluster through any member at `addrs`, retrying until one answers.
    pub fn join(&mut self, now: Instant, addrs: Vec<String>) {
        if addrs.is_empty() {
            return;
        }
        self.join_addrs = addrs;
        self.joined = false;
        self.next_join = now;
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

    /// Members we know of, alive or not.
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
        self.joined = true;
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
        for record in packet.records {
            self.merge(now, record, via);
        }
        let reply_to = Some(sender);
        match body {
            Body::Join => {
                let records = self.welcome_records();
                self.send(reply_to, String::from(from), Body::Welcome, records);
            }
            Body::Welcome => self.next_sync = now,
            Body::Ping { seq } => {
                self.send(reply_to, String::from(from), Body::Ack { seq }, Vec::new());
            }
            Body::Ack { seq } => self.on_ack(seq),
            Body::PingReq { seq, target, addr } => {
                let mine = self.next_seq();
                self.relays.push(Relay {
                    seq: mine,
                    their_seq: seq,
                    to: sender,
                    addr: String::from(from),
                    expires: now + self.cfg.probe_interval,
                });
                self.send(Some(target), addr, Body::Ping { seq: mine }, Vec::new());
            }
            Body::Gossip | Body::SyncPush => {}
            Body::SyncRequest {
                start,
                end,
                digest,
                full,
            } => {
                // The requester may hold an accusation of us that never reached us as a rumor.
                if let Some(d) = digest.iter().find(|d| d.id == self.me) {
                    self.refute_if_needed(d.version, d.status);
                }
                let (records, wants) = self.answer_sync(start, end, &digest, full);
                self.send(
                    reply_to,
                    String::from(from),
                    Body::SyncReply { wants },
                    records,
                );
            }
            Body::SyncReply { wants } => {
                let records = self.encode_members(&wants);
                self.send(reply_to, String::from(from), Body::SyncPush, records);
            }
        }
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
        if !self.joined && now >= self.next_join {
            self.next_join = now + self.cfg.join_retry;
            let record = packet::encode_record(&self.own_record());
            for addr in self.join_addrs.clone() {
                self.send(None, addr, Body::Join, alloc::vec![record.clone()]);
            }
        }
        self.expire_suspicions(now);
        self.relays.retain(|r| r.expires > now);
        if let Some(p) = &mut self.probe
            && !p.acked
            && !p.indirect
            && now >= p.sent + self.cfg.probe_timeout
        {
            p.indirect = true;
            let (target, seq) = (p.target, p.seq);
            self.ask_others_to_ping(target, seq);
        }
        if now >= self.next_probe {
            self.next_probe = now + self.cfg.probe_interval;
            if let Some(p) = self.probe.take()
                && !p.acked
            {
                self.suspect(now, p.target);
            }
            self.start_probe(now);
        }
        if now >= self.next_round {
            self.next_round = now + self.cfg.round_interval;
            self.refresh_active_view();
            self.gossip_round();
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
        if !self.joined {
            next = next.min(self.next_join);
        }
        if let Some(p) = &self.probe
            && !p.acked
            && !p.indirect
        {
            next = next.min(p.sent + self.cfg.probe_timeout);
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

    /// Adds a member as if a sync had brought its record (simulator bootstrap and tests).
    pub fn insert_record(&mut self, now: Instant, record: Record) {
        if record.check() {
            self.merge(now, record, Via::Sync);
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

    fn announce(&mut self) {
        // Saturating: a forged record at `u64::MAX` about us must not overflow (a remote panic).
        self.version = self.version.saturating_add(1);
        let bytes = packet::encode_record(&self.own_record());
        self.rumors.push(self.me, bytes);
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// How many times a rumor is sent: `retransmit_mult × ceil(log2(N + 1))`.
    fn retransmit_limit(&self) -> u32 {
        let n = self.present.len() + 2;
        let log = usize::BITS - (n - 1).leading_zeros();
        self.cfg.retransmit_mult.max(1) * log.max(1)
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
        self.members.get(id)?.state.addrs.first().cloned()
    }

    /// Members we may talk to: the active view when bounded, else everyone present.
    fn contacts(&self) -> &[PeerId] {
        if self.cfg.active_view.is_some() {
            &self.active
        } else {
            &self.present
        }
    }

    /// Up to `k` distinct random contacts, none in `except`.
    fn random_contacts(&mut self, k: usize, except: &[PeerId]) -> Vec<PeerId> {
        let n = self.contacts().len();
        let mut out: Vec<PeerId> = Vec::with_capacity(k);
        if n == 0 || k == 0 {
            return out;
        }
        if n <= k + except.len() {
            let all = self.contacts().iter().filter(|p| !except.contains(p));
            out.extend(all.take(k));
            return out;
        }
        for _ in 0..k * 4 {
            if out.len() == k {
                break;
            }
            let i = (self.rng.next_u64() % n as u64) as usize;
            let p = self.contacts()[i];
            if !except.contains(&p) && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    fn gossip_round(&mut self) {
        if self.rumors.is_empty() {
            return;
        }
        for p in self.random_contacts(self.cfg.fanout, &[]) {
            self.send_to(p, Body::Gossip, Vec::new());
            if self.rumors.is_empty() {
                break;
            }
        }
    }

    fn start_probe(&mut self, now: Instant) {
        // One fresh pass at most: if no member in it can be probed (none has an address),
        // a second would find none either.
        let mut refilled = false;
        let target = loop {
            if let Some(p) = self.urgent.pop() {
                if self.is_contact(&p) {
                    break Some(p);
                }
                continue;
            }
            if self.probe_order.is_empty() {
                if refilled {
                    break None;
                }
                refilled = true;
                self.probe_order = self.contacts().to_vec();
                // Fisher-Yates: each member is probed once per pass, in random order.
                for i in (1..self.probe_order.len()).rev() {
                    let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
                    self.probe_order.swap(i, j);
                }
                if self.probe_order.is_empty() {
                    break None;
                }
            }
            if let Some(p) = self.probe_order.pop()
                && self.is_contact(&p)
            {
                break Some(p);
            }
        };
        let Some(target) = target else { return };
        let seq = self.next_seq();
        self.probe = Some(Probe {
            target,
            seq,
            sent: now,
            indirect: false,
            acked: false,
        });
        self.send_to(target, Body::Ping { seq }, Vec::new());
    }

    fn is_contact(&self, id: &PeerId) -> bool {
        let present = self
            .members
            .get(id)
            .is_some_and(|m| m.status.is_present() && !m.state.addrs.is_empty());
        present && (self.cfg.active_view.is_none() || self.active.contains(id))
    }

    fn ask_others_to_ping(&mut self, target: PeerId, seq: u32) {
        let Some(addr) = self.addr_of(&target) else {
            return;
        };
        for helper in self.random_contacts(self.cfg.indirect_probes, &[target]) {
            let body = Body::PingReq {
                seq,
                target,
                addr: addr.clone(),
            };
            self.send_to(helper, body, Vec::new());
        }
    }

    fn on_ack(&mut self, seq: u32) {
        if let Some(p) = &mut self.probe
            && p.seq == seq
        {
            p.acked = true;
            return;
        }
        if let Some(i) = self.relays.iter().position(|r| r.seq == seq) {
            let relay = self.relays.swap_remove(i);
            let body = Body::Ack {
                seq: relay.their_seq,
            };
            self.send(Some(relay.to), relay.addr, body, Vec::new());
        }
    }

    /// Our probe of `id` failed: suspect it (or confirm an existing suspicion).
    fn suspect(&mut self, now: Instant, id: PeerId) {
        let Some(m) = self.members.get(&id) else {
            return;
        };
        if !m.status.is_present() {
            return;
        }
        let record = Record {
            id,
            version: m.version,
            status: Status::Suspect,
            by: self.me,
            state: Some(m.state.clone()),
        };
        self.merge(now, record, Via::Rumor);
    }

    fn expire_suspicions(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .suspicions
            .iter()
            .filter(|(_, s)| !s.waiting && s.deadline(&self.cfg) <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(s) = self.suspicions.get_mut(&id) else {
                continue;
            };
            // Witnesses other than the suspect: us and every other present member.
            let witnesses = self.present.len();
            let needed = self.cfg.accusers_for_death.min(witnesses).max(1);
            if s.accusers.len() < needed {
                s.waiting = true;
                // Not enough independent word yet: probe it ourselves if we have not.
                if !s.accusers.contains(&self.me) && !self.urgent.contains(&id) {
                    self.urgent.push(id);
                }
                continue;
            }
            let version = s.version;
            let record = Record {
                id,
                version,
                status: Status::Dead,
                by: self.me,
                state: None,
            };
            self.merge(now, record, Via::Rumor);
        }
    }

    /// Applies a record if it is news; returns whether it was.
    fn merge(&mut self, now: Instant, record: Record, via: Via) {
        if record.id == self.me {
            self.refute_if_needed(record.version, record.status);
            return;
        }
        let id = record.id;
        let Some(m) = self.members.get_mut(&id) else {
            // A sync must not hand back a dead or departed member we never knew or already
            // forgot: two nodes would pass it back and forth, and it would never be forgotten.
            if self.members.len() >= self.cfg.max_members
                || (via == Via::Sync && !record.status.is_present())
            {
                return;
            }
            let status = record.status;
            let bytes = (via == Via::Rumor).then(|| packet::encode_record(&record));
            self.members.insert(
                id,
                Member {
                    version: record.version,
                    status,
                    by: record.by,
                    state: record.state.unwrap_or_default(),
                    since: now,
                    slot: None,
                },
            );
            if status.is_present() {
                self.add_present(id);
                self.events.push_back(MemberEvent::Joined(id));
            }
            if status == Status::Suspect {
                self.start_suspicion(now, id, record.version, record.by);
            }
            if let Some(bytes) = bytes {
                self.rumors.push(id, bytes);
            }
            return;
        };
        if record.supersedes(m.version, m.status) {
            let old = m.status;
            let state_changed = record.state.as_ref().is_some_and(|s| *s != m.state);
            m.version = record.version;
            m.status = record.status;
            m.by = record.by;
            if old != record.status {
                m.since = now;
            }
            match &record.state {
                Some(s) if state_changed => m.state = s.clone(),
                Some(_) => {}
                None => m.state = NodeState::default(),
            }
            let new = record.status;
            match (old.is_present(), new.is_present()) {
                (false, true) => {
                    self.add_present(id);
                    self.events.push_back(MemberEvent::Joined(id));
                }
                (true, false) => self.remove_present(id),
                _ => {}
            }
            match new {
                Status::Alive => {
                    if self.suspicions.remove(&id).is_some() {
                        self.events.push_back(MemberEvent::Recovered(id));
                    } else if state_changed && old.is_present() {
                        self.events.push_back(MemberEvent::Updated(id));
                    }
                }
                Status::Suspect => {
                    if old == Status::Alive {
                        self.events.push_back(MemberEvent::Suspected(id));
                    }
                    self.start_suspicion(now, id, record.version, record.by);
                }
                Status::Dead | Status::Left => {
                    self.suspicions.remove(&id);
                    if old.is_present() {
                        self.events.push_back(if new == Status::Dead {
                            MemberEvent::Died(id)
                        } else {
                            MemberEvent::Left(id)
                        });
                    }
                }
            }
            if via == Via::Rumor {
                self.rumors.push(id, packet::encode_record(&record));
            }
        } else if record.version == m.version
            && record.status == Status::Suspect
            && m.status == Status::Suspect
            && let Some(s) = self.suspicions.get_mut(&id)
            && s.confirm(record.by, &self.cfg)
            && via == Via::Rumor
        {
            // A new independent suspicion: pass the confirmation on.
            self.rumors.push(id, packet::encode_record(&record));
        }
    }

    fn start_suspicion(&mut self, now: Instant, id: PeerId, version: u64, by: PeerId) {
        let n = self.present.len() + 1;
        let s = self
            .suspicions
            .entry(id)
            .or_insert_with(|| Suspicion::new(now, version, n));
        if s.version != version {
            *s = Suspicion::new(now, version, n);
        }
        s.confirm(by, &self.cfg);
        if by != self.me && !s.accusers.contains(&self.me) && !self.urgent.contains(&id) {
            // Check for ourselves: either we confirm or it answers.
            self.urgent.push(id);
        }
    }

    /// Someone says we are suspect, dead or gone (or knows a newer version of us from an
    /// earlier life): re-announce ourselves with a higher version.
    fn refute_if_needed(&mut self, version: u64, status: Status) {
        if self.left {
            return;
        }
        let accused = status != Status::Alive && version >= self.version;
        if accused || version > self.version {
            self.version = version;
            self.announce();
            if accused {
                self.events.push_back(MemberEvent::Refuted);
            }
        }
    }

    fn add_present(&mut self, id: PeerId) {
        if let Some(m) = self.members.get_mut(&id)
            && m.slot.is_none()
        {
            m.slot = Some(self.present.len());
            self.present.push(id);
        }
    }

    fn remove_present(&mut self, id: PeerId) {
        let Some(slot) = self.members.get_mut(&id).and_then(|m| m.slot.take()) else {
            return;
        };
        self.present.swap_remove(slot);
        if let Some(moved) = self.present.get(slot).copied()
            && let Some(m) = self.members.get_mut(&moved)
        {
            m.slot = Some(slot);
        }
        if let Some(i) = self.active.iter().position(|p| *p == id) {
            self.active.swap_remove(i);
            self.events.push_back(MemberEvent::Disconnect(id));
        }
    }

    /// Bounded views: tops the active view up from the passive one.
    fn refresh_active_view(&mut self) {
        let Some(max) = self.cfg.active_view else {
            return;
        };
        let mut tries = 0;
        while self.active.len() < max && self.active.len() < self.present.len() && tries < 4 * max {
            tries += 1;
            let i = (self.rng.next_u64() % self.present.len() as u64) as usize;
            let p = self.present[i];
            let reachable = self
                .members
                .get(&p)
                .is_some_and(|m| !m.state.addrs.is_empty());
            if reachable && !self.active.contains(&p) {
                self.active.push(p);
                self.events.push_back(MemberEvent::Connect(p));
            }
        }
    }

    /// Forgets members dead or gone for longer than `dead_retention`.
    fn reap(&mut self, now: Instant) {
        if self.members.len() == self.present.len() {
            return;
        }
        let keep = self.cfg.dead_retention;
        self.members
            .retain(|_, m| m.status.is_present() || now.saturating_since(m.since) < keep);
    }

    fn start_sync(&mut self) {
        let Some(peer) = self.random_contacts(1, &[]).pop() else {
            return;
        };
        let start = self.sync_cursor;
        let mut digest = Vec::new();
        let mut end = None;
        for (id, m) in self.members.range(start..) {
            if digest.len() == self.cfg.max_digest.min(packet::MAX_DIGEST) {
                end = Some(*id);
                break;
            }
            digest.push(Digest {
                id: *id,
                version: m.version,
                status: m.status,
            });
        }
        if in_range(&self.me, &start, end.as_ref()) {
            digest.push(Digest {
                id: self.me,
                version: self.version,
                status: self.own_status(),
            });
        }
        self.sync_cursor = end.unwrap_or(PeerId::from_bytes([0; 32]));
        let full = self.members.len() >= self.cfg.max_members;
        let body = Body::SyncRequest {
            start,
            end,
            digest,
            full,
        };
        self.send_to(peer, body, Vec::new());
    }

    /// What a sync request lacks (freshest first) and what it knows better.
    fn answer_sync(
        &self,
        start: PeerId,
        end: Option<PeerId>,
        digest: &[Digest],
        full: bool,
    ) -> (Vec<Vec<u8>>, Vec<PeerId>) {
        let theirs: BTreeMap<PeerId, (u64, Status)> = digest
            .iter()
            .filter(|d| in_range(&d.id, &start, end.as_ref()))
            .map(|d| (d.id, (d.version, d.status)))
            .collect();
        // (they lack it entirely, how much newer ours is, id)
        let mut newer: Vec<(bool, u64, PeerId)> = Vec::new();
        let range = match end {
            Some(e) if e > start => self.members.range(start..e),
            Some(_) => self.members.range(start..start),
            None => self.members.range(start..),
        };
        for (id, m) in range {
            match theirs.get(id) {
                // They would drop a dead or departed member they lack (see `merge`).
                None if !m.status.is_present() || full => {}
                None => newer.push((true, m.version, *id)),
                Some(&(v, s)) if (m.version, m.status) > (v, s) => {
                    newer.push((false, m.version - v, *id));
                }
                _ => {}
            }
        }
        if in_range(&self.me, &start, end.as_ref()) {
            let mine = (self.version, self.own_status());
            match theirs.get(&self.me) {
                Some(&known) if known >= mine => {}
                _ => newer.push((true, u64::MAX, self.me)),
            }
        }
        newer.sort_unstable_by(|a, b| b.cmp(a));
        let mut budget = self.cfg.max_packet.min(packet::MAX_PACKET);
        let mut records = Vec::new();
        for (_, _, id) in newer {
            let Some(bytes) = self.encode_member(&id) else {
                continue;
            };
            if bytes.len() + 64 > budget {
                break;
            }
            budget -= bytes.len();
            records.push(bytes);
        }
        let wants = theirs
            .iter()
            .filter(|(id, known)| {
                **id != self.me
                    && match self.members.get(id) {
                        Some(m) => **known > (m.version, m.status),
                        // Unknown to us: worth asking for only if we have room for it.
                        None => known.1.is_present() && self.members.len() < self.cfg.max_members,
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        (records, wants)
    }

    fn encode_member(&self, id: &PeerId) -> Option<Vec<u8>> {
        if *id == self.me {
            return Some(packet::encode_record(&self.own_record()));
        }
        let m = self.members.get(id)?;
        Some(packet::encode_record(&Record {
            id: *id,
            version: m.version,
            status: m.status,
            by: m.by,
            state: m.status.is_present().then(|| m.state.clone()),
        }))
    }

    fn encode_members(&self, ids: &[PeerId]) -> Vec<Vec<u8>> {
        ids.iter().filter_map(|id| self.encode_member(id)).collect()
    }

    /// A welcome: our record, then random present members.
    fn welcome_records(&mut self) -> Vec<Vec<u8>> {
        let mut out = alloc::vec![packet::encode_record(&self.own_record())];
        let n = self.present.len();
        if n == 0 {
            return out;
        }
        let mut budget = self.cfg.max_packet.min(packet::MAX_PACKET) / 2;
        // Consecutive members from a random start: distinct, and different for each joiner.
        let first = (self.rng.next_u64() % n as u64) as usize;
        for k in 0..n.min(256) {
            let i = (first + k) % n;
            if let Some(bytes) = self.encode_member(&self.present[i]) {
                if bytes.len() > budget {
                    break;
                }
                budget -= bytes.len();
                out.push(bytes);
            }
        }
        out
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

fn in_range(id: &PeerId, start: &PeerId, end: Option<&PeerId>) -> bool {
    id >= start && end.is_none_or(|e| id < e)
}
