//! Who is connected and which swarms they joined: the server's only state.

use std::collections::HashMap;

use pollen_core::{
    ContentId, PeerId,
    signal::{ErrorCode, Member, PeerKind},
};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::mpsc;

/// Messages queued for a connection that it has not written yet, at most.
pub(crate) const OUTBOX: usize = 64;

/// One named connection.
struct Slot {
    /// Which connection holds the name (a reconnect under the same id is a new one).
    conn: u64,
    kind: PeerKind,
    /// Encoded messages for the connection to write.
    outbox: mpsc::Sender<Vec<u8>>,
    swarms: Vec<ContentId>,
}

/// Every named connection and every swarm's members.
pub(crate) struct Registry {
    peers: HashMap<PeerId, Slot>,
    swarms: HashMap<ContentId, Vec<PeerId>>,
    rng: Xoshiro256PlusPlus,
}

impl Registry {
    /// An empty registry whose samples are drawn from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            peers: HashMap::new(),
            swarms: HashMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// Names connection `conn` as `peer`; refuses a name another connection holds.
    pub(crate) fn hello(
        &mut self,
        conn: u64,
        peer: PeerId,
        kind: PeerKind,
        outbox: mpsc::Sender<Vec<u8>>,
    ) -> Result<(), ErrorCode> {
        if self.peers.contains_key(&peer) {
            return Err(ErrorCode::DuplicatePeer);
        }
        self.peers.insert(
            peer,
            Slot {
                conn,
                kind,
                outbox,
                swarms: Vec::new(),
            },
        );
        Ok(())
    }

