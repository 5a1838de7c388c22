//! Rumor mongering: applying the records we hear (news is passed on as a rumor), refuting
//! accusations of us, announcing our own changes, and gossip rounds.

use alloc::vec::Vec;

use super::{
    Member, MemberEvent, Membership, NodeState, Record, Status, Via,
    packet::{self, Body},
};
use crate::Instant;

impl Membership {
    /// Applies a record if it is news; returns whether it was.
    pub(super) fn merge(&mut self, now: Instant, record: Record, via: Via) {
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

    /// Someone says we are suspect, dead or gone (or knows a newer version of us from an
    /// earlier life): re-announce ourselves with a higher version.
    pub(super) fn refute_if_needed(&mut self, version: u64, status: Status) {
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

    /// Raises our version and spreads our record as news.
    pub(super) fn announce(&mut self) {
        // Saturating: a forged record at `u64::MAX` about us must not overflow (a remote panic).
        self.version = self.version.saturating_add(1);
        let bytes = packet::encode_record(&self.own_record());
        self.rumors.push(self.me, bytes);
    }

    /// How many times a rumor is sent: `retransmit_mult × ceil(log2(N + 1))`.
    pub(super) fn retransmit_limit(&self) -> u32 {
        let n = self.present.len() + 2;
        let log = usize::BITS - (n - 1).leading_zeros();
        self.cfg.retransmit_mult.max(1) * log.max(1)
    }

    /// Sends the rumors to `fanout` random contacts.
    pub(super) fn gossip_round(&mut self) {
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
}
