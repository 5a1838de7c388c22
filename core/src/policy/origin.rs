//! Whether an origin sends each piece about once ([`crate::swarm::SwarmConfig::spread_first`])
//! whatever its link count: when its uplink is the scarce resource. Distribution time is at
//! least `max(F / u_s, N·F / (u_s + Σ u_i))` (and the downlinks' `F / d`): when the first term
//! binds, every copy the origin sends twice costs time; when the second binds, the origin's
//! spare uplink speeds the swarm up, so it serves freely until it has many links.

use crate::swarm::SPREAD_FIRST_MIN_LINKS;

/// The [`crate::swarm::SwarmConfig::spread_first_min_links`] for an origin of upload
/// capacity `own` whose fetchers upload at `peers` (bytes per second; 0: unknown): 0 (spread
/// first at once) when the origin's term of the bound binds, that is when the fetchers'
/// uploads add up to at least `(N - 1)` times its own; otherwise, or when any capacity is
/// unknown, [`SPREAD_FIRST_MIN_LINKS`].
pub fn spread_first_min_links(own: Option<u64>, peers: &[u64]) -> usize {
    let Some(own) = own.filter(|&c| c > 0) else {
        return SPREAD_FIRST_MIN_LINKS;
    };
    if peers.is_empty() || peers.contains(&0) {
        return SPREAD_FIRST_MIN_LINKS;
    }
    let n = peers.len() as u128;
    let sum: u128 = peers.iter().map(|&c| u128::from(c)).sum();
    if sum >= (n - 1) * u128::from(own) {
        0
    } else {
        SPREAD_FIRST_MIN_LINKS
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn an_origin_no_faster_than_its_fetchers_spreads_first_at_once() {
        // Data-centre NICs: everyone at 1 Gbit/s.
        assert_eq!(spread_first_min_links(Some(125), &[125; 8]), 0);
        // A fast origin and slow fetchers: their uploads add up to less than 7 of its own.
        assert_eq!(
            spread_first_min_links(Some(100), &[12; 8]),
            SPREAD_FIRST_MIN_LINKS
        );
        // Unknown capacities: the link count decides, as before.
        assert_eq!(
            spread_first_min_links(None, &[125; 8]),
            SPREAD_FIRST_MIN_LINKS
        );
        assert_eq!(
            spread_first_min_links(Some(125), &[0, 0]),
            SPREAD_FIRST_MIN_LINKS
        );
        // One fetcher of a hundred says its capacity: not enough to judge by.
        let mut peers = vec![0; 99];
        peers.push(1000);
        assert_eq!(
            spread_first_min_links(Some(125), &peers),
            SPREAD_FIRST_MIN_LINKS
        );
        // One fetcher: nobody else to pass pieces on, spreading refuses nothing anyway.
        assert_eq!(spread_first_min_links(Some(125), &[10]), 0);
    }
}
