//! A simulated network of swarm nodes: per-node upload and download capacity, link latency by
//! zone, loss, joins, departures and crashes, seeded randomness, and a trace of everything
//! that happened.
//!
//! Each node's uplink and downlink are shared fairly among its links ([`crate::fair`]): what a
//! node sends is cut into units (a block, or a run of small frames), and at every instant each
//! link with a unit to send gets an equal share of the node's upload rate; the receiver's
//! downlink shares its rate the same way among the links whose units arrived. Within a link,
//! units go in order. Every unit also takes the latency between the two nodes' zones. A unit is
//! store-and-forward: it reaches the downlink once all of it has left the uplink, so a round
//! trip is a little longer than on a real, pipelined network. A lossy link is capped at the
//! throughput TCP sustains at that loss and round trip (the Mathis formula); while a link
//! waits for its cap, the other links share the uplink.
//! Nothing here reads a clock: time advances from event to event, so a run is a pure function
//! of its inputs and seed.
//!
//! Every node runs a real [`Endpoint`] holding the artifact's swarm, as a Pollen node does: a
//! simulated link is one connection, opened with the endpoint's handshake, and the swarm's
//! frames travel inside its channel frames.
//!
//! Payloads are either real bytes (every piece hashed and checked, for the protocol tests) or
//! lengths only ([`Net::lengths_only`]): blocks travel as their header, the data is a shared
//! zero buffer, and a piece check passes unless its sender corrupts blocks. Every protocol
//! decision is still the real state machine's; only the bytes and the hashing are left out,
//! which is what lets thousands of nodes move gigabytes.

mod dialing;
mod frames;
mod part;

pub use dialing::Dialing;

use std::{collections::BTreeMap, time::Duration};

use crate::{fair::SharedLink, link_table::LinkTable, queue::EventQueue};
use bytes::Bytes;
use frames::Item;
use part::{Ctx, Part, Shared};
use pollen_core::{
    Bitfield, ContentId, Instant, Manifest, ManifestBuilder, PeerId, Ticket,
    endpoint::{ConnId, Endpoint, EndpointConfig},
    policy::presets,
    swarm::{LinkId, SPREAD_FIRST_MIN_LINKS, Swarm, SwarmConfig},
};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Index of a node in the network.
pub type NodeId = usize;

/// How a node behaves towards its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Follows the protocol.
    Honest,
    /// Flips a byte of every block it sends.
    CorruptBlocks,
    /// Never sends the blocks it is asked for (everything else it sends).
    WithholdBlocks,
    /// Never answers manifest requests (everything else it sends).
    WithholdManifest,
}

/// Capacities of a node, in bytes per second.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Upload rate.
    pub up: u64,
    /// Download rate.
    pub down: u64,
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not joined yet.
    Pending,
    /// Running.
    Active,
    /// Left gracefully: its peers saw its links close.
    Left,
    /// Stopped without a word: its peers find out by timeouts.
    Crashed,
}

/// Our end of a link (a connection of the node's endpoint; its [`LinkId`] is the
/// connection's number, see [`link_of`]).
#[derive(Debug, Clone, Copy)]
struct LinkEnd {
    peer: NodeId,
    peer_link: LinkId,
    /// When the last express unit sent on it is through our uplink ([`Net::queue_up`]).
    express_until: Instant,
    /// Units we sent on it; each carries its number.
    sent_units: u64,
    /// The number of the last unit delivered to us on it: links deliver in order.
    delivered_unit: u64,
}

/// One simulated node.
struct Node {
    /// Its endpoint, holding the artifact's swarm.
    ep: Endpoint,
    /// The artifact.
    id: ContentId,
    store: BTreeMap<u32, Bytes>,
    capacity: Capacity,
    state: State,
    /// Whether it started with the whole artifact.
    origin: bool,
    /// The uplink, carrying units to links.
    up: SharedLink<Unit>,
    /// The downlink, carrying units that arrived from links.
    down: SharedLink<Unit>,
    links: LinkTable<LinkEnd>,
    /// Peers its dial policy leaves alone until then (their links gave nothing).
    retry_at: BTreeMap<NodeId, Instant>,
    timer: Option<Instant>,
    completed_at: Option<Instant>,
    banned: Vec<PeerId>,
    bytes_sent: u64,
}

