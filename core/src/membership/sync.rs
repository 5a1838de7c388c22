//! Anti-entropy: every `sync_interval`, a digest of one range of the id space goes to a random
//! member, which answers with the records we lack and asks for those it lacks.

use alloc::{collections::BTreeMap, string::String, vec::Vec};

use super::{
    Membership, Record, Status,
    packet::{self, Body, Digest},
};
use crate::PeerId;

impl Membership {
    /// Sends a random contact the digest of the next range of the id space.
    pub(super) fn start_sync(&mut self) {
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

    /// A sync request: send what the requester lacks, and ask for what it knows better (no
    /// answer when there is neither, nor a rumor to piggyback).
    pub(super) fn on_sync_request(
        &mut self,
        sender: PeerId,
        from: &str,
        start: PeerId,
        end: Option<PeerId>,
        digest: &[Digest],
        full: bool,
    ) {
        let reply_to = Some(sender);
        // The requester may hold an accusation of us that never reached us as a rumor.
        if let Some(d) = digest.iter().find(|d| d.id == self.me) {
            self.hear_about_self(d.version, d.status, None);
        }
        let (records, wants) = self.answer_sync(start, end, digest, full);
        // In agreement, with no news to piggyback: nothing to answer (the common case, once a
        // cluster has converged).
        if records.is_empty() && wants.is_empty() && self.rumors.is_empty() {
            return;
        }
        self.send(
            reply_to,
            String::from(from),
            Body::SyncReply { wants },
            records,
        );
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
        // Our own record, unless they know it exactly: theirs is older, or a forgery in our
        // name beyond what we follow, which our record (from us) corrects.
        if in_range(&self.me, &start, end.as_ref())
            && theirs.get(&self.me) != Some(&(self.version, self.own_status()))
        {
            newer.push((true, u64::MAX, self.me));
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

    /// A sync reply: push the records the peer wants (if we have any, or rumors to piggyback).
    pub(super) fn on_sync_reply(&mut self, sender: PeerId, from: &str, wants: &[PeerId]) {
        let reply_to = Some(sender);
        let records = self.encode_members(wants);
        if records.is_empty() && self.rumors.is_empty() {
            return;
        }
        self.send(reply_to, String::from(from), Body::SyncPush, records);
    }

    /// The record of `id` (ourselves included), encoded.
    pub(super) fn encode_member(&self, id: &PeerId) -> Option<Vec<u8>> {
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

    /// The records of `ids` we know, encoded.
    fn encode_members(&self, ids: &[PeerId]) -> Vec<Vec<u8>> {
        ids.iter().filter_map(|id| self.encode_member(id)).collect()
    }
}

/// Whether `id` is in the range from `start` to `end` (exclusive; `None`: the end of the id
/// space).
fn in_range(id: &PeerId, start: &PeerId, end: Option<&PeerId>) -> bool {
    id >= start && end.is_none_or(|e| id < e)
}
