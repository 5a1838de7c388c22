//! Joining and reconnecting: asking each join address to let us in until it is a member (and
//! again whenever it stops being one), asking members last seen dead again now and then, and
//! welcoming joiners.
//!
//! Any start order and any healed partition converge to one membership: a join address is
//! retried (backing off from `join_retry` to `reconnect_interval`) until the member there is
//! present, not merely until anyone talked to us, so nodes started together with chained join
//! addresses cannot settle into islands; and a member declared dead is sent a join now and then
//! (from `reconnect_interval` up to eight times it, for `reconnect_timeout`, one at a time)
//! with the record we hold of it, so that if it was only cut off it refutes its death and each
//! side learns the other again (Serf's reconnect, Consul's retry-join). Bounded: at most
//! [`MAX_JOIN_ADDRS`] join addresses and [`MAX_LOST`] members last seen dead are kept.

use alloc::{string::String, vec::Vec};
use core::time::Duration;

use rand_core::Rng;

use super::{
    Membership,
    packet::{self, Body},
};
use crate::{Instant, PeerId};

/// Most join addresses kept; more are ignored.
pub const MAX_JOIN_ADDRS: usize = 16;
/// Most members last seen dead that we try to reach again; the one given up on soonest makes
/// room for a new one.
pub const MAX_LOST: usize = 64;
/// The longest wait between two tries to reach a member last seen dead, in reconnect intervals.
const MAX_LOST_BACKOFF: u32 = 8;

/// A way into the cluster we were given.
pub(super) struct JoinAddr {
    addr: String,
    /// The member that answered from this address, once one did.
    peer: Option<PeerId>,
    /// When we next check it (and send a join if it is not a present member).
    next: Instant,
    /// The wait after the next join.
    backoff: Duration,
}

/// A member last seen dead, that we try to reach again in case it was only cut off.
pub(super) struct Lost {
    addr: String,
    /// When we give up.
    until: Instant,
    /// When we next send it a join.
    next: Instant,
    /// The wait after the next join.
    backoff: Duration,
}

impl Membership {
    /// Adds join addresses (not ours, not already known; at most [`MAX_JOIN_ADDRS`]), and makes
    /// those that are not members due at once.
    pub(super) fn add_join_addrs(&mut self, now: Instant, addrs: Vec<String>) {
        for addr in addrs {
            if self.state.addrs.contains(&addr) {
                continue;
            }
            if let Some(j) = self.join_addrs.iter_mut().find(|j| j.addr == addr) {
                j.next = now;
                continue;
            }
            if self.join_addrs.len() < MAX_JOIN_ADDRS {
                self.join_addrs.push(JoinAddr {
                    addr,
                    peer: None,
                    next: now,
                    backoff: self.cfg.join_retry,
                });
            }
        }
    }

    /// Sends the joins that are due: to each join address whose member is not present, and to
    /// one member last seen dead.
    pub(super) fn reconnect(&mut self, now: Instant) {
        for i in 0..self.join_addrs.len() {
            let j = &self.join_addrs[i];
            if j.next > now {
                continue;
            }
            let present = j.peer.is_some_and(|p| self.is_present(&p));
            let retry = self.cfg.join_retry;
            let cap = self.cfg.reconnect_interval.max(retry);
            let j = &mut self.join_addrs[i];
            if present {
                j.backoff = retry;
                j.next = now + retry;
                continue;
            }
            j.next = now + j.backoff;
            j.backoff = j.backoff.saturating_mul(2).min(cap);
            let addr = j.addr.clone();
            self.send_join(None, addr);
        }
        if self.lost.is_empty() {
            return;
        }
        self.lost.retain(|_, l| l.until > now);
        let cap = self.cfg.reconnect_interval.saturating_mul(MAX_LOST_BACKOFF);
        let due = self.lost.iter_mut().find(|(_, l)| l.next <= now);
        if let Some((id, l)) = due {
            l.next = now + l.backoff;
            l.backoff = l.backoff.saturating_mul(2).min(cap);
            let (id, addr) = (*id, l.addr.clone());
            self.send_join(Some(id), addr);
        }
    }

    /// When `reconnect` next has something to do.
    pub(super) fn next_reconnect(&self) -> Option<Instant> {
        let joins = self.join_addrs.iter().map(|j| j.next);
        joins.chain(self.lost.values().map(|l| l.next)).min()
    }

    /// A packet from `sender` came from `from`: if that is a join address, its member is
    /// `sender` (a name we were given may differ from the address the member advertises).
    pub(super) fn note_join_peer(&mut self, from: &str, sender: PeerId) {
        for j in self.join_addrs.iter_mut().filter(|j| j.addr == from) {
            j.peer = Some(sender);
        }
    }

    /// Member `id`, at `addrs`, is present: a join address it advertises is answered, and it
    /// is no longer lost.
    pub(super) fn found(&mut self, id: PeerId, addrs: &[String]) {
        for j in self.join_addrs.iter_mut() {
            if addrs.contains(&j.addr) {
                j.peer = Some(id);
            }
        }
        self.lost.remove(&id);
    }

    /// Member `id` was declared dead: try to reach it again now and then (not with a bounded
    /// view, which talks only over its few links).
    pub(super) fn lose(&mut self, now: Instant, id: PeerId) {
        let Some(addr) = self.addr_of(&id) else {
            return;
        };
        if self.cfg.active_view.is_some() {
            return;
        }
        if self.lost.len() >= MAX_LOST && !self.lost.contains_key(&id) {
            let first = self
                .lost
                .iter()
                .min_by_key(|(_, l)| l.until)
                .map(|(p, _)| *p);
            if let Some(first) = first {
                self.lost.remove(&first);
            }
        }
        let wait = self.cfg.reconnect_interval;
        self.lost.insert(
            id,
            Lost {
                addr,
                until: now + self.cfg.reconnect_timeout,
                next: now + wait,
                backoff: wait.saturating_mul(2),
            },
        );
    }

    /// Member `id` left on purpose: stop trying to reach it.
    pub(super) fn forget_lost(&mut self, id: &PeerId) {
        self.lost.remove(id);
    }

    /// Asks `addr` to let us in, with our record, and (to a member we hold dead or gone, `to`)
    /// with its record as we hold it, so that if it is alive it refutes at once.
    fn send_join(&mut self, to: Option<PeerId>, addr: String) {
        let mut records = alloc::vec![packet::encode_record(&self.own_record())];
        if let Some(id) = to
            && !self.is_present(&id)
            && let Some(theirs) = self.encode_member(&id)
        {
            records.push(theirs);
        }
        self.send(to, addr, Body::Join, records);
    }

    /// Whether `id` is a member alive or suspect.
    fn is_present(&self, id: &PeerId) -> bool {
        self.members.get(id).is_some_and(|m| m.status.is_present())
    }

    /// A node joins through us: welcome it with our record and some members (and, if we hold
    /// it dead or gone, its record as we hold it, so that it refutes).
    pub(super) fn on_join(&mut self, sender: PeerId, from: &str) {
        let reply_to = Some(sender);
        let mut records = self.welcome_records();
        if !self.is_present(&sender)
            && let Some(theirs) = self.encode_member(&sender)
        {
            records.insert(1, theirs);
        }
        self.send(reply_to, String::from(from), Body::Welcome, records);
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
