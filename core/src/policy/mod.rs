//! Policy every driver shares: whom to fetch an artifact from ([`sources`]), which of them to
//! dial now ([`dial`]), who offers when two peers start a WebRTC connection at once
//! ([`offer_wins`]), when an origin sends each piece once ([`origin`]), and the swarm
//! settings of each kind of peer ([`presets`]). The node and
//! the simulator run this same code, so the simulator's scenarios judge the real policy.

pub mod dial;
pub mod origin;
pub mod presets;
pub mod sources;

use core::time::Duration;

use crate::PeerId;

/// The numbers the policy works with; [`PolicyConfig::default`] is what a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Links (open or being dialed) below which a download dials more sources: without a
    /// cap a swarm of N peers would open N² links.
    pub max_links: usize,
    /// Holders of the whole artifact a download links to whatever the cap.
    pub complete_links: usize,
    /// Holders in other zones a crossing fetcher links to whatever the cap.
    pub cross_links: usize,
    /// Fetchers in a zone for each one that fetches from other zones (at least one does).
    pub fetchers_per_crossing: usize,
    /// How long a new download waits to learn of other fetchers in its zone before it may
    /// fetch from another zone.
    pub zone_grace: Duration,
}

/// A node's [`PolicyConfig::max_links`]: the simulator's mixed-capacity scenario finished
/// its slowest peers sooner with 12 random neighbours than with 5, and more links only add
/// bookkeeping.
pub const MAX_LINKS: usize = 16;

/// A node's [`PolicyConfig::complete_links`]: links to peers that hold little must not crowd
/// out every source of the rest.
pub const COMPLETE_LINKS: usize = 2;

/// A node's [`PolicyConfig::cross_links`]: an origin that spreads first serves each piece
/// about once and refuses what a linked peer holds, so a crossing fetcher whose links are
/// all in its own zone (accepted ones fill its cap) would starve; the simulator's zones of
/// 100 stalled with only the origin across; 4 links took 2.26 T_min, 8 took 1.77 and 16
/// took 1.72 for half again as many copies across (3 zones of 100).
pub const CROSS_LINKS: usize = 8;

/// A node's [`PolicyConfig::fetchers_per_crossing`]: one crossing fetcher feeds its zone at
/// no more than its own upload rate, so a large zone needs several (the zones scenario: 4 per
/// 100 peers cut the slowest zone's time from 2.1 to 1.5 T_min for about a copy more per
/// zone).
pub const FETCHERS_PER_CROSSING: usize = 25;

/// A node's [`PolicyConfig::zone_grace`].
pub const ZONE_GRACE: Duration = Duration::from_secs(2);

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_links: MAX_LINKS,
            complete_links: COMPLETE_LINKS,
            cross_links: CROSS_LINKS,
            fetchers_per_crossing: FETCHERS_PER_CROSSING,
            zone_grace: ZONE_GRACE,
        }
    }
}

/// Of two peers that offered each other a WebRTC connection at once, whether our offer
/// stands (and theirs is ignored): the smaller peer id's does, unless our attempt already
/// opened its channel.
pub fn offer_wins(me: &PeerId, peer: &PeerId, ours_opened: bool) -> bool {
    me < peer || ours_opened
}