    /// Adds `peer` to `swarm` (if not there yet) and samples up to `max` other members.
    pub(crate) fn join(
        &mut self,
        peer: PeerId,
        swarm: ContentId,
        max_swarms: usize,
        max: usize,
    ) -> Result<Vec<Member>, ErrorCode> {
        let slot = self.peers.get_mut(&peer).ok_or(ErrorCode::HelloFirst)?;
        if !slot.swarms.contains(&swarm) {
            if slot.swarms.len() >= max_swarms {
                return Err(ErrorCode::TooManySwarms);
            }
            slot.swarms.push(swarm);
            self.swarms.entry(swarm).or_default().push(peer);
        }
        let members = self.swarms.get(&swarm).map_or(&[][..], Vec::as_slice);
        // A partial Fisher-Yates over indices: the first `take` are a uniform sample.
        let mut idx: Vec<usize> = (0..members.len()).filter(|&i| members[i] != peer).collect();
        let take = idx.len().min(max);
        for i in 0..take {
            let j = i + (self.rng.next_u64() % (idx.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        Ok(idx[..take]
            .iter()
            .filter_map(|&i| {
                let p = members[i];
                self.peers.get(&p).map(|s| Member {
                    peer: p,
                    kind: s.kind,
                })
            })
            .collect())
    }

    /// Removes `peer` from `swarm`; returns how many swarms it is still in.
    pub(crate) fn leave(&mut self, peer: PeerId, swarm: ContentId) -> usize {
        let left = self.peers.get_mut(&peer).map_or(0, |slot| {
            slot.swarms.retain(|s| *s != swarm);
            slot.swarms.len()
        });
        self.remove_member(swarm, peer);
        left
    }

    fn remove_member(&mut self, swarm: ContentId, peer: PeerId) {
        if let Some(members) = self.swarms.get_mut(&swarm) {
            if let Some(i) = members.iter().position(|p| *p == peer) {
                members.swap_remove(i);
            }
            if members.is_empty() {
                self.swarms.remove(&swarm);
            }
        }
    }

    /// Queues `message` for `to`, if both `from` and `to` joined `swarm`; returns the
    /// sender's kind for the relayed message's header through `encode`.
    pub(crate) fn relay(
        &mut self,
        from: PeerId,
        to: PeerId,
        swarm: ContentId,
        encode: impl FnOnce(PeerKind) -> Vec<u8>,
    ) -> Result<(), ErrorCode> {
        let sender = self.peers.get(&from).ok_or(ErrorCode::HelloFirst)?;
        if !sender.swarms.contains(&swarm) {
            return Err(ErrorCode::NotJoined);
        }
        let kind = sender.kind;
        let target = self
            .peers
            .get(&to)
            .filter(|s| s.swarms.contains(&swarm))
            .ok_or(ErrorCode::UnknownPeer)?;
        target
            .outbox
            .try_send(encode(kind))
            .map_err(|_| ErrorCode::PeerBusy)
    }

    /// Forgets connection `conn`, if it still holds the name `peer`.
    pub(crate) fn disconnect(&mut self, conn: u64, peer: PeerId) {
        if self.peers.get(&peer).is_some_and(|s| s.conn == conn)
            && let Some(slot) = self.peers.remove(&peer)
        {
            for swarm in slot.swarms {
                self.remove_member(swarm, peer);
            }
        }
    }

    /// How many connections are named.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// How many swarms have members.
    pub(crate) fn swarm_count(&self) -> usize {
        self.swarms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    fn registry_with(n: u8, swarm: ContentId) -> Registry {
        let mut reg = Registry::new(1);
        for i in 0..n {
            let (tx, _rx) = mpsc::channel(1);
            reg.hello(u64::from(i), peer(i), PeerKind::Browser, tx)
                .expect("fresh id");
            reg.join(peer(i), swarm, 4, 100).expect("joins");
        }
        reg
    }

    #[test]
    fn samples_are_bounded_distinct_and_exclude_the_joiner() {
        let swarm = ContentId::from_bytes([1; 32]);
        let mut reg = registry_with(50, swarm);
        let sample = reg.join(peer(0), swarm, 4, 10).expect("joins");
        assert_eq!(sample.len(), 10);
        assert!(sample.iter().all(|m| m.peer != peer(0)));
        let mut ids: Vec<_> = sample.iter().map(|m| m.peer).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10);
        // Different joins draw different samples.
        let again = reg.join(peer(0), swarm, 4, 10).expect("joins");
        assert_ne!(sample, again);
    }

    #[test]
    fn disconnect_forgets_memberships_but_not_a_newer_connection() {
        let swarm = ContentId::from_bytes([1; 32]);
        let mut reg = registry_with(3, swarm);
        reg.disconnect(99, peer(1)); // not the connection holding the name
        assert_eq!(reg.peer_count(), 3);
        reg.disconnect(1, peer(1));
        assert_eq!(reg.peer_count(), 2);
        let sample = reg.join(peer(0), swarm, 4, 10).expect("joins");
        assert_eq!(sample.len(), 1);
        reg.disconnect(0, peer(0));
        reg.disconnect(2, peer(2));
        assert_eq!(reg.swarm_count(), 0);
    }

    #[test]
    fn relays_only_within_a_shared_swarm() {
        let a = ContentId::from_bytes([1; 32]);
        let b = ContentId::from_bytes([2; 32]);
        let mut reg = Registry::new(1);
        let (tx0, _rx0) = mpsc::channel(1);
        let (tx1, mut rx1) = mpsc::channel(1);
        reg.hello(0, peer(0), PeerKind::Native, tx0).expect("fresh");
        reg.hello(1, peer(1), PeerKind::Browser, tx1)
            .expect("fresh");
        assert_eq!(
            reg.hello(2, peer(1), PeerKind::Browser, mpsc::channel(1).0),
            Err(ErrorCode::DuplicatePeer)
        );
        reg.join(peer(0), a, 4, 10).expect("joins");
        reg.join(peer(1), b, 4, 10).expect("joins");
        assert_eq!(
            reg.relay(peer(0), peer(1), a, |_| vec![1]),
            Err(ErrorCode::UnknownPeer)
        );
        assert_eq!(
            reg.relay(peer(0), peer(1), b, |_| vec![1]),
            Err(ErrorCode::NotJoined)
        );
        reg.join(peer(1), a, 4, 10).expect("joins");
        reg.relay(peer(0), peer(1), a, |k| vec![k as u8])
            .expect("relays");
        assert_eq!(rx1.try_recv().ok(), Some(vec![PeerKind::Native as u8]));
        // The outbox holds one message: the next is refused, not queued without bound.
        reg.relay(peer(0), peer(1), a, |_| vec![2]).expect("relays");
        assert_eq!(
            reg.relay(peer(0), peer(1), a, |_| vec![3]),
            Err(ErrorCode::PeerBusy)
        );
        assert_eq!(
            reg.join(peer(1), ContentId::from_bytes([3; 32]), 2, 10),
            Err(ErrorCode::TooManySwarms)
        );
        assert_eq!(reg.leave(peer(1), b), 1, "still in one swarm");
        assert_eq!(reg.leave(peer(1), a), 0);
        assert_eq!(reg.leave(peer(1), a), 0, "leaving twice is harmless");
    }
}
