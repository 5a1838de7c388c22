//! Peer exchange: which holders of an artifact to fetch it from, in which order.

use alloc::vec::Vec;
use core::time::Duration;

use super::PolicyConfig;
use crate::{ContentId, PeerId, membership::Membership};

/// A member that holds (some of) an artifact, as the fetcher knows it.
#[derive(Debug, Clone)]
pub struct Holder<'a, A, Z: ?Sized = str> {
    /// How the driver reaches it (a socket address, a simulated node).
    pub addr: A,
    /// Its identity.
    pub peer: PeerId,
    /// Its locality label.
    pub zone: &'a Z,
    /// Whether it holds the whole artifact.
    pub complete: bool,
    /// How loaded its uplink is, percent.
    pub load: u8,
}

/// Where to fetch an artifact from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources<A> {
    /// Holders to dial, best first.
    pub dial: Vec<A>,
    /// Holders in other zones not to dial yet: someone else in our zone fetches across.
    pub avoid: Vec<A>,
    /// The holders of `dial` that hold the whole artifact, in the same order.
    pub complete: Vec<A>,
    /// The holders of `dial` in other zones, in the same order (only for a crossing fetcher).
    pub across: Vec<A>,
}

impl<A> Default for Sources<A> {
    fn default() -> Self {
        Self {
            dial: Vec::new(),
            avoid: Vec::new(),
            complete: Vec::new(),
            across: Vec::new(),
        }
    }
}

/// Loads (percent) within one band count as equal when ordering sources, so fetchers do not
/// all pick the one holder that last reported the least load.
pub const LOAD_BAND: u8 = 25;

/// Chooses sources of artifact `id` for fetcher `me` in zone `zone`, fetching for
/// `fetching_for` so far.
///
/// Complete holders come first, then the less loaded, and each fetcher orders equals its own
/// way ([`rank`]). If one of our zone holds the whole artifact, nothing is fetched from other
/// zones. Otherwise one fetcher per
/// [`PolicyConfig::fetchers_per_crossing`] of the zone (at least one) fetches across: those
/// whose `BLAKE3(peer id ‖ artifact id)` is smallest among the zone's fetchers, after
/// [`PolicyConfig::zone_grace`] to learn who they are, or at once for those that are smallest
/// among all the zone's members (`zone_members`, fetching or not: known long before a fetch
/// starts, so a flash crowd's crossing fetchers need not wait); the others fetch from them
/// and each other, so an artifact crosses into a zone about once per crossing fetcher. A crossing
/// fetcher's holders in other zones are also listed in `across`, which it links to whatever
/// the cap (see [`super::dial::to_dial`]).
pub fn choose<'a, A: Clone, Z: PartialEq + ?Sized + 'a>(
    cfg: &PolicyConfig,
    me: &PeerId,
    zone: &Z,
    id: &ContentId,
    holders: impl IntoIterator<Item = Holder<'a, A, Z>>,
    zone_members: impl IntoIterator<Item = PeerId>,
    fetching_for: Duration,
) -> Sources<A> {
    let holders: Vec<Holder<'a, A, Z>> = holders.into_iter().filter(|h| h.peer != *me).collect();
    let local_complete = holders.iter().any(|h| h.complete && h.zone == zone);
    let my_rank = rank(me.as_bytes(), id.as_bytes());
    let zone_fetchers = holders.iter().filter(|h| !h.complete && h.zone == zone);
    let ahead = zone_fetchers
        .clone()
        .filter(|h| rank(h.peer.as_bytes(), id.as_bytes()) < my_rank)
        .count();
    let crossing = ((zone_fetchers.count() + 1) / cfg.fetchers_per_crossing.max(1)).max(1);
    let members_ahead = zone_members
        .into_iter()
        .filter(|p| p != me && rank(p.as_bytes(), id.as_bytes()) < my_rank)
        .count();
    let designated =
        ahead < crossing && (fetching_for >= cfg.zone_grace || members_ahead < crossing);
    let mut out = Sources::default();
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for h in holders {
        let key = (
            !h.complete,
            h.load / LOAD_BAND,
            rank(me.as_bytes(), h.peer.as_bytes()),
        );
        if h.zone == zone {
            local.push((key, h.complete, h.addr));
        } else if !local_complete && designated {
            remote.push((key, h.complete, h.addr));
        } else {
            out.avoid.push(h.addr);
        }
    }
    local.sort_by_key(|d| d.0);
    remote.sort_by_key(|d| d.0);
    out.across = remote.iter().map(|(_, _, addr)| addr.clone()).collect();
    for (_, complete, addr) in local.into_iter().chain(remote) {
        if complete {
            out.complete.push(addr.clone());
        }
        out.dial.push(addr);
    }
    out
}

/// [`choose`] over what a [`Membership`] knows: each holder reached at its first advertised
/// address.
pub fn from_membership(
    cfg: &PolicyConfig,
    m: &Membership,
    id: &ContentId,
    fetching_for: Duration,
) -> Sources<alloc::string::String> {
    let holders = m.holders(id);
    let me = m.local_id();
    let zone = m.state().zone.as_str();
    let zone_members = m
        .members()
        .filter(|info| info.status.is_present() && info.state.zone == zone)
        .map(|info| info.id);
    choose(
        cfg,
        &me,
        zone,
        id,
        holders.iter().filter_map(|(info, h)| {
            Some(Holder {
                addr: info.state.addrs.first()?.clone(),
                peer: info.id,
                zone: info.state.zone.as_str(),
                complete: h.complete,
                load: info.state.load,
            })
        }),
        zone_members,
        fetching_for,
    )
}

/// `BLAKE3(a ‖ b)`: a fetcher's place in its zone's election for an artifact (`a` the
/// fetcher, `b` the artifact; smallest wins), or a holder's place in one fetcher's order of
/// sources (`a` the fetcher, `b` the holder), so that among equally good holders each
/// fetcher prefers different ones and capped dials spread over all of them.
pub fn rank(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(a);
    h.update(b);
    *h.finalize().as_bytes()
}
