//! Failure detection (SWIM with Lifeguard's suspicion): one probe per interval, pings
//! relayed for others (ping-req), suspicions and their timeouts.
//!
//! An ack counts only if it comes from the node the ping was for (or, for our probe, from a
//! member we asked to ping it for us) and carries that ping's sequence number, which is drawn
//! at random: whoever answers at a member's address does not answer for the member (a
//! restarted process there has a new identity), and an ack cannot be guessed.

use alloc::{string::String, vec::Vec};

use rand_core::Rng;

use super::{Membership, Record, Source, Status, Via, packet::Body, suspicion::Suspicion};
use crate::{Instant, PeerId};

/// Our probe of one member this interval.
pub(super) struct Probe {
    /// The member probed.
    target: PeerId,
    /// The sequence number of our ping.
    seq: u32,
    /// When we pinged it.
    sent: Instant,
    /// Whether others were asked to ping it for us.
    indirect: bool,
    /// Whether it answered.
    acked: bool,
    /// The members asked to ping it for us, whose relayed acks count.
    helpers: Vec<PeerId>,
}

/// Most pings we relay for others at once; further requests are ignored until some expire.
const MAX_RELAYS: usize = 64;

/// A ping we send for another member, whose ack we relay.
pub(super) struct Relay {
    /// Our ping's sequence number.
    seq: u32,
    /// The requester's probe sequence number.
    their_seq: u32,
    /// The member pinged: only its ack is relayed.
    target: PeerId,
    /// The requester.
    to: PeerId,
    /// The requester's address.
    addr: String,
    /// When we stop waiting for the ack.
    expires: Instant,
}

impl Membership {
    /// A fresh sequence number for a ping: random, so that an ack cannot be forged blind.
    pub(super) fn next_seq(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// Starts this interval's probe: an urgent member first, then the next of a shuffled pass.
    pub(super) fn start_probe(&mut self, now: Instant) {
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
            helpers: Vec::new(),
        });
        self.send_to(target, Body::Ping { seq }, Vec::new());
    }

    /// Whether `id` is present, has an address and (with bounded views) is in the active view.
    fn is_contact(&self, id: &PeerId) -> bool {
        let present = self
            .members
            .get(id)
            .is_some_and(|m| m.status.is_present() && !m.addrs.is_empty());
        present && (self.cfg.active_view.is_none() || self.active.contains(id))
    }

    /// Our probe got no ack within `probe_timeout`: ask `indirect_probes` others to ping its
    /// target for us.
    pub(super) fn escalate_probe(&mut self, now: Instant) {
        if let Some(p) = &mut self.probe
            && !p.acked
            && !p.indirect
            && now >= p.sent + self.cfg.probe_timeout
        {
            p.indirect = true;
            let (target, seq) = (p.target, p.seq);
            self.ask_others_to_ping(target, seq);
        }
    }

    /// The probe interval is over: a target that never acked becomes suspect.
    pub(super) fn end_probe(&mut self, now: Instant) {
        if let Some(p) = self.probe.take()
            && !p.acked
        {
            self.suspect(now, p.target);
        }
    }

    /// When our probe, still unanswered and direct, turns indirect.
    pub(super) fn probe_deadline(&self) -> Option<Instant> {
        if let Some(p) = &self.probe
            && !p.acked
            && !p.indirect
        {
            return Some(p.sent + self.cfg.probe_timeout);
        }
        None
    }

    /// Forgets the pings we relay whose time ran out.
    pub(super) fn expire_relays(&mut self, now: Instant) {
        self.relays.retain(|r| r.expires > now);
    }

    /// `sender` asks us to ping `target` at `addr` for its probe `seq`; its ack is relayed.
    pub(super) fn on_ping_req(
        &mut self,
        now: Instant,
        sender: PeerId,
        from: &str,
        seq: u32,
        target: PeerId,
        addr: String,
    ) {
        if self.relays.len() >= MAX_RELAYS {
            return;
        }
        let mine = self.next_seq();
        self.relays.push(Relay {
            seq: mine,
            their_seq: seq,
            target,
            to: sender,
            addr: String::from(from),
            expires: now + self.cfg.probe_interval,
        });
        self.send(Some(target), addr, Body::Ping { seq: mine }, Vec::new());
    }

    /// Asks `indirect_probes` random contacts to ping `target` for our probe `seq`.
    fn ask_others_to_ping(&mut self, target: PeerId, seq: u32) {
        let Some(addr) = self.addr_of(&target) else {
            return;
        };
        let helpers = self.random_contacts(self.cfg.indirect_probes, &[target]);
        for &helper in &helpers {
            let body = Body::PingReq {
                seq,
                target,
                addr: addr.clone(),
            };
            self.send_to(helper, body, Vec::new());
        }
        if let Some(p) = &mut self.probe {
            p.helpers = helpers;
        }
    }

    /// An ack from `sender`: of our probe (from its target, or relayed by a helper we asked),
    /// of our ping of an unverified member (from it), or of a ping we relay (from its target;
    /// passed back to the requester).
    pub(super) fn on_ack(&mut self, now: Instant, sender: PeerId, seq: u32) {
        if let Some(p) = &mut self.probe
            && p.seq == seq
            && (p.target == sender || p.helpers.contains(&sender))
        {
            p.acked = true;
            return;
        }
        if self.verify_ack(now, sender, seq) {
            return;
        }
        if let Some(i) = self
            .relays
            .iter()
            .position(|r| r.seq == seq && r.target == sender)
        {
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
        self.merge(now, record, Via::Rumor, Source::Local);
    }

    /// Declares dead the suspects whose suspicion timed out with enough accusers.
    pub(super) fn expire_suspicions(&mut self, now: Instant) {
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
            self.merge(now, record, Via::Rumor, Source::Local);
        }
    }

    /// Starts (or confirms) a suspicion of `id` at `version`, raised by `by`.
    pub(super) fn start_suspicion(&mut self, now: Instant, id: PeerId, version: u64, by: PeerId) {
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
}