/// What a link carries through an uplink or downlink at once: a block, or a run of frames.
#[derive(Debug)]
struct Unit {
    items: Vec<Item>,
    /// Bytes on the wire.
    len: u64,
    /// Its number on its link, from 1 (set when it is queued).
    seq: u64,
    /// Bytes of later units appended to it ([`Net::append`]).
    appended: u64,
}

impl Unit {
    fn empty() -> Self {
        Self {
            items: Vec::new(),
            len: 0,
            seq: 0,
            appended: 0,
        }
    }

    /// Whether it carries a block.
    fn has_block(&self) -> bool {
        self.items.iter().any(Item::is_block)
    }
}

/// Units are cut once they hold this many bytes (a block always ends one).
const UNIT_BYTES: u64 = 16 * 1024;

/// Units of frames up to this many bytes may go express ([`Net::queue_up`]).
const EXPRESS_BYTES: u64 = 1024;

/// Something scheduled to happen.
#[derive(Debug)]
enum Ev {
    /// A node's uplink may finish a unit (if the uplink says the wake-up counts; shares
    /// change, so an event may come early and is then scheduled again).
    UpDone {
        node: NodeId,
    },
    /// A lossy link's cap lets its next unit go.
    Resume {
        node: NodeId,
        link: LinkId,
    },
    /// A unit reached a node's downlink; an express one goes straight through if its flow
    /// is idle there.
    Arrive {
        to: NodeId,
        link: LinkId,
        unit: Unit,
        express: bool,
    },
    /// A node's downlink may finish a unit (as `UpDone`).
    DownDone {
        node: NodeId,
    },
    Disconnected {
        node: NodeId,
        link: LinkId,
    },
    Timer {
        node: NodeId,
    },
    Join {
        node: NodeId,
        degree: usize,
    },
    Leave {
        node: NodeId,
    },
    Crash {
        node: NodeId,
    },
    /// A node's dial tick: it links to what the dial policy picks now.
    Redial {
        node: NodeId,
    },
}

impl Ev {
    /// The node it happens at.
    fn node(&self) -> NodeId {
        match *self {
            Ev::UpDone { node }
            | Ev::Resume { node, .. }
            | Ev::DownDone { node }
            | Ev::Disconnected { node, .. }
            | Ev::Timer { node }
            | Ev::Join { node, .. }
            | Ev::Redial { node }
            | Ev::Leave { node }
            | Ev::Crash { node } => node,
            Ev::Arrive { to, .. } => to,
        }
    }
}

/// How long after a crash its peers' TCP keepalive gives up on the links.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// A node's wait before dialing a ticket's address again after its link gave nothing (its
/// first back-off), and before its next dial tick.
const REDIAL_PINNED: Duration = Duration::from_secs(1);
/// A node's wait before dialing another holder again after its link gave nothing
/// (`REDIAL_UNPRODUCTIVE` in the node's actor).
const REDIAL_UNPRODUCTIVE: Duration = Duration::from_secs(60);
/// Maximum segment size used by the loss model, bytes.
const MSS: f64 = 1460.0;

/// The simulated network.
pub struct Net {
    now: Instant,
    /// Settings and per-node facts every partition reads.
    shared: Shared,
    nodes: Vec<Node>,
    /// The partitions (none before the first run): nodes below `split`, and the others.
    parts: Vec<Part>,
    split: NodeId,
    /// Threads that run the partitions.
    threads: usize,
    /// Joins, departures and crashes; ties go first-scheduled first.
    global: EventQueue<Ev>,
    /// The state of steps over all nodes, between windows (setup, joins, departures).
    steps: Part,
    rng: Xoshiro256PlusPlus,
    /// The manifest of a lengths-only artifact, once made.
    zero_manifest: Option<Manifest>,
    /// Pieces that reached storage without matching the truth (must stay empty).
    bad_stores: Vec<(NodeId, u32)>,
    /// Bytes sent between nodes of different zones.
    cross_zone_bytes: u64,
    /// Active nodes not complete yet, plus joins still to come.
    unfinished: usize,
    /// Whether origins added from now on refuse to resend what peers can spread
    /// ([`SwarmConfig::spread_first`]).
    spread_first: bool,
    /// The send window of nodes added from now on ([`SwarmConfig::send_window`]).
    send_window: Option<u64>,
    /// The upload rate per slot of nodes added from now on ([`SwarmConfig::slot_rate`]).
    slot_rate: Option<u64>,
    /// How joining nodes pick whom to link to (`None`: every origin and random nodes).
    dialing: Option<Dialing>,
}

