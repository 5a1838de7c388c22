//! Rumor mongering: applying the records we hear (news is passed on as a rumor), refuting
//! accusations of us, announcing our own changes, and gossip rounds.
//!
//! A record about a known member is applied only if it is news (see [`Record`]) and:
//! - it does not change the member's addresses (no record moves a member, whoever sends it);
//! - from a third party, it moves the member's version at most [`MAX_VERSION_STEP`] ahead of
//!   the one we know: accusations included, so a forged death at `u64::MAX` is ignored and one
//!   at a plausible version is refuted by its victim;
//! - from the member itself (the packet's sender), any newer version is taken, and so is a
//!   version far below ours (ours was then forged in its name, beyond what it can outdo).

use alloc::vec::Vec;

use super::{
    MAX_VERSION_STEP, Member, MemberEvent, Membership, NodeState, Record, Source, Status, Via,
    packet::{self, Body},
};
use crate::Instant;

impl Membership {
    /// Applies a record if it is news and `source` may tell it (see the module documentation).
    pub(super) fn merge(&mut self, now: Instant, record: Record, via: Via, source: Source<'_>) {
        if record.id == self.me {
            self.hear_about_self(record.version, record.status, record.state.as_ref());
            return;
        }
        let id = record.id;
        let Some(m) = self.members.get_mut(&id) else {
            self.admit(now, record, via, source);
            return;
        };
        if record.state.as_ref().is_some_and(|s| s.addrs != m.addrs) {
            return;
        }
        let newer = record.supersedes(m.version, m.status);
        let accept = match source {
            Source::Local => newer,
            Source::Itself(_) => {
                newer || record.version.saturating_add(MAX_VERSION_STEP) < m.version
            }
            Source::Other(_) => {
                newer && record.version <= m.version.saturating_add(MAX_VERSION_STEP)
            }
        };
        if accept {
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
                    let addrs = self.members.get(&id).map(|m| m.addrs.clone());
                    self.found(id, &addrs.unwrap_or_default());
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
                    if new == Status::Dead {
                        self.lose(now, id);
                    } else {
                        self.forget_lost(&id);
                    }
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

    /// Adds a member we did not know (news of it is passed on if it came as a rumor).
    pub(super) fn insert_member(&mut self, now: Instant, record: Record, via: Via) {
        let id = record.id;
        self.forget_unverified(&id);
        let status = record.status;
        let bytes = (via == Via::Rumor).then(|| packet::encode_record(&record));
        let state = record.state.unwrap_or_default();
        let addrs = state.addrs.clone();
        self.members.insert(
            id,
            Member {
                version: record.version,
                status,
                by: record.by,
                addrs: addrs.clone(),
                state,
                since: now,
                slot: None,
            },
        );
        if status.is_present() {
            self.add_present(id);
            self.events.push_back(MemberEvent::Joined(id));
            self.found(id, &addrs);
        }
        if status == Status::Suspect {
            self.start_suspicion(now, id, record.version, record.by);
        }
        if let Some(bytes) = bytes {
            self.rumors.push(id, bytes);
        }
    }

    /// Someone told us what it believes of us (`state`: the state it lists, if it sent a
    /// record rather than a digest entry). An accusation at our version or later is refuted,
    /// and a newer version or a false state at ours (forgeries in our name: we raise our
    /// version at every change) is outdone, by re-announcing ourselves above it, so that our
    /// own record wins again everywhere.
    ///
    /// A version more than [`MAX_VERSION_STEP`] beyond ours is not followed (it would use our
    /// versions up): no member takes such a jump from a third party, and a member that took
    /// it from a packet forged in our name gets our record from us, which corrects it.
    pub(super) fn hear_about_self(
        &mut self,
        version: u64,
        status: Status,
        state: Option<&NodeState>,
    ) {
        if self.left {
            return;
        }
        if version > self.version.saturating_add(MAX_VERSION_STEP) {
            self.correct_sender = true;
            return;
        }
        let accused = status != Status::Alive && version >= self.version;
        let misquoted = version == self.version && state.is_some_and(|s| *s != self.state);
        if accused || misquoted || version > self.version {
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
