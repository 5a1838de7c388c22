//! Members heard of only from others wait, unverified, until they answer a ping of ours.
//!
//! A record of a member we do not know says only that someone claims it exists; packets are
//! not authenticated, so copies of real packets with other identities in them, or a flood of
//! made-up members, would otherwise become members that everyone spreads and probes (and that
//! a real node at a borrowed address would keep alive). So an unknown member is first kept
//! apart, *unverified*: we ping it at its address (at most `verify_per_round` pings per
//! round, three tries a probe interval apart), and it becomes a member, announced and passed
//! on like any other, only when it answers itself, with that ping's sequence number. Until
//! then it is not listed, probed, counted or passed on, and it is forgotten after
//! `unverified_timeout`. What one packet, one source address and everyone together can make
//! us wait on is bounded (`max_new_per_packet`, `max_unverified_per_source`,
//! `max_unverified`).
//!
//! A node with a bounded view (a browser) cannot ping outside its few links: it takes the
//! word of the members it talks to, which verified what they pass on.

use alloc::{string::String, vec::Vec};

use super::{Membership, Record, Source, Via, packet::Body};
use crate::{Instant, PeerId};

/// Pings sent to an unverified member before it is forgotten.
const VERIFY_TRIES: u8 = 3;

/// A member we heard of from others and have not verified yet.
pub(super) struct Unverified {
    /// The newest record of it we heard.
    record: Record,
    /// How its first record reached us (a rumor is passed on once it is verified).
    via: Via,
    /// The transport address that told us of it first.
    source: String,
    /// When it is forgotten if it has not answered.
    expires: Instant,
    /// Our ping's sequence number, and when we sent it.
    ping: Option<(u32, Instant)>,
    /// Pings sent.
    tries: u8,
    /// Whether it waits in `verify_queue` for a ping.
    queued: bool,
}

impl Membership {
    /// Unverified members (heard of from others, not yet answering our ping).
    pub fn unverified_count(&self) -> usize {
        self.unverified.len()
    }

    /// A record of a member we do not know: trusted if it is ours or the driver's, taken on the
    /// word of our few peers with a bounded view, else kept unverified until it answers.
    pub(super) fn admit(&mut self, now: Instant, record: Record, via: Via, source: Source<'_>) {
        // A dead or departed member we never knew (or forgot) is not worth keeping: news of it
        // would pass back and forth, and nothing refutes a made-up death.
        if !record.status.is_present() || self.members.len() >= self.cfg.max_members {
            return;
        }
        let from = match source {
            Source::Local => return self.insert_member(now, record, via),
            Source::Itself(from) | Source::Other(from) => from,
        };
        if self.cfg.active_view.is_some() {
            if self.admit_budget > 0 {
                self.admit_budget -= 1;
                self.insert_member(now, record, via);
            }
            return;
        }
        let addrs = record.state.as_ref().map(|s| s.addrs.as_slice());
        if addrs.is_none_or(<[String]>::is_empty) {
            // No address to verify it at (a browser reaches us only over links it opens).
            return;
        }
        if let Some(u) = self.unverified.get_mut(&record.id) {
            // Its address is the one first heard, as for a member.
            let same_addrs = u.record.state.as_ref().map(|s| s.addrs.as_slice()) == addrs;
            if same_addrs && record.supersedes(u.record.version, u.record.status) {
                u.record = record;
            }
            return;
        }
        let by_source = self.unverified_by_source.get(from).copied().unwrap_or(0);
        if self.admit_budget == 0
            || self.unverified.len() >= self.cfg.max_unverified
            || by_source >= self.cfg.max_unverified_per_source
        {
            return;
        }
        self.admit_budget -= 1;
        *self
            .unverified_by_source
            .entry(String::from(from))
            .or_default() += 1;
        let id = record.id;
        self.unverified.insert(
            id,
            Unverified {
                record,
                via,
                source: String::from(from),
                expires: now + self.cfg.unverified_timeout,
                ping: None,
                tries: 0,
                queued: true,
            },
        );
        self.verify_queue.push_back(id);
    }

    /// Pings queued unverified members while this round's budget lasts.
    pub(super) fn send_verify_pings(&mut self, now: Instant) {
        while self.verify_budget > 0 {
            let Some(id) = self.verify_queue.pop_front() else {
                return;
            };
            let seq = self.next_seq();
            let Some(u) = self.unverified.get_mut(&id) else {
                continue;
            };
            u.queued = false;
            let addr = u
                .record
                .state
                .as_ref()
                .and_then(|s| s.addrs.first())
                .cloned();
            let Some(addr) = addr.filter(|_| u.expires > now) else {
                continue;
            };
            u.ping = Some((seq, now));
            u.tries += 1;
            self.verify_budget -= 1;
            self.send(Some(id), addr, Body::Ping { seq }, Vec::new());
        }
    }

    /// Each round: a fresh ping budget; unanswered pings are retried a probe interval later;
    /// members that never answered are forgotten.
    pub(super) fn verify_round(&mut self, now: Instant) {
        self.verify_budget = self.cfg.verify_per_round;
        if self.unverified.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for (id, u) in &mut self.unverified {
            let unanswered = u
                .ping
                .is_some_and(|(_, at)| now >= at + self.cfg.probe_interval);
            if u.expires <= now || (unanswered && u.tries >= VERIFY_TRIES) {
                gone.push(*id);
            } else if unanswered && !u.queued {
                u.ping = None;
                u.queued = true;
                self.verify_queue.push_back(*id);
            }
        }
        for id in gone {
            self.forget_unverified(&id);
        }
        self.send_verify_pings(now);
    }

    /// An ack from `sender` with `seq`: if it answers our ping of an unverified member, that
    /// member is verified. Returns whether it did.
    pub(super) fn verify_ack(&mut self, now: Instant, sender: PeerId, seq: u32) -> bool {
        let answered = self
            .unverified
            .get(&sender)
            .is_some_and(|u| u.ping.is_some_and(|(s, _)| s == seq));
        if !answered {
            return false;
        }
        if let Some(u) = self.forget_unverified(&sender)
            && !self.members.contains_key(&sender)
        {
            let first_contact = self.present.is_empty();
            self.insert_member(now, u.record, u.via);
            if first_contact {
                // Our first member: learn the rest of the cluster from it at once.
                self.next_sync = now;
            }
        }
        true
    }

    /// Drops an unverified member, returning it.
    pub(super) fn forget_unverified(&mut self, id: &PeerId) -> Option<Unverified> {
        let u = self.unverified.remove(id)?;
        if let Some(n) = self.unverified_by_source.get_mut(&u.source) {
            *n -= 1;
            if *n == 0 {
                self.unverified_by_source.remove(&u.source);
            }
        }
        Some(u)
    }
}