/// The send window nodes use unless told otherwise: two blocks of the default size.
pub const DEFAULT_SEND_WINDOW: u64 = 256 * 1024;

/// The upload rate per slot nodes use unless told otherwise, bytes per second.
pub const DEFAULT_SLOT_RATE: u64 = 1_000_000;

impl Net {
    /// An empty network with one-way `latency` between any two nodes, moving real bytes.
    pub fn new(seed: u64, latency: Duration) -> Self {
        Self {
            now: Instant::ZERO,
            shared: Shared {
                latency,
                inter_zone_latency: latency,
                loss: 0.0,
                zones: Vec::new(),
                behaviors: Vec::new(),
                truth: None,
                zeros: None,
                origins: std::collections::BTreeSet::new(),
            },
            nodes: Vec::new(),
            parts: Vec::new(),
            split: 0,
            threads: 1,
            global: EventQueue::new(),
            steps: Part::new(Instant::ZERO),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            zero_manifest: None,
            bad_stores: Vec::new(),
            cross_zone_bytes: 0,
            unfinished: 0,
            spread_first: false,
            send_window: Some(DEFAULT_SEND_WINDOW),
            slot_rate: Some(DEFAULT_SLOT_RATE),
            dialing: None,
        }
    }

    /// Like [`Net::new`], but payloads are lengths: see the module docs. Seeds are added with
    /// [`Net::add_origin`].
    pub fn lengths_only(seed: u64, latency: Duration) -> Self {
        let mut net = Self::new(seed, latency);
        net.shared.zeros = Some(Bytes::new());
        net
    }

    /// Sets the one-way latency between nodes of different zones (by default the same as
    /// within a zone).
    pub fn set_inter_zone_latency(&mut self, latency: Duration) {
        self.shared.inter_zone_latency = latency;
    }

    /// Sets the packet loss rate of every link (0 to 1).
    pub fn set_loss(&mut self, loss: f64) {
        self.shared.loss = loss.clamp(0.0, 1.0);
    }

    /// Puts a node in a zone (all start in zone 0).
    pub fn set_zone(&mut self, node: NodeId, zone: u16) {
        self.shared.zones[node] = zone;
    }

    /// Adds a node that holds all of `data` (a seed); returns its id and the ticket.
    ///
    /// # Panics
    /// On a lengths-only network (use [`Net::add_origin`]).
    pub fn add_seed(
        &mut self,
        data: &[u8],
        capacity: Capacity,
        behavior: Behavior,
    ) -> (NodeId, Ticket) {
        assert!(
            self.shared.zeros.is_none(),
            "a lengths-only network takes add_origin"
        );
        let manifest = Manifest::of(data).expect("artifact within limits");
        let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid size");
        let truth = Bytes::copy_from_slice(data);
        let layout = *manifest.layout();
        let store = (0..layout.piece_count())
            .map(|p| {
                let r = layout.piece_range(p).expect("in range");
                (
                    p,
                    Bytes::copy_from_slice(&truth[r.start as usize..r.end as usize]),
                )
            })
            .collect();
        self.shared.truth = Some((truth, layout));
        let have = Bitfield::full(layout.piece_count());
        let cfg = self.config(capacity);
        let seed = self.rng.next_u64();
        let swarm = Swarm::with_manifest(cfg, manifest, have, self.now, seed);
        let id = self.push(swarm, store, capacity, behavior);
        self.nodes[id].origin = true;
        self.shared.origins.insert(id);
        (id, ticket)
    }

