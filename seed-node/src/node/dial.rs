//! Which known addresses an artifact's download dials, and when: every address the user or
//! the ticket named, a few holders of the whole artifact, then gossip's sources in their
//! order while the artifact has fewer than [`MAX_DIALED_LINKS`] links open or being dialed.
//! Without the cap a node would dial every holder gossip names, and a swarm of N nodes would
//! open N² links.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use tokio::time::Instant;

use super::gossip::Sources;

/// Links (open or being dialed) below which a download dials more of gossip's sources; the
/// simulator's mixed-capacity scenario finished its slowest peers sooner with 12 random
/// neighbours than with 5, and more links only add bookkeeping.
pub(crate) const MAX_DIALED_LINKS: usize = 16;

/// Holders of the whole artifact a download links to whatever the cap (when gossip names
/// them): links to peers that hold little must not crowd out every source of the rest.
pub(crate) const COMPLETE_LINKS: usize = 2;

/// Wait before dialing an address again after a failure or a closed link.
pub(crate) const REDIAL_AFTER: Duration = Duration::from_secs(1);

/// What we know about an address we may dial.
#[derive(Debug, Default)]
pub(crate) struct AddrState {
    pub(crate) dialing: bool,
    pub(crate) conn: Option<super::ConnId>,
    pub(crate) retry_at: Option<Instant>,
    /// Dials in a row that failed or led nowhere; the wait before the next one doubles.
    pub(crate) failures: u32,
    /// Never dial again (it is us, or banned).
    pub(crate) never: bool,
    /// Named by the ticket or `--peer`: dialed whatever the cap.
    pub(crate) pinned: bool,
}

impl AddrState {
    /// Schedules the next dial after one more failure: 1 s, 2 s, 4 s, ... up to a minute.
    pub(crate) fn back_off(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let wait = REDIAL_AFTER * 2u32.saturating_pow(self.failures.min(6) - 1);
        self.retry_at = Some(Instant::now() + wait.min(Duration::from_secs(60)));
    }

    /// Whether it may be dialed now: not us or banned, not linked or being dialed, and not
    /// waiting to retry.
    fn dialable(&self, now: Instant) -> bool {
        !(self.never
            || self.dialing
            || self.conn.is_some()
            || self.retry_at.is_some_and(|t| t > now))
    }
}

