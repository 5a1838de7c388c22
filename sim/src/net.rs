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
//! Payloads are either real bytes (every piece hashed and checked, for the protocol tests) or
//! lengths only ([`Net::lengths_only`]): blocks travel as their header, the data is a shared
//! zero buffer, and a piece check passes unless its sender corrupts blocks. Every protocol
//! decision is still the real state machine's; only the bytes and the hashing are left out,
//! which is what lets thousands of nodes move gigabytes.

use std::{collections::BTreeMap, time::Duration};

use crate::{fair::SharedLink, link_table::LinkTable, queue::EventQueue};
use bytes::Bytes;
use pollen_core::{
    Bitfield, Instant, Manifest, ManifestBuilder, PeerId, Ticket,
    swarm::{Action, Event, LinkId, SPREAD_FIRST_MIN_LINKS, Swarm, SwarmConfig},
    wire::{self, Kind, LEN_PREFIX},
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

/// Our end of a link.
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
    swarm: Swarm,
    store: BTreeMap<u32, Bytes>,
    capacity: Capacity,
    behavior: Behavior,
    zone: u16,
    state: State,
    /// Whether it started with the whole artifact.
    origin: bool,
    /// The uplink, carrying units to links.
    up: SharedLink<Unit>,
    /// The downlink, carrying units that arrived from links.
    down: SharedLink<Unit>,
    links: LinkTable<LinkEnd>,
    next_link: u64,
    timer: Option<Instant>,
    completed_at: Option<Instant>,
    banned: Vec<PeerId>,
    bytes_sent: u64,
}

/// What one transmission carries, frame by frame.
#[derive(Debug)]
enum Item {
    /// A whole frame body.
    Frame(Bytes),
    /// A block whose data is not carried (lengths-only payloads); `header` is its frame's
    /// bytes before the data.
    Block {
        piece: u32,
        offset: u32,
        len: u32,
        header: u32,
    },
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
    /// Whether it carries a block.
    fn has_block(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Block { .. }))
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
}

/// How long after a crash its peers' TCP keepalive gives up on the links.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Maximum segment size used by the loss model, bytes.
const MSS: f64 = 1460.0;

