//! The node's membership: the core's [`Membership`] over one UDP socket (on the port the node
//! accepts peer links on), and peer exchange: which members to fetch an artifact from.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use pollen_core::{
    ContentId,
    membership::{Holding, MAX_HOLDINGS, MemberEvent, Membership, NodeState, Status},
};
use tokio::{net::UdpSocket, sync::mpsc::UnboundedSender};

use super::Input;

/// Largest datagram we read (the core never sends more than its packet limit).
const MAX_DATAGRAM: usize = pollen_core::membership::packet::MAX_PACKET;

/// How long a new download waits to learn of other fetchers in its zone before it may fetch
/// from another zone.
pub(crate) const ZONE_GRACE: Duration = Duration::from_secs(2);

/// Fetchers in a zone for each one that fetches from other zones (at least one does): one
/// crossing fetcher feeds its zone at no more than its own upload rate, so a large zone
/// needs several (the simulator's zones scenario: 4 per 100 peers cut the slowest zone's time
/// from 2.1 to 1.5 T_min for about a copy more per zone).
pub(crate) const FETCHERS_PER_CROSSING: usize = 25;

/// Reads datagrams into the actor's inputs until the actor is gone.
pub(crate) fn spawn_receiver(socket: Arc<UdpSocket>, inputs: UnboundedSender<Input>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) if n <= MAX_DATAGRAM => {
                    if inputs.send(Input::Gossip(from, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Ok((n, from)) => tracing::debug!(%from, n, "dropping an oversized datagram"),
                Err(err) => {
                    tracing::debug!("reading a gossip datagram: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

/// The node's view of the cluster, and the socket it gossips on.
pub(crate) struct Gossip {
    pub(crate) membership: Membership,
    socket: Arc<UdpSocket>,
}

impl Gossip {
    pub(crate) fn new(membership: Membership, socket: Arc<UdpSocket>) -> Self {
        Self { membership, socket }
    }

    /// Sends what the membership queued, and returns its events.
    pub(crate) fn drain(&mut self) -> Vec<MemberEvent> {
        while let Some(t) = self.membership.poll_transmit() {
            match t.addr.parse::<SocketAddr>() {
                // A full socket buffer drops the datagram, as the network might: gossip
                // tolerates loss.
                Ok(addr) => {
                    if let Err(err) = self.socket.try_send_to(&t.payload, addr) {
                        tracing::trace!(%addr, "gossip datagram not sent: {err}");
                    }
                }
                Err(_) => {
                    tracing::debug!(addr = %t.addr, "a member advertised an unusable address")
                }
            }
        }
        let mut events = Vec::new();
        while let Some(e) = self.membership.poll_event() {
            events.push(e);
        }
        events
    }

    /// Publishes what we hold and how loaded we are (a no-op when nothing changed).
    pub(crate) fn publish(&mut self, mut holdings: Vec<Holding>, load: u8) {
        // Complete artifacts are the more useful news when there are too many to list.
        holdings.sort_by_key(|h| (!h.complete, h.id));
        if holdings.len() > MAX_HOLDINGS {
            tracing::debug!(
                held = holdings.len(),
                "advertising only {MAX_HOLDINGS} artifacts"
            );
            holdings.truncate(MAX_HOLDINGS);
        }
        let state = NodeState {
            holdings,
            load: load.min(100),
            ..self.membership.state().clone()
        };
        // The state only changes within checked bounds.
        let _ = self.membership.set_state(state);
    }
}

/// Where to fetch an artifact from, as gossip tells it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sources {
    /// Members to dial, best first.
    pub(crate) dial: Vec<SocketAddr>,
    /// Members in other zones not to dial yet: someone else in our zone fetches across.
    pub(crate) avoid: Vec<SocketAddr>,
    /// The members of `dial` that hold the whole artifact, in the same order.
    pub(crate) complete: Vec<SocketAddr>,
}

/// Chooses sources for artifact `id`, fetched for `fetching_for` so far.
///
/// Peers in our zone come first, then complete holders, then the less loaded, and each
/// fetcher orders equals its own way ([`rank`]). If one of them holds the whole artifact, nothing is fetched
/// from other zones. Otherwise one fetcher per [`FETCHERS_PER_CROSSING`] of the zone (at least
/// one) fetches across: those whose `BLAKE3(peer id ‖ artifact id)` is smallest among the
/// zone's fetchers, after [`ZONE_GRACE`] to learn who they are; the others fetch from them and
/// each other, so an artifact crosses into a zone about once per crossing fetcher.
pub(crate) fn sources(m: &Membership, id: &ContentId, fetching_for: Duration) -> Sources {
    let zone = &m.state().zone;
    let mut out = Sources::default();
    let holders = m.holders(id);
    let local_complete = holders
        .iter()
        .any(|(info, h)| h.complete && info.state.zone == *zone);
    let me = m.local_id();
    let my_rank = rank(me.as_bytes(), id.as_bytes());
    let zone_fetchers: Vec<[u8; 32]> = holders
        .iter()
        .filter(|(info, h)| !h.complete && info.state.zone == *zone && info.id != me)
        .map(|(info, _)| rank(info.id.as_bytes(), id.as_bytes()))
        .collect();
    let crossing = ((zone_fetchers.len() + 1) / FETCHERS_PER_CROSSING).max(1);
    let ahead = zone_fetchers.iter().filter(|r| **r < my_rank).count();
    let designated = fetching_for >= ZONE_GRACE && ahead < crossing;
    let mut dial = Vec::new();
    let mut complete = Vec::new();
    for (info, h) in &holders {
        let Some(addr) = info.state.addrs.first().and_then(|a| a.parse().ok()) else {
            continue;
        };
        if info.state.zone == *zone || (!local_complete && designated) {
            let key = (
                info.state.zone != *zone,
                !h.complete,
                info.state.load / LOAD_BAND,
                rank(me.as_bytes(), info.id.as_bytes()),
            );
            dial.push((key, addr));
            if h.complete {
                complete.push((key, addr));
            }
        } else {
            out.avoid.push(addr);
        }
    }
    dial.sort();
    complete.sort();
    out.dial = dial.into_iter().map(|(_, addr)| addr).collect();
    out.complete = complete.into_iter().map(|(_, addr)| addr).collect();
    out
}

/// Loads (percent) within one band count as equal when ordering sources, so fetchers do not
/// all pick the one holder that last reported the least load.
const LOAD_BAND: u8 = 25;

/// `BLAKE3(a ‖ b)`: a fetcher's place in its zone's election for an artifact (`a` the
/// fetcher, `b` the artifact; smallest wins), or a holder's place in one fetcher's order of
/// sources (`a` the fetcher, `b` the holder), so that among equally good holders each
/// fetcher prefers different ones and capped dials spread over all of them.
fn rank(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(a);
    h.update(b);
    *h.finalize().as_bytes()
}

/// A member's liveness as `pollen status` prints it.
pub(crate) fn status_word(s: Status) -> &'static str {
    match s {
        Status::Alive => "alive",
        Status::Suspect => "suspect",
        Status::Dead => "dead",
        Status::Left => "left",
    }
}

#[cfg(test)]
mod tests {
    use pollen_core::{
        Instant, PeerId,
        membership::{MembershipConfig, Record},
    };

    use super::*;

    fn node(n: u8, zone: &str, holds: Option<bool>, artifact: ContentId) -> Record {
        Record {
            id: PeerId::from_bytes([n; 32]),
            version: 1,
            status: Status::Alive,
            by: PeerId::from_bytes([n; 32]),
            state: Some(NodeState {
                addrs: vec![format!("127.0.0.1:{}", 7000 + u16::from(n))],
                zone: zone.to_string(),
                holdings: holds
                    .map(|complete| Holding {
                        id: artifact,
                        complete,
                    })
                    .into_iter()
                    .collect(),
                ..NodeState::default()
            }),
        }
    }

    fn me(zone: &str, n: u8) -> Membership {
        let state = NodeState {
            zone: zone.to_string(),
            ..NodeState::default()
        };
        Membership::new(
            MembershipConfig::default(),
            PeerId::from_bytes([n; 32]),
            state,
            Instant::ZERO,
            1,
        )
        .expect("valid state")
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(n)))
    }

    #[test]
    fn a_complete_holder_in_our_zone_means_no_cross_zone_fetch() {
        let a = ContentId::of(b"x");
        let mut m = me("b", 100);
        m.insert_record(Instant::ZERO, node(1, "a", Some(true), a));
        m.insert_record(Instant::ZERO, node(2, "b", Some(true), a));
        m.insert_record(Instant::ZERO, node(3, "b", None, a));
        let s = sources(&m, &a, Duration::from_secs(60));
        assert_eq!(s.dial, vec![addr(2)]);
        assert_eq!(s.avoid, vec![addr(1)]);
    }

    #[test]
    fn exactly_one_fetcher_per_zone_fetches_across_after_the_grace() {
        let a = ContentId::of(b"x");
        // Four fetchers in zone b (ids 10..14), the only complete holder in zone a.
        let ms: Vec<Membership> = (10..14)
            .map(|n| {
                let mut m = me("b", n);
                m.insert_record(Instant::ZERO, node(1, "a", Some(true), a));
                for other in (10..14).filter(|o| *o != n) {
                    m.insert_record(Instant::ZERO, node(other, "b", Some(false), a));
                }
                m
            })
            .collect();
        let crossing = |after: Duration| {
            ms.iter()
                .filter(|m| sources(m, &a, after).dial.contains(&addr(1)))
                .count()
        };
        assert_eq!(
            crossing(Duration::ZERO),
            0,
            "nobody crosses during the grace"
        );
        assert_eq!(crossing(ZONE_GRACE), 1, "one fetcher crosses");
        // Everyone dials its zone's fetchers.
        for m in &ms {
            assert_eq!(
                sources(m, &a, ZONE_GRACE)
                    .dial
                    .iter()
                    .filter(|d| **d != addr(1))
                    .count(),
                3
            );
        }
    }

    #[test]
    fn a_large_zone_has_one_crossing_fetcher_per_twenty_five() {
        let a = ContentId::of(b"x");
        // 60 fetchers in zone b (ids 10..70): two cross.
        let ids: Vec<u8> = (10..70).collect();
        let crossing = ids
            .iter()
            .filter(|&&n| {
                let mut m = me("b", n);
                m.insert_record(Instant::ZERO, node(1, "a", Some(true), a));
                for &other in ids.iter().filter(|o| **o != n) {
                    m.insert_record(Instant::ZERO, node(other, "b", Some(false), a));
                }
                sources(&m, &a, ZONE_GRACE).dial.contains(&addr(1))
            })
            .count();
        assert_eq!(crossing, 60 / FETCHERS_PER_CROSSING);
    }

    #[test]
    fn a_lone_fetcher_crosses_after_the_grace() {
        let a = ContentId::of(b"x");
        let mut m = me("b", 100);
        m.insert_record(Instant::ZERO, node(1, "a", Some(true), a));
        assert!(sources(&m, &a, Duration::ZERO).dial.is_empty());
        assert_eq!(sources(&m, &a, ZONE_GRACE).dial, vec![addr(1)]);
    }

    #[test]
    fn with_one_zone_every_holder_is_a_source_at_once() {
        let a = ContentId::of(b"x");
        let mut m = me("", 100);
        m.insert_record(Instant::ZERO, node(1, "", Some(true), a));
        m.insert_record(Instant::ZERO, node(2, "", Some(false), a));
        let s = sources(&m, &a, Duration::ZERO);
        assert_eq!(s.dial, vec![addr(1), addr(2)]);
        assert!(s.avoid.is_empty());
    }

    #[test]
    fn fetchers_order_equal_holders_differently_complete_ones_first() {
        let a = ContentId::of(b"x");
        let firsts: std::collections::BTreeSet<SocketAddr> = (100..120)
            .map(|n| {
                let mut m = me("", n);
                m.insert_record(Instant::ZERO, node(1, "", Some(true), a));
                for other in 10..40 {
                    m.insert_record(Instant::ZERO, node(other, "", Some(false), a));
                }
                let s = sources(&m, &a, Duration::ZERO);
                assert_eq!(s.dial.len(), 31);
                assert_eq!(s.dial[0], addr(1), "the complete holder comes first");
                assert_eq!(s.complete, [addr(1)]);
                s.dial[1]
            })
            .collect();
        // 20 fetchers, 30 equal holders: with one shared order every fetcher would put the
        // same holder second.
        assert!(firsts.len() >= 8, "{firsts:?}");
    }
}
