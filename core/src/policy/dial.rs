//! Which known addresses of an artifact's holders a download dials, and when: every address
//! the user or the ticket named, a few holders of the whole artifact, then the sources in
//! their order while the artifact has fewer than [`PolicyConfig::max_links`] links open or
//! being dialed.

use alloc::{
    collections::{BTreeMap, BTreeSet},
    vec::Vec,
};
use core::time::Duration;

use super::{PolicyConfig, sources::Sources};
use crate::{Instant, endpoint::ConnId};

/// Wait before dialing an address again after a failure or a closed link.
pub const REDIAL_AFTER: Duration = Duration::from_secs(1);

/// Longest wait between dials of an address that keeps failing.
pub const MAX_REDIAL_WAIT: Duration = Duration::from_secs(60);

/// What a download knows about an address it may dial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrState {
    /// A dial is in progress.
    pub dialing: bool,
    /// The connection that carries the artifact to it, if any.
    pub conn: Option<ConnId>,
    /// Not before this.
    pub retry_at: Option<Instant>,
    /// Dials in a row that failed or led nowhere; the wait before the next one doubles.
    pub failures: u32,
    /// Never dial again (it is us, or banned).
    pub never: bool,
    /// Named by the ticket or the operator: dialed whatever the cap.
    pub pinned: bool,
}

impl AddrState {
    /// Schedules the next dial after one more failure: 1 s, 2 s, 4 s, ... up to a minute.
    pub fn back_off(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let wait = REDIAL_AFTER * 2u32.saturating_pow(self.failures.min(6) - 1);
        self.retry_at = Some(now + wait.min(MAX_REDIAL_WAIT));
    }

    /// Whether it may be dialed now: not us or banned, not linked or being dialed, and not
    /// waiting to retry.
    pub fn dialable(&self, now: Instant) -> bool {
        !(self.never
            || self.dialing
            || self.conn.is_some()
            || self.retry_at.is_some_and(|t| t > now))
    }
}

