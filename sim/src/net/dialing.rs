//! Linking a node as a Pollen node's dial policy would ([`pollen_core::policy`]), so the
//! scenarios judge the policy that ships. Gossip is taken as converged: every active node
//! is known as a holder with its zone, origins and finished peers as complete holders, and
//! origins as the ticket's pinned addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pollen_core::{
    endpoint::ConnId,
    policy::{
        PolicyConfig,
        dial::{AddrState, to_dial},
        sources::{Holder, choose},
    },
};

use super::{Net, NodeId, State};

/// How a network's nodes pick whom to link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialing {
    /// The policy's numbers.
    pub cfg: PolicyConfig,
    /// Whether zones count (otherwise every node is taken to be in one zone).
    pub zones: bool,
}

impl Net {
    /// Makes nodes that join later link by `dialing` (instead of to every origin and random
    /// nodes).
    pub fn set_dialing(&mut self, dialing: Dialing) {
        self.dialing = Some(dialing);
    }

    /// The nodes `node` has links to.
    pub fn linked_peers(&self, node: NodeId) -> Vec<NodeId> {
        self.nodes[node].links.values().map(|l| l.peer).collect()
    }

    /// Makes `node` run its dial policy again at `at` (as a node's dial tick does), once
    /// it has fetched for the zone grace.
    pub fn redial_at(&mut self, node: NodeId, at: pollen_core::Instant) {
        self.global.push(at, super::Ev::Redial { node });
    }

    /// A node's dial tick, if it is still fetching.
    pub(super) fn redial(&mut self, node: NodeId) {
        if let Some(dialing) = self.dialing
            && self.nodes[node].completed_at.is_none()
        {
            self.dial_by_policy(node, &dialing, dialing.cfg.zone_grace);
            self.drain(node);
        }
    }

    /// Links `node` to what the policy dials for it after fetching for `fetching_for`: the
    /// same choice a node makes on its dial tick.
    pub fn dial_by_policy(&mut self, node: NodeId, dialing: &Dialing, fetching_for: Duration) {
        let n = &self.nodes[node];
        if n.state != State::Active {
            return;
        }
        let me = n.ep.peer_id();
        let id = n.id;
        let zone_of = |q: NodeId| {
            if dialing.zones {
                self.shared.zones[q]
            } else {
                0
            }
        };
        let zone = zone_of(node);
        let zones: Vec<u16> = (0..self.nodes.len()).map(zone_of).collect();
        let holders = (0..self.nodes.len())
            .filter(|&q| q != node && self.nodes[q].state == State::Active)
            .map(|q| Holder {
                addr: q,
                peer: self.nodes[q].ep.peer_id(),
                zone: &zones[q],
                complete: self.nodes[q].origin || self.nodes[q].completed_at.is_some(),
                load: 0,
            });
        // Every active node is a member, fetching or holding.
        let zone_members = (0..self.nodes.len())
            .filter(|&q| self.nodes[q].state == State::Active && zones[q] == zone)
            .map(|q| self.nodes[q].ep.peer_id());
        let sources = choose(
            &dialing.cfg,
            &me,
            &zone,
            &id,
            holders,
            zone_members,
            fetching_for,
        );
        // Peers whose connection carries the swarm or is about to (as a node counts them),
        // and those whose connection is still opening: the sim dials for this swarm alone,
        // so a peer's connection to us is for it, though its channel has yet to arrive.
        let mut linked: BTreeSet<NodeId> =
            n.ep.swarm_conns(&id)
                .filter_map(|conn| n.links.get(super::link_of(conn)))
                .map(|l| l.peer)
                .collect();
        linked.extend(
            n.links
                .iter()
                .filter(|&(link, _)| n.ep.conn_peer(ConnId(link.0)).is_none())
                .map(|(_, l)| l.peer),
        );
        // The policy reaches at most this far down each list (it skips only linked ones), so
        // a run of thousands of peers need not hand it every holder.
        let reach = dialing.cfg.max_links
            + dialing.cfg.complete_links
            + dialing.cfg.cross_links
            + linked.len();
        let known = sources
            .dial
            .iter()
            .take(reach)
            .chain(sources.complete.iter().take(reach))
            .chain(sources.across.iter().take(reach))
            .chain(&linked)
            .copied()
            .chain((0..self.nodes.len()).filter(|&q| self.nodes[q].origin && q != node));
        let addrs: BTreeMap<NodeId, AddrState> = known
            .map(|q| {
                let state = AddrState {
                    // Which connection does not matter here, only that there is one.
                    conn: linked.contains(&q).then_some(ConnId(0)),
                    pinned: self.nodes[q].origin,
                    retry_at: n.retry_at.get(&q).copied(),
                    ..AddrState::default()
                };
                (q, state)
            })
            .collect();
        let picked = to_dial(&dialing.cfg, &addrs, &sources, linked.len(), self.now);
        for q in picked {
            self.connect(node, q);
        }
    }
}
