//! Which known addresses an artifact's download dials, and when: the core's policy
//! ([`pollen_core::policy::dial`]) over socket addresses, with a node's settings.

use std::{collections::BTreeMap, net::SocketAddr};

use pollen_core::{
    Instant,
    policy::{PolicyConfig, sources::Sources},
};

pub(crate) use pollen_core::policy::dial::AddrState;

/// The addresses to dial now (see [`pollen_core::policy::dial::to_dial`]).
pub(crate) fn to_dial(
    addrs: &BTreeMap<SocketAddr, AddrState>,
    sources: &Sources<SocketAddr>,
    linked: usize,
    now: Instant,
) -> Vec<SocketAddr> {
    pollen_core::policy::dial::to_dial(&PolicyConfig::default(), addrs, sources, linked, now)
}
