//! A simulated cluster of membership nodes: the real [`Membership`] state machines exchanging
//! packets with latency, jitter and loss, in simulated time.
//!
//! Packets are datagrams: each is delivered after the base latency plus a random jitter, or
//! dropped with the loss probability. A killed node stops answering without a word. Every
//! packet sent and every byte is counted per node, so rounds, messages and bytes can be
//! measured against N.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashSet},
    time::Duration,
};

use pollen_core::{
    ContentId, Instant, PeerId,
    membership::{Holding, MemberEvent, Membership, MembershipConfig, NodeState, Role, Status},
};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Index of a node.
pub type NodeId = usize;

/// Something due at a time.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A node's timer.
    Timer(NodeId),
    /// A packet arrives at `to`.
    Deliver {
        to: NodeId,
        from: NodeId,
        payload: Vec<u8>,
    },
}

/// One simulated node.
struct Node {
    m: Membership,
    up: bool,
    timer: Option<Instant>,
    /// Live members this node ever declared dead (false declarations, if they were live).
    died: Vec<PeerId>,
    /// Nodes it sent a packet to.
    sent_to: HashSet<NodeId>,
}

/// A simulated cluster.
pub struct Cluster {
    nodes: Vec<Node>,
    ids: Vec<PeerId>,
    queue: BinaryHeap<Reverse<(Instant, u64, Ev)>>,
    seq: u64,
    now: Instant,
    rng: Xoshiro256PlusPlus,
    cfg: MembershipConfig,
    latency: Duration,
    jitter: Duration,
    loss: f64,
    seed: u64,
    dropped: u64,
}

/// The address a simulated node advertises.
fn addr_of(node: NodeId) -> String {
    format!("n{node}")
}

fn node_of(addr: &str) -> Option<NodeId> {
    addr.strip_prefix('n')?.parse().ok()
}

impl Cluster {
    /// An empty cluster: packets take `latency` plus up to `latency / 2` of jitter.
    pub fn new(seed: u64, cfg: MembershipConfig, latency: Duration) -> Self {
        Self {
            nodes: Vec::new(),
            ids: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: Instant::ZERO,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            cfg,
            latency,
            jitter: latency / 2,
            loss: 0.0,
            seed,
            dropped: 0,
        }
    }