    /// Adds a node holding a whole artifact of `size` bytes on a lengths-only network; every
    /// origin holds the same artifact. Returns its id and the ticket.
    ///
    /// # Panics
    /// On a network of real bytes, or for a size beyond the protocol's limits.
    pub fn add_origin(
        &mut self,
        size: u64,
        capacity: Capacity,
        behavior: Behavior,
    ) -> (NodeId, Ticket) {
        assert!(
            self.shared.zeros.is_some(),
            "add_origin needs a lengths-only network"
        );
        let manifest = match &self.zero_manifest {
            Some(m) => {
                assert_eq!(
                    m.layout().size(),
                    size,
                    "every origin holds the same artifact"
                );
                m.clone()
            }
            None => {
                let m = zero_manifest(size);
                let piece = usize::try_from(m.layout().piece_size()).expect("at most 16 MiB");
                self.shared.zeros = Some(Bytes::from(vec![0u8; piece]));
                self.zero_manifest = Some(m.clone());
                m
            }
        };
        let ticket = Ticket::new(manifest.id(), size).expect("valid size");
        let have = Bitfield::full(manifest.layout().piece_count());
        let mut cfg = self.config(capacity);
        cfg.spread_first = self.spread_first;
        cfg.spread_first_min_links = SPREAD_FIRST_MIN_LINKS;
        let seed = self.rng.next_u64();
        let swarm = Swarm::with_manifest(cfg, manifest, have, self.now, seed);
        let id = self.push(swarm, BTreeMap::new(), capacity, behavior);
        self.nodes[id].origin = true;
        self.shared.origins.insert(id);
        (id, ticket)
    }

    /// Sets the send window of the nodes added from now on (`None`: everything a swarm
    /// sends is queued on its uplink at once).
    pub fn set_send_window(&mut self, window: Option<u64>) {
        self.send_window = window;
    }

    /// Sets the upload rate per slot of the nodes added from now on (`None`: every node
    /// uses all its upload slots).
    pub fn set_slot_rate(&mut self, rate: Option<u64>) {
        self.slot_rate = rate;
    }