/// The addresses to dial now, given the artifact's known `addrs`, gossip's `sources`, and
/// the number of links it has open (`linked`, dialed or accepted).
///
/// Pinned addresses are always dialed, unless gossip says to leave them to another fetcher
/// of our zone (`avoid`), and so are gossip's complete holders until [`COMPLETE_LINKS`] of
/// them are linked or being dialed. Then gossip's `dial` list, best first, and then any
/// other known address gossip does not tell us to avoid, while links open plus dials in
/// progress stay below [`MAX_DIALED_LINKS`].
pub(crate) fn to_dial(
    addrs: &BTreeMap<SocketAddr, AddrState>,
    sources: &Sources,
    linked: usize,
    now: Instant,
) -> Vec<SocketAddr> {
    let dialing = addrs.values().filter(|s| s.dialing).count();
    let dialable = |a: &SocketAddr| {
        !sources.avoid.contains(a) && addrs.get(a).is_some_and(|s| s.dialable(now))
    };
    let mut out: Vec<SocketAddr> = addrs
        .iter()
        .filter(|(a, s)| s.pinned && dialable(a))
        .map(|(&a, _)| a)
        .collect();
    let engaged = |a: &SocketAddr| {
        out.contains(a) || addrs.get(a).is_some_and(|s| s.dialing || s.conn.is_some())
    };
    let complete_linked = sources.complete.iter().filter(|a| engaged(a)).count();
    let wanted: Vec<SocketAddr> = sources
        .complete
        .iter()
        .filter(|a| !engaged(a) && dialable(a))
        .take(COMPLETE_LINKS.saturating_sub(complete_linked))
        .copied()
        .collect();
    out.extend(wanted);
    let mut budget = MAX_DIALED_LINKS.saturating_sub(linked + dialing + out.len());
    let others = addrs
        .keys()
        .filter(|a| !sources.dial.contains(a) && !sources.avoid.contains(a));
    for addr in sources.dial.iter().chain(others) {
        if budget == 0 {
            break;
        }
        if dialable(addr) && !out.contains(addr) {
            out.push(*addr);
            budget -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + n))
    }

    fn known(n: u16) -> BTreeMap<SocketAddr, AddrState> {
        (0..n).map(|i| (addr(i), AddrState::default())).collect()
    }

    fn sources(order: impl IntoIterator<Item = u16>) -> Sources {
        Sources {
            dial: order.into_iter().map(addr).collect(),
            ..Sources::default()
        }
    }

    #[test]
    fn a_large_swarm_is_dialed_up_to_the_cap_in_gossip_order() {
        let addrs = known(100);
        let order: Vec<u16> = (0..100).rev().collect();
        let dial = to_dial(&addrs, &sources(order.clone()), 0, Instant::now());
        assert_eq!(dial.len(), MAX_DIALED_LINKS);
        let expected: Vec<SocketAddr> =
            order[..MAX_DIALED_LINKS].iter().map(|&n| addr(n)).collect();
        assert_eq!(dial, expected);
    }

    #[test]
    fn open_links_and_dials_in_progress_count_against_the_cap() {
        let mut addrs = known(40);
        for n in 0..3 {
            addrs.get_mut(&addr(n)).expect("known").dialing = true;
        }
        let dial = to_dial(&addrs, &sources(0..40), 10, Instant::now());
        assert_eq!(dial.len(), MAX_DIALED_LINKS - 13);
        assert!(dial.iter().all(|a| *a >= addr(3)), "{dial:?}");
        let full = to_dial(&addrs, &sources(0..40), MAX_DIALED_LINKS, Instant::now());
        assert!(full.is_empty(), "{full:?}");
    }

    #[test]
    fn pinned_addresses_are_dialed_whatever_the_cap() {
        let mut addrs = known(30);
        addrs.get_mut(&addr(29)).expect("known").pinned = true;
        let dial = to_dial(&addrs, &sources(0..30), MAX_DIALED_LINKS, Instant::now());
        assert_eq!(dial, [addr(29)]);
        // With room, the pinned address comes first and takes a place.
        let dial = to_dial(&addrs, &sources(0..30), 0, Instant::now());
        assert_eq!(dial[0], addr(29));
        assert_eq!(dial.len(), MAX_DIALED_LINKS);
        assert_eq!(dial.iter().filter(|a| **a == addr(29)).count(), 1);
    }

    #[test]
    fn linked_waiting_avoided_and_never_addresses_are_skipped() {
        let now = Instant::now();
        let mut addrs = known(6);
        addrs.get_mut(&addr(0)).expect("known").never = true;
        addrs.get_mut(&addr(1)).expect("known").conn = Some(super::super::ConnId(9));
        addrs.get_mut(&addr(2)).expect("known").retry_at = Some(now + Duration::from_secs(5));
        let src = Sources {
            dial: vec![addr(0), addr(1), addr(2), addr(3)],
            avoid: vec![addr(4)],
            complete: Vec::new(),
        };
        // addr(5) is known but gossip no longer names it: dialed after gossip's sources.
        assert_eq!(to_dial(&addrs, &src, 1, now), [addr(3), addr(5)]);
    }

    #[test]
    fn a_pinned_address_gossip_leaves_to_another_fetcher_is_not_dialed() {
        let mut addrs = known(3);
        addrs.get_mut(&addr(0)).expect("known").pinned = true;
        let src = Sources {
            dial: vec![addr(1)],
            avoid: vec![addr(0)],
            complete: Vec::new(),
        };
        assert_eq!(to_dial(&addrs, &src, 0, Instant::now()), [addr(1), addr(2)]);
    }

    #[test]
    fn two_complete_holders_are_linked_whatever_the_cap() {
        let mut addrs = known(40);
        let mut src = sources(0..40);
        src.complete = vec![addr(30), addr(31), addr(32)];
        // At the cap with links to peers that hold little: the first two complete holders
        // are dialed anyway, and no more.
        let dial = to_dial(&addrs, &src, MAX_DIALED_LINKS, Instant::now());
        assert_eq!(dial, [addr(30), addr(31)]);
        // One of them linked already: one more.
        addrs.get_mut(&addr(30)).expect("known").conn = Some(super::super::ConnId(1));
        let dial = to_dial(&addrs, &src, MAX_DIALED_LINKS, Instant::now());
        assert_eq!(dial, [addr(31)]);
        // With room, they come first and count against the cap.
        let dial = to_dial(&addrs, &src, 1, Instant::now());
        assert_eq!(dial.len(), MAX_DIALED_LINKS - 1);
        assert_eq!(dial[0], addr(31));
    }
}