/// The simulated network.
pub struct Net {
    now: Instant,
    latency: Duration,
    inter_zone_latency: Duration,
    /// Packet loss rate on every link, 0 for none.
    loss: f64,
    nodes: Vec<Node>,
    /// Scheduled events; ties go first-scheduled first.
    queue: EventQueue<Ev>,
    rng: Xoshiro256PlusPlus,
    trace: blake3::Hasher,
    trace_len: u64,
    /// The artifact's true bytes, when real payloads are simulated.
    truth: Option<Bytes>,
    /// Lengths-only payloads: the zero bytes every block and piece is sliced from.
    zeros: Option<Bytes>,
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
            latency,
            inter_zone_latency: latency,
            loss: 0.0,
            nodes: Vec::new(),
            queue: EventQueue::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            trace: blake3::Hasher::new(),
            trace_len: 0,
            truth: None,
            zeros: None,
            zero_manifest: None,
            bad_stores: Vec::new(),
            cross_zone_bytes: 0,
            unfinished: 0,
            spread_first: false,
            send_window: Some(DEFAULT_SEND_WINDOW),
            slot_rate: Some(DEFAULT_SLOT_RATE),
        }
    }

    /// Like [`Net::new`], but payloads are lengths: see the module docs. Seeds are added with
    /// [`Net::add_origin`].
    pub fn lengths_only(seed: u64, latency: Duration) -> Self {
        Self {
            zeros: Some(Bytes::new()),
            ..Self::new(seed, latency)
        }
    }

    /// Sets the one-way latency between nodes of different zones (by default the same as
    /// within a zone).
    pub fn set_inter_zone_latency(&mut self, latency: Duration) {
        self.inter_zone_latency = latency;
    }

    /// Sets the packet loss rate of every link (0 to 1).
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss.clamp(0.0, 1.0);
    }

    /// Puts a node in a zone (all start in zone 0).
    pub fn set_zone(&mut self, node: NodeId, zone: u16) {
        self.nodes[node].zone = zone;
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
            self.zeros.is_none(),
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
        self.truth = Some(truth);
        let have = Bitfield::full(layout.piece_count());
        let cfg = self.config(capacity);
        let seed = self.rng.next_u64();
        let swarm = Swarm::with_manifest(cfg, manifest, have, self.now, seed);
        let id = self.push(swarm, store, capacity, behavior);
        self.nodes[id].origin = true;
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
            self.zeros.is_some(),
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
                self.zeros = Some(Bytes::from(vec![0u8; piece]));
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
        self.schedule(at, Ev::Join { node, degree });
    }

    /// Makes `node` leave at `at`, closing its links.
    pub fn leave_at(&mut self, node: NodeId, at: Instant) {
        self.schedule(at, Ev::Leave { node });
    }

    /// Makes `node` crash at `at`: it stops without closing anything.
    pub fn crash_at(&mut self, node: NodeId, at: Instant) {
        self.schedule(at, Ev::Crash { node });
    }

    /// A node's swarm configuration: a fresh identity, the network's settings, and its
    /// upload capacity (as a node's configured upload limit).
    fn config(&mut self, capacity: Capacity) -> SwarmConfig {
        let mut id = [0u8; 32];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let mut cfg = SwarmConfig::new(PeerId::from_bytes(id));
        cfg.send_window = self.send_window;
        cfg.slot_rate = self.slot_rate;
        cfg.upload_capacity = Some(capacity.up);
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
        self.nodes.push(Node {
            swarm,
            store,
            capacity,
            behavior,
            zone: 0,
            state: State::Active,
            origin: false,
            up: SharedLink::new(capacity.up, self.now),
            down: SharedLink::new(capacity.down, self.now),
            links: LinkTable::default(),
            next_link: 0,
            timer: None,
            completed_at,
            banned: Vec::new(),
            bytes_sent: 0,
        });
        let id = self.nodes.len() - 1;
        self.drain(id);
        id
    }

    /// Opens a link between two nodes.
    pub fn connect(&mut self, a: NodeId, b: NodeId) {
        let la = self.new_link(a);
        let lb = self.new_link(b);
        let now = self.now;
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
        self.nodes[a].swarm.handle_connected(now, la);
        self.nodes[b].swarm.handle_connected(now, lb);
        self.drain(a);
        self.drain(b);
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

    fn new_link(&mut self, node: NodeId) -> LinkId {
        let n = &mut self.nodes[node];
        n.next_link += 1;
        LinkId(n.next_link)
    }

    /// Runs until every active node is complete (and every join has happened), no event is
    /// left, or the clock reaches `limit` from the start; it can be called again with a later
    /// limit to go on.
    pub fn run(&mut self, limit: Duration) {
        let end = Instant::ZERO + limit;
        while self.unfinished > 0 {
            if self.queue.peek_time().is_none_or(|at| at > end) {
                break;
            }
            let Some((at, ev)) = self.queue.pop() else {
                break;
            };
            self.now = at;
            match ev {
                Ev::UpDone { node } => {
                    if self.nodes[node].up.woken(at) {
                        if self.nodes[node].up.next_done().is_some_and(|t| t <= at) {
                            self.sent(node);
                        }
                        self.schedule_up(node);
                    }
                }
                Ev::Resume { node, link } => {
                    if self.nodes[node].state == State::Active {
                        self.nodes[node].up.resume(at, link);
                        self.schedule_up(node);
                    }
                }
                Ev::Arrive {
                    to,
                    link,
                    unit,
                    express,
                } => self.arrive(to, link, unit, express),
                Ev::DownDone { node } => {
                    if self.nodes[node].down.woken(at) {
                        if self.nodes[node].down.next_done().is_some_and(|t| t <= at) {
                            self.received(node);
                        }
                        self.schedule_down(node);
                    }
                }
                Ev::Disconnected { node, link } => {
                    if self.nodes[node].state == State::Active
                        && self.nodes[node].links.remove(link).is_some()
                    {
                        self.nodes[node].up.remove(at, link);
                        self.nodes[node].down.remove(at, link);
                        self.schedule_up(node);
                        self.schedule_down(node);
                        self.nodes[node].swarm.handle_disconnected(at, link);
                        self.drain(node);
                    }
                }
                Ev::Timer { node } => {
                    if self.nodes[node].state == State::Active && self.nodes[node].timer == Some(at)
                    {
                        self.nodes[node].timer = None;
                        self.nodes[node].swarm.handle_timeout(at);
                        self.drain(node);
                    }
                }
                Ev::Join { node, degree } => self.join(node, degree),
                Ev::Leave { node } => self.stop(node, State::Left),
                Ev::Crash { node } => self.stop(node, State::Crashed),
            }
        }
    }

    /// Whether every active node is complete and every join has happened.
    pub fn is_finished(&self) -> bool {
        self.unfinished == 0
    }

    /// Whether no event is left to happen.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    fn join(&mut self, node: NodeId, degree: usize) {
        if self.nodes[node].state != State::Pending {
            return;
        }
        self.nodes[node].state = State::Active;
        if self.nodes[node].completed_at.is_some() {
            self.unfinished -= 1;
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
        let n = &mut self.nodes[node];
        match n.state {
            State::Active => {}
            State::Pending => {
                // Gone before it joined: its join never happens.
                n.state = how;
                self.unfinished -= 1;
                return;
            }
            State::Left | State::Crashed => return,
        }
        n.state = how;
        n.timer = None;
        // Pending UpDone and DownDone events no longer count.
        n.up.clear(self.now);
        n.down.clear(self.now);
        if n.completed_at.is_none() {
            self.unfinished -= 1;
        }
        let links = std::mem::take(&mut self.nodes[node].links);
        for end in links.values() {
            let at = match how {
                State::Left => self.now + self.latency_between(node, end.peer),
                _ => self.now + KEEPALIVE_TIMEOUT,
            };
            self.schedule(
                at,
                Ev::Disconnected {
                    node: end.peer,
                    link: end.peer_link,
                },
            );
        }
    }

    fn deliver(&mut self, to: NodeId, link: LinkId, unit: Unit) {
        if self.nodes[to].state != State::Active {
            return;
        }
        let Some(end) = self.nodes[to].links.get_mut(link) else {
            return;
        };
        assert!(
            unit.seq > end.delivered_unit,
            "unit {} delivered after unit {} on one link",
            unit.seq,
            end.delivered_unit
        );
        end.delivered_unit = unit.seq;
        let items = unit.items;
        for item in items {
            match item {
                Item::Frame(body) => self.nodes[to].swarm.handle_frame(self.now, link, body),
                Item::Block {
                    piece, offset, len, ..
                } => {
                    let data = self.zero_bytes(len as usize);
                    self.nodes[to]
                        .swarm
                        .handle_block(self.now, link, piece, offset, data);
                }
            }
        }
        self.drain(to);
    }

    /// `len` zero bytes, shared (lengths-only payloads).
    fn zero_bytes(&self, len: usize) -> Bytes {
        let zeros = self.zeros.as_ref().expect("lengths-only payloads");
        zeros.slice(..len.min(zeros.len()))
    }

    /// Carries out everything a node's swarm asks for after an input.
    fn drain(&mut self, id: NodeId) {
        if self.nodes[id].state != State::Active {
            return;
        }
        loop {
            let mut progressed = false;
            while let Some((link, segments)) = self.nodes[id].swarm.poll_transmit() {
                progressed = true;
                let handed: u64 = segments.iter().map(|b| b.len() as u64).sum();
                let items = self.items(id, segments);
                // What a misbehaving node leaves out counts as sent, or its window would
                // never drain.
                let kept: u64 = items.iter().map(wire_len_of).sum();
                if handed > kept {
                    self.nodes[id].swarm.handle_sent(link, handed - kept);
                }
                self.transmit(id, link, items);
            }
            while let Some(action) = self.nodes[id].swarm.poll_action() {
                progressed = true;
                self.act(id, action);
            }
            while let Some(event) = self.nodes[id].swarm.poll_event() {
                progressed = true;
                self.record(id, &event);
            }
            if !progressed {
                break;
            }
        }
        if let Some(at) = self.nodes[id].swarm.poll_timeout() {
            let at = at.max(self.now);
            if self.nodes[id].timer.is_none_or(|t| at < t) {
                self.nodes[id].timer = Some(at);
                self.schedule(at, Ev::Timer { node: id });
            }
        }
    }

    /// The frames a node sends, after its behavior had its way with them, and their length
    /// on the wire.
    fn items(&self, id: NodeId, segments: Vec<Bytes>) -> Vec<Item> {
        let behavior = self.nodes[id].behavior;
        if self.zeros.is_some() {
            let items = split_items(&segments)
                .into_iter()
                .filter(|item| match (behavior, item) {
                    (Behavior::WithholdBlocks, Item::Block { .. }) => false,
                    (Behavior::WithholdManifest, Item::Frame(body)) => {
                        body.get(1) != Some(&(Kind::ManifestPart as u8))
                    }
                    _ => true,
                })
                .collect::<Vec<_>>();
            return items;
        }
        let mut bytes: Vec<u8> = segments.concat();
        match behavior {
            Behavior::Honest => {}
            Behavior::CorruptBlocks => corrupt_blocks(&mut bytes),
            Behavior::WithholdBlocks => bytes = without_kind(&bytes, Kind::Block),
            Behavior::WithholdManifest => bytes = without_kind(&bytes, Kind::ManifestPart),
        }
        let bytes = Bytes::from(bytes);
        let mut items = Vec::new();
        let mut at = 0;
        while let Ok(Some((body, used))) = wire::split_frame(&bytes[at..]) {
            items.push(Item::Frame(bytes.slice_ref(body)));
            at += used;
        }
        items
    }

    fn act(&mut self, id: NodeId, action: Action) {
        match action {
            Action::ReadPiece { piece } => {
                let data = match &self.zeros {
                    Some(_) => self.nodes[id]
                        .swarm
                        .manifest()
                        .and_then(|m| m.layout().piece_len(piece))
                        .map(|len| self.zero_bytes(len as usize)),
                    None => self.nodes[id].store.get(&piece).cloned(),
                };
                self.nodes[id]
                    .swarm
                    .handle_piece_read(self.now, piece, data);
            }
            Action::StorePiece { piece, data } => {
                if self.zeros.is_none() {
                    let data = data.to_bytes();
                    if !self.matches_truth(piece, &data) {
                        self.bad_stores.push((id, piece));
                    }
                    self.nodes[id].store.insert(piece, data);
                }
                self.nodes[id]
                    .swarm
                    .handle_piece_stored(self.now, piece, true);
            }
            Action::CheckPiece(check) => {
                let checked = if self.zeros.is_some() {
                    // The data is not there to hash: a piece is good unless its sender
                    // corrupts blocks (each piece comes from one link).
                    let sender = self.nodes[id].links.get(check.link()).map(|l| l.peer);
                    let corrupt =
                        sender.is_some_and(|s| self.nodes[s].behavior == Behavior::CorruptBlocks);
                    check.simulated(!corrupt)
                } else {
                    check.run()
                };
                self.nodes[id].swarm.handle_piece_checked(self.now, checked);
            }
            Action::StoreManifest(_) => {}
            Action::Disconnect { link, .. } => {
                if let Some(end) = self.nodes[id].links.remove(link) {
                    self.nodes[id].up.remove(self.now, link);
                    self.nodes[id].down.remove(self.now, link);
                    self.schedule_up(id);
                    self.schedule_down(id);
                    let at = self.now + self.latency_between(id, end.peer);
                    self.schedule(
                        at,
                        Ev::Disconnected {
                            node: end.peer,
                            link: end.peer_link,
                        },
                    );
                }
            }
        }
    }

    fn matches_truth(&self, piece: u32, data: &[u8]) -> bool {
        let Some(truth) = &self.truth else {
            return true;
        };
        let Some(range) = self
            .nodes
            .iter()
            .find_map(|n| n.swarm.manifest())
            .and_then(|m| m.layout().piece_range(piece))
        else {
            return false;
        };
        truth.get(range.start as usize..range.end as usize) == Some(data)
    }

    fn record(&mut self, id: NodeId, event: &Event) {
        let line = format!("{} {id} {event:?}\n", self.now.as_micros());
        self.trace.update(line.as_bytes());
        self.trace_len += 1;
        match event {
            Event::Complete if self.nodes[id].completed_at.is_none() => {
                self.nodes[id].completed_at = Some(self.now);
                self.unfinished -= 1;
            }
            Event::PeerBanned { peer, .. } => self.nodes[id].banned.push(*peer),
            _ => {}
        }
    }

    fn latency_between(&self, a: NodeId, b: NodeId) -> Duration {
        if self.nodes[a].zone == self.nodes[b].zone {
            self.latency
        } else {
            self.inter_zone_latency
        }
    }

    /// Queues what a node sends on a link at its uplink, cut into units.
    fn transmit(&mut self, from: NodeId, link: LinkId, items: Vec<Item>) {
        if !self.nodes[from].links.contains(link) {
            return;
        }
        let mut unit = Unit {
            items: Vec::new(),
            len: 0,
            seq: 0,
            appended: 0,
        };
        for item in items {
            let block = matches!(item, Item::Block { .. });
            unit.len += wire_len_of(&item);
            unit.items.push(item);
            if block || unit.len >= UNIT_BYTES {
                let full = std::mem::replace(
                    &mut unit,
                    Unit {
                        items: Vec::new(),
                        len: 0,
                        seq: 0,
                        appended: 0,
                    },
                );
                self.queue_up(from, link, full, block);
            }
        }
        if !unit.items.is_empty() {
            self.queue_up(from, link, unit, false);
        }
        self.schedule_up(from);
    }

    /// Puts a unit on the sender's uplink, or sends it express: a unit of a few small frames
    /// (requests, haves) on a flow with nothing queued takes its bytes' time at the whole
    /// uplink rate plus the latency, without waiting for a share of either link. At a fair
    /// share it would take microseconds more, against milliseconds of latency, and its bytes
    /// would slow the other flows by a fraction of a percent; skipping the shared links'
    /// events for it makes runs with many links faster. Order within the flow is kept: a
    /// unit goes express only behind nothing, and on arrival waits behind anything its flow
    /// still has on the downlink.
    fn queue_up(&mut self, from: NodeId, link: LinkId, mut unit: Unit, block: bool) {
        let now = self.now;
        let node = &mut self.nodes[from];
        let Some(end) = node.links.get_mut(link) else {
            return;
        };
        if !block && Self::append(&mut node.up, now, link, &mut unit) {
            return;
        }
        end.sent_units += 1;
        unit.seq = end.sent_units;
        if block || unit.len > EXPRESS_BYTES || !node.up.is_idle(link) {
            node.up.push(now, link, unit.len, unit);
            return;
        }
        // After the flow's previous express unit, so units arrive in the order sent.
        let through = end.express_until.max(now) + transfer_time(unit.len, node.capacity.up);
        end.express_until = through;
        let end = *end;
        let to = end.peer;
        let len = unit.len;
        self.nodes[from].bytes_sent += len;
        self.nodes[from].swarm.handle_sent(link, len);
        if self.nodes[from].zone != self.nodes[to].zone {
            self.cross_zone_bytes += len;
        }
        if self.nodes[to].state == State::Crashed {
            return;
        }
        let at = through + self.latency_between(from, to);
        self.schedule(
            at,
            Ev::Arrive {
                to,
                link: end.peer_link,
                unit,
                express: true,
            },
        );
    }

    /// Adds a unit of a few small frames (haves, requests) to the last unit its flow has
    /// queued or in service on `shared`, as a stream carries them right behind it; saves the
    /// three events of a unit of its own. At most [`EXPRESS_BYTES`] are appended to a unit,
    /// so what it carries is delayed by little. Returns whether it was appended (`unit` is
    /// then emptied).
    fn append(shared: &mut SharedLink<Unit>, now: Instant, link: LinkId, unit: &mut Unit) -> bool {
        let len = unit.len;
        if len > EXPRESS_BYTES {
            return false;
        }
        let Some(last) = shared.append(now, link, len, |u| u.appended + len <= EXPRESS_BYTES)
        else {
            return false;
        };
        last.len += len;
        last.appended += len;
        last.items.append(&mut unit.items);
        true
    }

    /// Makes sure an `UpDone` event comes no later than the uplink's next finish.
    fn schedule_up(&mut self, node: NodeId) {
        if let Some(at) = self.nodes[node].up.wake() {
            self.schedule(at, Ev::UpDone { node });
        }
    }

    /// Makes sure a `DownDone` event comes no later than the downlink's next finish.
    fn schedule_down(&mut self, node: NodeId) {
        if let Some(at) = self.nodes[node].down.wake() {
            self.schedule(at, Ev::DownDone { node });
        }
    }

    /// A unit left the sender's uplink: it reaches the peer's downlink after the link's loss
    /// cap (if any) and the latency.
    fn sent(&mut self, from: NodeId) {
        let now = self.now;
        let Some(done) = self.nodes[from].up.complete(now) else {
            return;
        };
        let link = done.flow;
        let Some(&end) = self.nodes[from].links.get(link) else {
            // Closed links' units are dropped when they close.
            self.schedule_up(from);
            return;
        };
        let to = end.peer;
        let len = done.len;
        self.nodes[from].bytes_sent += len;
        self.nodes[from].swarm.handle_sent(link, len);
        self.drain(from);
        if self.nodes[from].zone != self.nodes[to].zone {
            self.cross_zone_bytes += len;
        }
        let latency = self.latency_between(from, to);
        let mut through = now;
        if self.loss > 0.0 {
            let rtt = 2.0 * latency.as_secs_f64().max(1e-4);
            let cap = (1.22 * MSS / (rtt * self.loss.sqrt())) as u64;
            through = through.max(done.started + transfer_time(len, cap));
        }
        if through > now {
            self.schedule(through, Ev::Resume { node: from, link });
        } else {
            self.nodes[from].up.resume(now, link);
        }
        self.schedule_up(from);
        if self.nodes[to].state == State::Crashed {
            // Nobody reads; the bytes still left the sender.
            return;
        }
        // Not ahead of an express unit sent before it on this link.
        self.schedule(
            through.max(end.express_until) + latency,
            Ev::Arrive {
                to,
                link: end.peer_link,
                unit: done.unit,
                express: false,
            },
        );
    }

    /// A unit reached the receiver's downlink: it shares the downlink with the others, or
    /// (express, on a flow idle there) is delivered at once.
    fn arrive(&mut self, to: NodeId, link: LinkId, mut unit: Unit, express: bool) {
        if self.nodes[to].state != State::Active || !self.nodes[to].links.contains(link) {
            return;
        }
        let now = self.now;
        if express && self.nodes[to].down.is_idle(link) {
            self.deliver(to, link, unit);
            return;
        }
        let down = &mut self.nodes[to].down;
        if unit.has_block() || !Self::append(down, now, link, &mut unit) {
            down.push(now, link, unit.len, unit);
        }
        self.schedule_down(to);
    }

    /// A unit went through the receiver's downlink: deliver it.
    fn received(&mut self, to: NodeId) {
        let now = self.now;
        let Some(done) = self.nodes[to].down.complete(now) else {
            return;
        };
        self.nodes[to].down.resume(now, done.flow);
        self.schedule_down(to);
        self.deliver(to, done.flow, done.unit);
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.queue.push(at, ev);
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
        self.nodes[node].zone
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
        &self.nodes[node].swarm
    }

    /// A node's stored artifact, if it holds every piece (real payloads only).
    pub fn assembled(&self, node: NodeId) -> Option<Vec<u8>> {
        let n = &self.nodes[node];
        if !n.swarm.is_complete() || self.zeros.is_some() {
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
        self.nodes[node].swarm.peer_id()
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
        (self.trace.finalize().to_hex().to_string(), self.trace_len)
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

/// Splits what a swarm transmits into frames, with each block's data left out.
///
/// The outbox writes whole frames into its buffer segments; a block's data follows its header
/// as a segment of its own.
fn split_items(segments: &[Bytes]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let seg = &segments[i];
        let mut at = 0;
        i += 1;
        while at < seg.len() {
            match wire::split_frame(&seg[at..]) {
                Ok(Some((body, used))) => {
                    items.push(Item::Frame(seg.slice_ref(body)));
                    at += used;
                }
                Ok(None) => {
                    // A block header whose data is the next segment.
                    let header = wire::decode_block_header(&seg[at + LEN_PREFIX..])
                        .expect("only block data is sent apart from its frame");
                    // Its data follows in one segment or more (parts of a cached piece).
                    let mut data = 0;
                    while data < header.block.len as usize {
                        data += segments.get(i).map(Bytes::len).expect("the block's data");
                        i += 1;
                    }
                    assert_eq!(data, header.block.len as usize, "block data segments");
                    items.push(Item::Block {
                        piece: header.block.piece,
                        offset: header.block.offset,
                        len: header.block.len,
                        header: (seg.len() - at) as u32,
                    });
                    at = seg.len();
                }
                Err(e) => panic!("a swarm sent a broken frame: {e}"),
            }
        }
    }
    items
}

/// Bytes an item takes on the wire.
fn wire_len_of(item: &Item) -> u64 {
    match item {
        Item::Frame(body) => (LEN_PREFIX + body.len()) as u64,
        Item::Block { len, header, .. } => u64::from(*len) + u64::from(*header),
    }
}

fn transfer_time(len: u64, rate: u64) -> Duration {
    Duration::from_micros(len.saturating_mul(1_000_000) / rate.max(1))
}

/// Flips the last byte of every block frame in `bytes` (a run of whole frames).
fn corrupt_blocks(bytes: &mut [u8]) {
    let mut at = 0;
    while let Ok(Some((body, used))) = wire::split_frame(&bytes[at..]) {
        let is_block = body.get(1) == Some(&(Kind::Block as u8));
        if is_block && used > LEN_PREFIX + 2 {
            bytes[at + used - 1] ^= 0x55;
        }
        at += used;
    }
}

/// The frames of `bytes` (a run of whole frames) other than those of `kind`.
fn without_kind(bytes: &[u8], kind: Kind) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Ok(Some((body, used))) = wire::split_frame(rest) {
        if body.get(1) != Some(&(kind as u8)) {
            out.extend_from_slice(&rest[..used]);
        }
        rest = &rest[used..];
    }
    out
}
