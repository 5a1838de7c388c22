//! The node's membership: the core's [`Membership`] over one UDP socket (on the port the node
//! accepts peer links on), and peer exchange: which members to fetch an artifact from.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use pollen_core::{
    ContentId,
    membership::{Holding, MAX_HOLDINGS, MemberEvent, Membership, NodeState, Status},
    policy::{PolicyConfig, sources::from_membership},
};
use tokio::{net::UdpSocket, sync::mpsc::UnboundedSender};

use super::Input;

/// Largest datagram we read (the core never sends more than its packet limit).
const MAX_DATAGRAM: usize = pollen_core::membership::packet::MAX_PACKET;

#[cfg(test)]
use pollen_core::policy::{FETCHERS_PER_CROSSING, ZONE_GRACE};

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
    /// Datagrams and bytes sent so far.
    pub(crate) sent: (u64, u64),
}

impl Gossip {
    pub(crate) fn new(membership: Membership, socket: Arc<UdpSocket>) -> Self {
        Self {
            membership,
            socket,
            sent: (0, 0),
        }
    }

    /// Sends what the membership queued, and returns its events.
    pub(crate) fn drain(&mut self) -> Vec<MemberEvent> {
        while let Some(t) = self.membership.poll_transmit() {
            match t.addr.parse::<SocketAddr>() {
                // A full socket buffer drops the datagram, as the network might: gossip
                // tolerates loss.
                Ok(addr) => match self.socket.try_send_to(&t.payload, addr) {
                    Ok(n) => {
                        self.sent.0 += 1;
                        self.sent.1 += n as u64;
                    }
                    Err(err) => tracing::trace!(%addr, "gossip datagram not sent: {err}"),
                },
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
pub(crate) type Sources = pollen_core::policy::sources::Sources<SocketAddr>;

/// The core's choice of sources for artifact `id`, fetched for `fetching_for` so far (see
/// [`pollen_core::policy::sources::choose`]), with each holder at its first advertised
/// address; holders whose address does not parse are left out.
pub(crate) fn sources(m: &Membership, id: &ContentId, fetching_for: Duration) -> Sources {
    let s = from_membership(&PolicyConfig::default(), m, id, fetching_for);
    let parse = |v: Vec<String>| v.into_iter().filter_map(|a| a.parse().ok()).collect();
    Sources {
        dial: parse(s.dial),
        avoid: parse(s.avoid),
        complete: parse(s.complete),
        across: parse(s.across),
    }
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

    use pollen_core::policy::sources::rank;

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
        // The zone's smallest member fetches too, so it crosses at once; the others wait
        // the grace and then still leave the crossing to it.
        assert_eq!(
            crossing(Duration::ZERO),
            1,
            "only the zone's first member crosses during the grace"
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
    fn a_lone_fetcher_crosses_at_once() {
        let a = ContentId::of(b"x");
        let mut m = me("b", 100);
        m.insert_record(Instant::ZERO, node(1, "a", Some(true), a));
        assert_eq!(sources(&m, &a, Duration::ZERO).dial, vec![addr(1)]);
        assert_eq!(sources(&m, &a, ZONE_GRACE).dial, vec![addr(1)]);
    }

    #[test]
    fn a_fetcher_behind_a_member_not_fetching_waits_the_grace() {
        let a = ContentId::of(b"x");
        let electing = |n: u8| rank(&[n; 32], a.as_bytes());
        // Two members of zone b: the one first in the election holds nothing (it may start
        // fetching any moment), so the other waits the grace before it crosses.
        let (first, second) = if electing(10) < electing(11) {
            (10, 11)
        } else {
            (11, 10)
        };
        let mut m = me("b", second);
        m.insert_record(Instant::ZERO, node(1, "a", Some(true), a));
        m.insert_record(Instant::ZERO, node(first, "b", None, a));
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