    /// Sets every spreading origin's policy from the capacities, as a node does from what
    /// gossip says of its fetchers ([`pollen_core::policy::origin`]).
    pub fn apply_origin_policy(&mut self) {
        let peers: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| !n.origin)
            .map(|n| n.capacity.up)
            .collect();
        for n in self.nodes.iter_mut().filter(|n| n.origin) {
            let links =
                pollen_core::policy::origin::spread_first_min_links(Some(n.capacity.up), &peers);
            let id = n.id;
            if let Some(s) = n.ep.swarm_mut(&id)
                && s.config().spread_first
            {
                s.set_spread_first_min_links(links);
            }
        }
    }

    /// Makes the origins added from now on refuse to send a piece again while a linked peer
    /// holds it, when they have at least [`SPREAD_FIRST_MIN_LINKS`] links, as a node's seeds
    /// do ([`SwarmConfig::spread_first`]).
    pub fn set_spread_first(&mut self, on: bool) {
        self.spread_first = on;
    }

    /// Adds a node that starts with nothing and fetches `ticket`.
    pub fn add_peer(&mut self, ticket: &Ticket, capacity: Capacity, behavior: Behavior) -> NodeId {
        let cfg = self.config(capacity);
        let seed = self.rng.next_u64();
        let swarm = Swarm::new(cfg, ticket, self.now, seed);
        self.push(swarm, BTreeMap::new(), capacity, behavior)
    }

    /// Makes `node` (just added, with no links) join at `at` instead of now: it then links to
    /// every origin and to `degree` random active nodes.
    ///
    /// # Panics
    /// If the node has links, or was already made to join later, leave or crash.
    pub fn join_later(&mut self, node: NodeId, at: Instant, degree: usize) {
        let n = &mut self.nodes[node];
        assert!(n.links.is_empty(), "a node joins before it has links");
        assert_eq!(n.state, State::Active, "a node joins later once");
        if n.completed_at.is_none() {
            self.unfinished -= 1;
        }
        n.state = State::Pending;
        // Its timer was set when it was added; it is set again when it joins.
        n.timer = None;
        // Counted until it joins.
        self.unfinished += 1;
        self.global.push(at, Ev::Join { node, degree });
    }

    /// Makes `node` leave at `at`, closing its links.
    pub fn leave_at(&mut self, node: NodeId, at: Instant) {
        self.global.push(at, Ev::Leave { node });
    }

    /// Makes `node` crash at `at`: it stops without closing anything.
    pub fn crash_at(&mut self, node: NodeId, at: Instant) {
        self.global.push(at, Ev::Crash { node });
    }

    /// A node's swarm configuration: a fresh identity, the network's settings, and its
    /// upload capacity (as a node's configured upload limit).
    fn config(&mut self, capacity: Capacity) -> SwarmConfig {
        let mut id = [0u8; 32];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let mut cfg = presets::native(PeerId::from_bytes(id), None, Some(capacity.up), false);
        cfg.send_window = self.send_window;
        cfg.slot_rate = self.slot_rate;
        cfg
    }

    fn push(
        &mut self,
        swarm: Swarm,
        store: BTreeMap<u32, Bytes>,
        capacity: Capacity,
        behavior: Behavior,
    ) -> NodeId {
        let completed_at = swarm.is_complete().then_some(self.now);
        if completed_at.is_none() {
            self.unfinished += 1;
        }
        self.shared.zones.push(0);
        self.shared.behaviors.push(behavior);
        let id = swarm.id();
        let mut ep = Endpoint::new(EndpointConfig {
            report_sent: true,
            ..EndpointConfig::new(swarm.peer_id())
        });
        ep.add_swarm(self.now, swarm);
        self.nodes.push(Node {
            ep,
            id,
            store,
            capacity,
            state: State::Active,
            origin: false,
            up: SharedLink::new(capacity.up, self.now),
            down: SharedLink::new(capacity.down, self.now),
            links: LinkTable::default(),
            retry_at: BTreeMap::new(),
            timer: None,
            completed_at,
            banned: Vec::new(),
            bytes_sent: 0,
        });
        let id = self.nodes.len() - 1;
        self.drain(id);
        id
    }

    /// Links the swarms of two nodes: `a` dials `b` and opens the swarm on the connection
    /// (or on the one it has to `b` already).
    pub fn connect(&mut self, a: NodeId, b: NodeId) {
        let now = self.now;
        let id = self.nodes[a].id;
        if let Some(conn) = self.conn_to(a, b) {
            self.nodes[a].ep.open_swarm(now, conn, id);
            self.drain(a);
            self.flush_outbox();
            return;
        }
        let ca = self.nodes[a].ep.connect(now, true);
        let cb = self.nodes[b].ep.connect(now, false);
        let (la, lb) = (link_of(ca), link_of(cb));
        self.nodes[a].links.insert(
            la,
            LinkEnd {
                peer: b,
                peer_link: lb,
                express_until: now,
                sent_units: 0,
                delivered_unit: 0,
            },
        );
        self.nodes[b].links.insert(
            lb,
            LinkEnd {
                peer: a,
                peer_link: la,
                express_until: now,
                sent_units: 0,
                delivered_unit: 0,
            },
        );
        self.nodes[a].ep.open_swarm(now, ca, id);
        self.drain(a);
        self.drain(b);
        self.flush_outbox();
    }

    /// Connects every active node to `degree` distinct random other active nodes (and never
    /// to itself).
    pub fn connect_random(&mut self, degree: usize) {
        for a in 0..self.nodes.len() {
            if self.nodes[a].state == State::Active {
                self.link_randomly(a, degree);
            }
        }
    }

    /// Links `a` to random active nodes until it has `degree` links (or tries enough).
    fn link_randomly(&mut self, a: NodeId, degree: usize) {
        let n = self.nodes.len();
        let active = self
            .nodes
            .iter()
            .filter(|x| x.state == State::Active)
            .count();
        let want = degree.min(active.saturating_sub(1));
        let mut tries = 0;
        while self.nodes[a].links.len() < want && tries < 10 * n + 100 {
            tries += 1;
            let b = (self.rng.next_u64() % n as u64) as usize;
            if b != a
                && self.nodes[b].state == State::Active
                && !self.nodes[a].links.values().any(|l| l.peer == b)
            {
                self.connect(a, b);
            }
        }
    }

    /// The connection `a` has to `b`, if any.
    fn conn_to(&self, a: NodeId, b: NodeId) -> Option<ConnId> {
        self.nodes[a]
            .links
            .iter()
            .find(|(_, end)| end.peer == b)
            .map(|(link, _)| ConnId(link.0))
    }

    /// Runs until every active node is complete (and every join has happened), no event is
    /// left, or the clock reaches `limit` from the start; it can be called again with a later
    /// limit to go on.
    ///
    /// The nodes are split in two partitions that run apart, on two threads if
    /// [`Net::set_threads`] allows, for windows as long as the least latency: no event of one
    /// node can reach another sooner. Joins, departures and crashes happen between windows.
    /// The results are the same whatever the number of threads. With two partitions, a run
    /// may go on up to a window past the last completion; with one it stops there.
    pub fn run(&mut self, limit: Duration) {
        // Far enough for any run, and `end` plus a microsecond stays representable.
        let end = Instant::ZERO + limit.min(Duration::from_secs(1 << 40));
        self.start_partitions();
        // At least an instant: with a latency below the clock's microsecond, partitions go
        // one instant at a time, and what one sends the other at that instant waits for the
        // next window (at the same instant).
        let window = self.window().max(Duration::from_micros(1));
        while self.unfinished > 0 {
            let next_local = self
                .parts
                .iter_mut()
                .filter_map(|p| p.queue.peek_time())
                .min();
            let next_global = self.global.peek_time();
            let Some(first) = next_local.into_iter().chain(next_global).min() else {
                break;
            };
            if first > end {
                break;
            }
            if next_global == Some(first) {
                let Some((at, ev)) = self.global.pop() else {
                    break;
                };
                self.now = at;
                match ev {
                    Ev::Join { node, degree } => self.join(node, degree),
                    Ev::Leave { node } => self.stop(node, State::Left),
                    Ev::Crash { node } => self.stop(node, State::Crashed),
                    Ev::Redial { node } => self.redial(node),
                    _ => unreachable!("only joins, departures and crashes are global"),
                }
                self.flush_outbox();
                continue;
            }
            // Events strictly before `until`: up to `end`, the next global event, and (with
            // two partitions) the window's end.
            let mut until = end + Duration::from_micros(1);
            if let Some(g) = next_global {
                until = until.min(g);
            }
            if self.parts.len() > 1 {
                until = until.min(first + window);
            }
            self.run_window(first, until);
        }
    }

    /// Sets how many threads run the partitions (1 or 2; more are not used).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// The least latency, in whole microseconds (the clock's resolution).
    fn window(&self) -> Duration {
        let least = self.shared.latency.min(self.shared.inter_zone_latency);
        Duration::from_micros(u64::try_from(least.as_micros()).unwrap_or(u64::MAX))
    }

    /// Splits the nodes in partitions at the first run (later nodes join the last one), and
    /// hands them the events scheduled so far.
    fn start_partitions(&mut self) {
        if self.parts.is_empty() {
            let two = self.nodes.len() >= 2 && !self.window().is_zero();
            self.split = if two { self.balanced_split() } else { 0 };
            let count = if two { 2 } else { 1 };
            self.parts = (0..count).map(|_| Part::new(self.now)).collect();
        }
        self.flush_outbox();
    }

    /// Where to split the nodes so that each partition has about half the work, taken as a
    /// node's links plus one (an origin linked to every peer handles a frame from each of
    /// them for every piece; in a run of 3,000 peers of degree 5 it was a tenth of the work).
    fn balanced_split(&self) -> NodeId {
        let weight = |n: &Node| n.links.len() + 1;
        let total: usize = self.nodes.iter().map(weight).sum();
        let mut low = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            low += weight(n);
            if 2 * low >= total {
                // At least one node on each side.
                return (i + 1).clamp(1, self.nodes.len() - 1);
            }
        }
        self.nodes.len() / 2
    }

    /// The partition of a node.
    fn part_of(&self, node: NodeId) -> usize {
        usize::from(self.parts.len() > 1 && node >= self.split)
    }

    /// Moves every event scheduled by the steps over all nodes to its node's partition.
    fn flush_outbox(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        for (at, ev) in std::mem::take(&mut self.steps.outbox) {
            let part = self.part_of(ev.node());
            self.parts[part].queue.push(at, ev);
        }
    }

    /// Runs every partition's events before `until`, then delivers what they sent each other
    /// and collects their results.
    fn run_window(&mut self, first: Instant, until: Instant) {
        let shared = &self.shared;
        let unfinished = self.unfinished;
        let (low, high) = self.nodes.split_at_mut(self.split);
        match self.parts.as_mut_slice() {
            // Alone, it stops right after the last completion, as one queue would.
            [only] => Self::ctx(high, self.split, only, shared).run_until(until, unfinished),
            [a, b] if self.threads > 1 => std::thread::scope(|s| {
                s.spawn(|| Self::ctx(low, 0, a, shared).run_until(until, usize::MAX));
                Self::ctx(high, self.split, b, shared).run_until(until, usize::MAX);
            }),
            [a, b] => {
                Self::ctx(low, 0, a, shared).run_until(until, usize::MAX);
                Self::ctx(high, self.split, b, shared).run_until(until, usize::MAX);
            }
            _ => unreachable!("one or two partitions"),
        }
        for i in 0..self.parts.len() {
            let part = &mut self.parts[i];
            self.now = self.now.max(part.now);
            self.cross_zone_bytes += std::mem::take(&mut part.cross_zone_bytes);
            self.bad_stores.append(&mut part.bad_stores);
            self.unfinished -= std::mem::take(&mut part.completed);
            for (at, node) in std::mem::take(&mut part.redials) {
                self.global.push(at, Ev::Redial { node });
            }
            for (at, ev) in std::mem::take(&mut part.outbox) {
                // Not due before the window's end (or, one instant at a time, its start).
                debug_assert!(
                    at >= until || (self.window().is_zero() && at >= first),
                    "an event reached another partition within a window"
                );
                let to = self.part_of(ev.node());
                self.parts[to].queue.push(at, ev);
            }
        }
    }

    fn ctx<'a>(
        nodes: &'a mut [Node],
        base: NodeId,
        part: &'a mut Part,
        shared: &'a Shared,
    ) -> Ctx<'a> {
        Ctx {
            nodes,
            base,
            part,
            shared,
            outbox_only: false,
        }
    }

    /// A context over every node for steps between windows (joins, departures, crashes,
    /// setup): what it schedules waits in its outbox for [`Net::flush_outbox`].
    fn steps(&mut self) -> Ctx<'_> {
        self.steps.now = self.now;
        Ctx {
            nodes: &mut self.nodes,
            base: 0,
            part: &mut self.steps,
            shared: &self.shared,
            outbox_only: true,
        }
    }

    /// Carries out what a node's swarm asks for, between windows.
    fn drain(&mut self, node: NodeId) {
        self.steps().drain(node);
        self.collect_steps();
    }

    /// Takes the results of steps between windows (completions, stores, bytes).
    fn collect_steps(&mut self) {
        self.cross_zone_bytes += std::mem::take(&mut self.steps.cross_zone_bytes);
        self.bad_stores.append(&mut self.steps.bad_stores);
        self.unfinished -= std::mem::take(&mut self.steps.completed);
        for (at, node) in std::mem::take(&mut self.steps.redials) {
            self.global.push(at, Ev::Redial { node });
        }
    }

    /// Whether every active node is complete and every join has happened.
    pub fn is_finished(&self) -> bool {
        self.unfinished == 0
    }

    /// Whether no event is left to happen.
    pub fn is_idle(&self) -> bool {
        self.global.is_empty()
            && self.steps.outbox.is_empty()
            && self.parts.iter().all(|p| p.queue.is_empty())
    }

    fn join(&mut self, node: NodeId, degree: usize) {
        if self.nodes[node].state != State::Pending {
            return;
        }
        self.nodes[node].state = State::Active;
        if self.nodes[node].completed_at.is_some() {
            self.unfinished -= 1;
        }
        if let Some(dialing) = self.dialing {
            // A late joiner has had time to learn its zone's fetchers.
            self.dial_by_policy(node, &dialing, dialing.cfg.zone_grace);
            self.drain(node);
            return;
        }
        let origins: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&o| self.nodes[o].origin && self.nodes[o].state == State::Active)
            .collect();
        for o in origins {
            if o != node {
                self.connect(node, o);
            }
        }
        let want = self.nodes[node].links.len() + degree;
        self.link_randomly(node, want);
        self.drain(node);
    }

    /// Takes a node out of the run: gracefully (its peers see its links close after the
    /// latency) or by a crash (its peers' keepalive notices much later).
    fn stop(&mut self, node: NodeId, how: State) {
        match self.nodes[node].state {
            State::Active => {}
            State::Pending => {
                // Gone before it joined: its join never happens.
                self.nodes[node].state = how;
                self.unfinished -= 1;
                return;
            }
            State::Left | State::Crashed => return,
        }
        if self.steps().stop(node, how) {
            self.unfinished -= 1;
        }
    }

    // ----- results -----

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// When a node completed, if it did (origins at the start).
    pub fn completed_at(&self, node: NodeId) -> Option<Instant> {
        self.nodes[node].completed_at
    }

    /// Whether a node started with the whole artifact.
    pub fn is_origin(&self, node: NodeId) -> bool {
        self.nodes[node].origin
    }

    /// Whether a node is still running (joined, and neither left nor crashed).
    pub fn is_active(&self, node: NodeId) -> bool {
        self.nodes[node].state == State::Active
    }

    /// When a node's swarm next wants `handle_timeout`, if a timer is set for it.
    pub fn timer(&self, node: NodeId) -> Option<Instant> {
        self.nodes[node].timer
    }

    /// A node's zone.
    pub fn zone(&self, node: NodeId) -> u16 {
        self.shared.zones[node]
    }

    /// A node's capacities.
    pub fn capacity(&self, node: NodeId) -> Capacity {
        self.nodes[node].capacity
    }

    /// How long a node's uplink was busy sending.
    pub fn upload_busy(&self, node: NodeId) -> Duration {
        self.nodes[node].up.busy_time(self.now)
    }

    /// A node's swarm.
    pub fn swarm(&self, node: NodeId) -> &Swarm {
        let n = &self.nodes[node];
        n.ep.swarm(&n.id).expect("a node's swarm stays")
    }

    /// A node's stored artifact, if it holds every piece (real payloads only).
    pub fn assembled(&self, node: NodeId) -> Option<Vec<u8>> {
        let n = &self.nodes[node];
        if !self.swarm(node).is_complete() || self.shared.zeros.is_some() {
            return None;
        }
        Some(n.store.values().flat_map(|p| p.iter().copied()).collect())
    }

    /// Peers a node banned.
    pub fn banned_by(&self, node: NodeId) -> &[PeerId] {
        &self.nodes[node].banned
    }

    /// A node's peer id.
    pub fn peer_id(&self, node: NodeId) -> PeerId {
        self.nodes[node].ep.peer_id()
    }

    /// Bytes a node put on the wire.
    pub fn bytes_sent(&self, node: NodeId) -> u64 {
        self.nodes[node].bytes_sent
    }

    /// Bytes sent between nodes of different zones.
    pub fn cross_zone_bytes(&self) -> u64 {
        self.cross_zone_bytes
    }

    /// Pieces that reached some node's storage without matching the artifact.
    pub fn bad_stores(&self) -> &[(NodeId, u32)] {
        &self.bad_stores
    }

    /// A digest of every event of the run, with its time and node, and how many there were.
    pub fn trace_digest(&self) -> (String, u64) {
        let mut all = blake3::Hasher::new();
        let mut len = 0;
        for part in std::iter::once(&self.steps).chain(&self.parts) {
            all.update(part.trace.finalize().as_bytes());
            len += part.trace_len;
        }
        (all.finalize().to_hex().to_string(), len)
    }

    /// The current simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }
}

/// The manifest of `size` zero bytes, hashed in pieces of a reused buffer.
fn zero_manifest(size: u64) -> Manifest {
    let mut builder = ManifestBuilder::new(size).expect("artifact within limits");
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        builder.update(&chunk[..n]).expect("exactly size bytes");
        left -= n as u64;
    }
    builder.finish().expect("complete")
}

fn transfer_time(len: u64, rate: u64) -> Duration {
    Duration::from_micros(len.saturating_mul(1_000_000) / rate.max(1))
}

/// The simulator's id of a node's link that is connection `conn` of its endpoint.
fn link_of(conn: ConnId) -> LinkId {
    LinkId(conn.0)
}