/// The addresses to dial now, given the artifact's known `addrs`, its `sources`, and the
/// number of links it has open (`linked`, dialed or accepted).
///
/// Pinned addresses are always dialed, unless the sources say to leave them to another
/// fetcher of our zone (`avoid`), and so are complete holders until
/// [`PolicyConfig::complete_links`] of them are linked or being dialed, and a crossing
/// fetcher's holders in other zones until [`PolicyConfig::cross_links`] are. Then the `dial` list,
/// best first, and then any other known address not to avoid, while links open plus dials in
/// progress stay below [`PolicyConfig::max_links`].
pub fn to_dial<A: Ord + Clone>(
    cfg: &PolicyConfig,
    addrs: &BTreeMap<A, AddrState>,
    sources: &Sources<A>,
    linked: usize,
    now: Instant,
) -> Vec<A> {
    let dialing = addrs.values().filter(|s| s.dialing).count();
    // Sets, not the lists: a cluster of thousands names thousands of sources.
    let avoid: BTreeSet<&A> = sources.avoid.iter().collect();
    let listed: BTreeSet<&A> = sources.dial.iter().collect();
    let dialable = |a: &A| !avoid.contains(a) && addrs.get(a).is_some_and(|s| s.dialable(now));
    let mut out: Vec<A> = addrs
        .iter()
        .filter(|(a, s)| s.pinned && dialable(a))
        .map(|(a, _)| a.clone())
        .collect();
    let engaged = |out: &Vec<A>, a: &A| {
        out.contains(a) || addrs.get(a).is_some_and(|s| s.dialing || s.conn.is_some())
    };
    // Complete holders, then (for a crossing fetcher) holders in other zones, each up to its
    // own count whatever the cap.
    for (list, want) in [
        (&sources.complete, cfg.complete_links),
        (&sources.across, cfg.cross_links),
    ] {
        let linked = list.iter().filter(|a| engaged(&out, a)).count();
        let wanted: Vec<A> = list
            .iter()
            .filter(|a| !engaged(&out, a) && dialable(a))
            .take(want.saturating_sub(linked))
            .cloned()
            .collect();
        out.extend(wanted);
    }
    let mut budget = cfg.max_links.saturating_sub(linked + dialing + out.len());
    let others = addrs
        .keys()
        .filter(|a| !listed.contains(a) && !avoid.contains(a));
    for addr in sources.dial.iter().chain(others) {
        if budget == 0 {
            break;
        }
        if dialable(addr) && !out.contains(addr) {
            out.push(addr.clone());
            budget -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use core::net::SocketAddr;

    use super::*;
    use crate::policy::MAX_LINKS;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + n))
    }

    fn known(n: u16) -> BTreeMap<SocketAddr, AddrState> {
        (0..n).map(|i| (addr(i), AddrState::default())).collect()
    }

    /// [`to_dial`] with a node's settings.
    fn node_dial(
        addrs: &BTreeMap<SocketAddr, AddrState>,
        sources: &Sources<SocketAddr>,
        linked: usize,
        now: Instant,
    ) -> Vec<SocketAddr> {
        to_dial(&PolicyConfig::default(), addrs, sources, linked, now)
    }

    fn sources(order: impl IntoIterator<Item = u16>) -> Sources<SocketAddr> {
        Sources {
            dial: order.into_iter().map(addr).collect(),
            ..Sources::default()
        }
    }

    #[test]
    fn a_large_swarm_is_dialed_up_to_the_cap_in_gossip_order() {
        let addrs = known(100);
        let order: Vec<u16> = (0..100).rev().collect();
        let dial = node_dial(&addrs, &sources(order.clone()), 0, Instant::ZERO);
        assert_eq!(dial.len(), MAX_LINKS);
        let expected: Vec<SocketAddr> = order[..MAX_LINKS].iter().map(|&n| addr(n)).collect();
        assert_eq!(dial, expected);
    }

    #[test]
    fn open_links_and_dials_in_progress_count_against_the_cap() {
        let mut addrs = known(40);
        for n in 0..3 {
            addrs.get_mut(&addr(n)).expect("known").dialing = true;
        }
        let dial = node_dial(&addrs, &sources(0..40), 10, Instant::ZERO);
        assert_eq!(dial.len(), MAX_LINKS - 13);
        assert!(dial.iter().all(|a| *a >= addr(3)), "{dial:?}");
        let full = node_dial(&addrs, &sources(0..40), MAX_LINKS, Instant::ZERO);
        assert!(full.is_empty(), "{full:?}");
    }

    #[test]
    fn pinned_addresses_are_dialed_whatever_the_cap() {
        let mut addrs = known(30);
        addrs.get_mut(&addr(29)).expect("known").pinned = true;
        let dial = node_dial(&addrs, &sources(0..30), MAX_LINKS, Instant::ZERO);
        assert_eq!(dial, [addr(29)]);
        // With room, the pinned address comes first and takes a place.
        let dial = node_dial(&addrs, &sources(0..30), 0, Instant::ZERO);
        assert_eq!(dial[0], addr(29));
        assert_eq!(dial.len(), MAX_LINKS);
        assert_eq!(dial.iter().filter(|a| **a == addr(29)).count(), 1);
    }

    #[test]
    fn linked_waiting_avoided_and_never_addresses_are_skipped() {
        let now = Instant::ZERO;
        let mut addrs = known(6);
        addrs.get_mut(&addr(0)).expect("known").never = true;
        addrs.get_mut(&addr(1)).expect("known").conn = Some(ConnId(9));
        addrs.get_mut(&addr(2)).expect("known").retry_at = Some(now + Duration::from_secs(5));
        let src = Sources {
            dial: vec![addr(0), addr(1), addr(2), addr(3)],
            avoid: vec![addr(4)],
            ..Sources::default()
        };
        // addr(5) is known but gossip no longer names it: dialed after gossip's sources.
        assert_eq!(node_dial(&addrs, &src, 1, now), [addr(3), addr(5)]);
    }

    #[test]
    fn a_pinned_address_gossip_leaves_to_another_fetcher_is_not_dialed() {
        let mut addrs = known(3);
        addrs.get_mut(&addr(0)).expect("known").pinned = true;
        let src = Sources {
            dial: vec![addr(1)],
            avoid: vec![addr(0)],
            ..Sources::default()
        };
        assert_eq!(
            node_dial(&addrs, &src, 0, Instant::ZERO),
            [addr(1), addr(2)]
        );
    }

    #[test]
    fn two_complete_holders_are_linked_whatever_the_cap() {
        let mut addrs = known(40);
        let mut src = sources(0..40);
        src.complete = vec![addr(30), addr(31), addr(32)];
        // At the cap with links to peers that hold little: the first two complete holders
        // are dialed anyway, and no more.
        let dial = node_dial(&addrs, &src, MAX_LINKS, Instant::ZERO);
        assert_eq!(dial, [addr(30), addr(31)]);
        // One of them linked already: one more.
        addrs.get_mut(&addr(30)).expect("known").conn = Some(ConnId(1));
        let dial = node_dial(&addrs, &src, MAX_LINKS, Instant::ZERO);
        assert_eq!(dial, [addr(31)]);
        // With room, they come first and count against the cap.
        let dial = node_dial(&addrs, &src, 1, Instant::ZERO);
        assert_eq!(dial.len(), MAX_LINKS - 1);
        assert_eq!(dial[0], addr(31));
    }

    #[test]
    fn a_crossing_fetcher_links_across_whatever_the_cap() {
        let addrs = known(40);
        let mut src = sources(0..40);
        src.across = (20..40).map(addr).collect();
        let cfg = PolicyConfig::default();
        // At the cap with links in its own zone: holders across are dialed anyway.
        let dial = to_dial(&cfg, &addrs, &src, MAX_LINKS, Instant::ZERO);
        let expected: Vec<SocketAddr> = (20..20 + cfg.cross_links as u16).map(addr).collect();
        assert_eq!(dial, expected);
    }
}