    /// Drops each packet with probability `loss`.
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss;
    }

    /// Adds a node in `zone`, alone until it joins.
    pub fn add_node(&mut self, zone: &str) -> NodeId {
        let cfg = self.cfg.clone();
        self.add_node_with(zone, cfg)
    }

    /// Adds a browser in `zone`: no address of its own (it is reached only over the links it
    /// opens), and an active view of `active` members.
    pub fn add_browser(&mut self, zone: &str, active: usize) -> NodeId {
        let mut cfg = self.cfg.clone();
        cfg.active_view = Some(active);
        let state = NodeState {
            zone: zone.to_string(),
            role: Role::Browser,
            ..NodeState::default()
        };
        self.add_node_state(state, cfg)
    }

    /// Adds a node in `zone` with its own configuration.
    pub fn add_node_with(&mut self, zone: &str, cfg: MembershipConfig) -> NodeId {
        let n = self.nodes.len();
        let state = NodeState {
            addrs: vec![addr_of(n)],
            zone: zone.to_string(),
            ..NodeState::default()
        };
        self.add_node_state(state, cfg)
    }

    fn add_node_state(&mut self, state: NodeState, cfg: MembershipConfig) -> NodeId {
        let n = self.nodes.len();
        let mut bytes = [0u8; 32];
        let mut rng =
            Xoshiro256PlusPlus::seed_from_u64(self.seed ^ (n as u64).wrapping_mul(0x9e37));
        rng.fill_bytes(&mut bytes);
        let id = PeerId::from_bytes(bytes);
        let m = Membership::new(cfg, id, state, self.now, self.rng.next_u64())
            .expect("a simulated node's state is within bounds");
        self.nodes.push(Node {
            m,
            up: true,
            timer: None,
            died: Vec::new(),
            sent_to: HashSet::new(),
        });
        self.ids.push(id);
        self.drive(n);
        n
    }

    /// Node `node` joins through `via`.
    pub fn join(&mut self, node: NodeId, via: NodeId) {
        let now = self.now;
        self.nodes[node].m.join(now, vec![addr_of(via)]);
        self.drive(node);
    }

    /// Tells every node about every other directly, as if the cluster had long converged.
    pub fn bootstrap_full(&mut self) {
        let records: Vec<_> = self.nodes.iter().map(|n| n.m.own_record()).collect();
        let now = self.now;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            for (j, r) in records.iter().enumerate() {
                if i != j {
                    node.m.insert_record(now, r.clone());
                }
            }
            while node.m.poll_event().is_some() {}
        }
    }

    /// Tells every node about node `hub` and `k` random others: a partial view, for clusters
    /// too large to simulate with full membership.
    pub fn bootstrap_partial(&mut self, hub: NodeId, k: usize) {
        let records: Vec<_> = self.nodes.iter().map(|n| n.m.own_record()).collect();
        let now = self.now;
        let n = self.nodes.len();
        for i in 0..n {
            let mut chosen = vec![hub];
            while chosen.len() < (k + 1).min(n - 1) {
                let j = (self.rng.next_u64() % n as u64) as usize;
                if j != i && !chosen.contains(&j) {
                    chosen.push(j);
                }
            }
            let node = &mut self.nodes[i];
            for j in chosen {
                if j != i {
                    node.m.insert_record(now, records[j].clone());
                }
            }
            while node.m.poll_event().is_some() {}
        }
    }

    /// Stops a node without a word.
    pub fn kill(&mut self, node: NodeId) {
        self.nodes[node].up = false;
    }

    /// Node `node` leaves gracefully.
    pub fn leave(&mut self, node: NodeId) {
        let now = self.now;
        self.nodes[node].m.leave(now);
        self.drive(node);
    }

    /// Node `node` starts holding artifact `id`: a new fact to spread. Returns its new version.
    pub fn announce_holding(&mut self, node: NodeId, id: ContentId) -> u64 {
        let mut state = self.nodes[node].m.state().clone();
        state.holdings.push(Holding { id, complete: true });
        self.nodes[node]
            .m
            .set_state(state)
            .expect("one holding is within bounds");
        self.drive(node);
        self.nodes[node].m.version()
    }

    /// Runs until `until` (simulated).
    pub fn run_until(&mut self, until: Instant) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, ev))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            match ev {
                Ev::Timer(n) => {
                    if !self.nodes[n].up || self.nodes[n].timer != Some(at) {
                        continue;
                    }
                    self.nodes[n].timer = None;
                    self.nodes[n].m.handle_timeout(at);
                    self.drive(n);
                }
                Ev::Deliver { to, from, payload } => {
                    if !self.nodes[to].up {
                        continue;
                    }
                    let from = addr_of(from);
                    // Packets from real state machines always decode.
                    let _ = self.nodes[to].m.handle_packet(at, &from, &payload);
                    self.drive(to);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` more simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs in steps of `step` until `done` holds or `limit` passes; returns when it held.
    pub fn run_until_with(
        &mut self,
        step: Duration,
        limit: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Option<Instant> {
        let end = self.now + limit;
        loop {
            if done(self) {
                return Some(self.now);
            }
            if self.now >= end {
                return None;
            }
            self.run_for(step);
        }
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Drains a node's outputs: packets into flight, its next timer into the queue.
    fn drive(&mut self, n: NodeId) {
        while let Some(t) = self.nodes[n].m.poll_transmit() {
            let Some(to) = node_of(&t.addr) else { continue };
            if to >= self.nodes.len() {
                continue;
            }
            self.nodes[n].sent_to.insert(to);
            if self.loss > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < self.loss {
                self.dropped += 1;
                continue;
            }
            let jitter_us = self.jitter.as_micros() as u64;
            let extra = if jitter_us == 0 {
                0
            } else {
                self.rng.next_u64() % jitter_us
            };
            let at = self.now + self.latency + Duration::from_micros(extra);
            self.push(
                at,
                Ev::Deliver {
                    to,
                    from: n,
                    payload: t.payload,
                },
            );
        }
        while let Some(e) = self.nodes[n].m.poll_event() {
            if let MemberEvent::Died(id) = e {
                self.nodes[n].died.push(id);
            }
        }
        if let Some(at) = self.nodes[n].m.poll_timeout() {
            let at = at.max(self.now);
            if self.nodes[n].timer != Some(at) {
                self.nodes[n].timer = Some(at);
                self.push(at, Ev::Timer(n));
            }
        }
    }

    /// Nodes in the cluster (live or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A node's identity.
    pub fn id(&self, node: NodeId) -> PeerId {
        self.ids[node]
    }

    /// Whether a node is running.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes[node].up
    }

    /// A node's membership state machine.
    pub fn membership(&self, node: NodeId) -> &Membership {
        &self.nodes[node].m
    }

    /// Nodes that `node` has sent packets to.
    pub fn contacted_by(&self, node: NodeId) -> &HashSet<NodeId> {
        &self.nodes[node].sent_to
    }

    /// Packets dropped by loss.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether every live node sees every other live node alive, and no dead one present.
    pub fn converged(&self) -> bool {
        let live: HashSet<PeerId> = (0..self.len())
            .filter(|n| self.nodes[*n].up)
            .map(|n| self.ids[n])
            .collect();
        self.nodes.iter().filter(|n| n.up).all(|n| {
            n.m.present_count() == live.len() - 1
                && n.m
                    .members()
                    .filter(|m| m.status.is_present())
                    .all(|m| live.contains(&m.id))
        })
    }

    /// Live nodes that know `owner` at `version` or later.
    pub fn reached(&self, owner: NodeId, version: u64) -> usize {
        let id = self.ids[owner];
        (0..self.len())
            .filter(|n| self.nodes[*n].up && *n != owner)
            .filter(|n| {
                self.nodes[*n]
                    .m
                    .member(&id)
                    .is_some_and(|m| m.version >= version)
            })
            .count()
    }

    /// Live nodes other than `owner`.
    pub fn live_others(&self, owner: NodeId) -> usize {
        (0..self.len())
            .filter(|n| self.nodes[*n].up && *n != owner)
            .count()
    }

    /// Whether every live node has declared node `dead` dead (or forgotten it).
    pub fn declared_dead_by_all(&self, dead: NodeId) -> bool {
        let id = self.ids[dead];
        self.nodes.iter().filter(|n| n.up).all(|n| {
            n.m.member(&id)
                .is_none_or(|m| matches!(m.status, Status::Dead | Status::Left))
        })
    }

    /// Declarations of death, by any live node, of a node that is in fact live.
    pub fn false_deaths(&self) -> usize {
        let live: HashSet<PeerId> = (0..self.len())
            .filter(|n| self.nodes[*n].up)
            .map(|n| self.ids[n])
            .collect();
        self.nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| n.died.iter().filter(|id| live.contains(id)).count())
            .sum()
    }

    /// Packets and bytes sent by live nodes so far.
    pub fn traffic(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| n.m.stats())
            .fold((0, 0), |(p, b), s| (p + s.packets_sent, b + s.bytes_sent))
    }
}
