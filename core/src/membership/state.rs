//! What a node says about itself, and the records gossip carries about each member.

use alloc::{string::String, vec::Vec};

use serde::{Deserialize, Serialize};

use crate::{ContentId, PeerId};

/// Most transport addresses a node advertises.
pub const MAX_ADDRS: usize = 4;
/// Longest advertised address, in bytes.
pub const MAX_ADDR_LEN: usize = 128;
/// Longest zone label, in bytes.
pub const MAX_ZONE_LEN: usize = 64;
/// Most artifacts a node advertises.
pub const MAX_HOLDINGS: usize = 64;
/// Furthest a record from a third party may move a member's version ahead of the one we know
/// (and furthest a node follows a claim of a newer version of itself).
///
/// A node raises its version by one per change, and gossip keeps every member within a few
/// versions of it, so honest news never jumps this far; a forged record that did could use up
/// the member's versions (at `u64::MAX` it could never refute again). With the bound, a forger
/// needs 2^48 records to exhaust one member's versions.
pub const MAX_VERSION_STEP: u64 = 1 << 16;

/// What kind of peer a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Role {
    /// A native node: reachable at its addresses, stores artifacts on disk.
    #[default]
    Seed,
    /// A browser: reachable only over links it opens itself.
    Browser,
}

/// One artifact a node holds or is fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The artifact.
    pub id: ContentId,
    /// Whether the node holds every piece (otherwise it holds some, and is fetching the rest).
    pub complete: bool,
}

/// A node's own key/value state, versioned as a whole by its owner.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeState {
    /// Where peers reach the node (`host:port` for native nodes), best first.
    pub addrs: Vec<String>,
    /// Locality label: peers in the same zone are preferred as sources.
    pub zone: String,
    /// Native seed or browser.
    pub role: Role,
    /// Upload capacity in bytes per second (0: unknown).
    pub upload_capacity: u64,
    /// Share of the upload capacity in use, in percent.
    pub load: u8,
    /// The artifacts the node holds or fetches.
    pub holdings: Vec<Holding>,
}

/// Why a [`NodeState`] cannot be gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// More than [`MAX_ADDRS`] addresses, or one longer than [`MAX_ADDR_LEN`].
    #[error("at most {MAX_ADDRS} addresses of at most {MAX_ADDR_LEN} bytes each")]
    Addrs,
    /// A zone label longer than [`MAX_ZONE_LEN`].
    #[error("the zone label is longer than {MAX_ZONE_LEN} bytes")]
    Zone,
    /// More than [`MAX_HOLDINGS`] artifacts.
    #[error("more than {MAX_HOLDINGS} artifacts")]
    Holdings,
    /// A load above 100%.
    #[error("load above 100%")]
    Load,
}

impl NodeState {
    /// Checks the bounds every gossiped state must respect.
    pub fn check(&self) -> Result<(), StateError> {
        if self.addrs.len() > MAX_ADDRS || self.addrs.iter().any(|a| a.len() > MAX_ADDR_LEN) {
            return Err(StateError::Addrs);
        }
        if self.zone.len() > MAX_ZONE_LEN {
            return Err(StateError::Zone);
        }
        if self.holdings.len() > MAX_HOLDINGS {
            return Err(StateError::Holdings);
        }
        if self.load > 100 {
            return Err(StateError::Load);
        }
        Ok(())
    }

    /// What the node says about artifact `id`, if anything.
    pub fn holding(&self, id: &ContentId) -> Option<Holding> {
        self.holdings.iter().copied().find(|h| h.id == *id)
    }
}

/// A member's liveness, as this node believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Answering probes, or not yet found silent.
    Alive,
    /// A probe went unanswered; dead unless it refutes in time.
    Suspect,
    /// Declared dead after a suspicion ran out.
    Dead,
    /// Left on purpose.
    Left,
}

impl Status {
    /// Whether the member counts as present (alive or suspect).
    pub fn is_present(self) -> bool {
        matches!(self, Status::Alive | Status::Suspect)
    }
}

/// One member's version, status and state: the unit gossip spreads.
///
/// Of two records about the same member, the one with the higher version wins; at equal versions
/// the graver status wins (alive < suspect < dead < left). Only the owner raises its version, so
/// a member refutes a suspicion by re-announcing itself with a higher one.
///
/// Without signatures anyone can forge a record, so a member applies these rules only within
/// limits (see `Membership`): no record changes a known member's addresses, one from a third
/// party moves its version at most [`MAX_VERSION_STEP`] ahead, and the member itself may
/// correct a version forged far beyond its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The member.
    pub id: PeerId,
    /// The owner's version (also its SWIM incarnation number).
    pub version: u64,
    /// Liveness.
    pub status: Status,
    /// Who suspected or declared the member dead (for alive and left records: the member).
    pub by: PeerId,
    /// The member's state at `version` (absent from dead and left records).
    pub state: Option<NodeState>,
}

impl Record {
    /// Whether this record supersedes one at `version` with `status`.
    pub fn supersedes(&self, version: u64, status: Status) -> bool {
        (self.version, self.status) > (version, status)
    }

    /// Checks bounds: an alive or suspect record carries a valid state.
    pub fn check(&self) -> bool {
        match (&self.state, self.status.is_present()) {
            (Some(state), _) => state.check().is_ok(),
            (None, present) => !present,
        }
    }
}
