//! A simulated network of swarm nodes: per-node upload and download capacity, link latency,
//! seeded randomness, and a trace of everything that happened.
//!
//! Each node's uplink and downlink serialise the bytes that cross them at the node's rate, and
//! every transfer also takes the network latency. Storage is in memory. Nothing here reads a
//! clock: time advances from event to event, so a run is a pure function of its inputs and seed.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    time::Duration,
};

use bytes::Bytes;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, Event, LinkId, Swarm, SwarmConfig},
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

/// One simulated node.
struct Node {
    swarm: Swarm,
    store: BTreeMap<u32, Bytes>,
    capacity: Capacity,
    behavior: Behavior,
    up_free_at: Instant,
    down_free_at: Instant,
    /// Our link -> (peer node, the peer's link id for the same connection).
    links: BTreeMap<LinkId, (NodeId, LinkId)>,
    next_link: u64,
    timer: Option<Instant>,
    completed_at: Option<Instant>,
    banned: Vec<PeerId>,
    bytes_sent: u64,
}

/// Something scheduled to happen.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Deliver {
        to: NodeId,
        link: LinkId,
        bytes: Vec<u8>,
    },
    Disconnected {
        node: NodeId,
        link: LinkId,
    },
    Timer {
        node: NodeId,
    },
}

/// The simulated network.
pub struct Net {
    now: Instant,
    latency: Duration,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(Instant, u64, Ev)>>,
    seq: u64,
    rng: Xoshiro256PlusPlus,
    trace: blake3::Hasher,
    trace_len: u64,
    /// The artifact's true bytes, when real payloads are simulated.
    truth: Option<Bytes>,
    /// Pieces that reached storage without matching the truth (must stay empty).
    bad_stores: Vec<(NodeId, u32)>,
}

impl Net {
    /// An empty network with one-way `latency` between any two nodes.
    pub fn new(seed: u64, latency: Duration) -> Self {
        Self {
            now: Instant::ZERO,
            latency,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            trace: blake3::Hasher::new(),
            trace_len: 0,
            truth: None,
            bad_stores: Vec::new(),
        }
    }

    /// Adds a node that holds all of `data` (a seed); returns its id and the ticket.
    pub fn add_seed(
        &mut self,
        data: &[u8],
        capacity: Capacity,
        behavior: Behavior,
    ) -> (NodeId, Ticket) {
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
        let cfg = self.config();
        let seed = self.rng.next_u64();
        let swarm = Swarm::with_manifest(cfg, manifest, have, self.now, seed);
        (self.push(swarm, store, capacity, behavior), ticket)
    }

    /// Adds a node that starts with nothing and fetches `ticket`.
    pub fn add_peer(&mut self, ticket: &Ticket, capacity: Capacity, behavior: Behavior) -> NodeId {
        let cfg = self.config();
        let seed = self.rng.next_u64();
        let swarm = Swarm::new(cfg, ticket, self.now, seed);
        self.push(swarm, BTreeMap::new(), capacity, behavior)
    }

    fn config(&mut self) -> SwarmConfig {
        let mut id = [0u8; 32];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        SwarmConfig::new(PeerId::from_bytes(id))
    }

    fn push(
        &mut self,
        swarm: Swarm,
        store: BTreeMap<u32, Bytes>,
        capacity: Capacity,
        behavior: Behavior,
    ) -> NodeId {
        let completed_at = swarm.is_complete().then_some(self.now);
        self.nodes.push(Node {
            swarm,
            store,
            capacity,
            behavior,
            up_free_at: self.now,
            down_free_at: self.now,
            links: BTreeMap::new(),
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
        self.nodes[a].links.insert(la, (b, lb));
        self.nodes[b].links.insert(lb, (a, la));
        self.nodes[a].swarm.handle_connected(self.now, la);
        self.nodes[b].swarm.handle_connected(self.now, lb);
        self.drain(a);
        self.drain(b);
    }

    /// Connects every node to `degree` distinct random others (and never to itself).
    pub fn connect_random(&mut self, degree: usize) {
        let n = self.nodes.len();
        for a in 0..n {
            let mut tries = 0;
            while self.nodes[a].links.len() < degree.min(n - 1) && tries < 10 * n {
                tries += 1;
                let b = (self.rng.next_u64() % n as u64) as usize;
                if b != a && !self.nodes[a].links.values().any(|(p, _)| *p == b) {
                    self.connect(a, b);
                }
            }
        }
    }

    fn new_link(&mut self, node: NodeId) -> LinkId {
        let n = &mut self.nodes[node];
        n.next_link += 1;
        LinkId(n.next_link)
    }

    /// Runs until every node is complete, no event is left, or `limit` of simulated time passed.
    pub fn run(&mut self, limit: Duration) {
        let end = Instant::ZERO + limit;
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            if at > end {
                break;
            }
            self.now = at;
            match ev {
                Ev::Deliver { to, link, bytes } => self.deliver(to, link, bytes),
                Ev::Disconnected { node, link } => {
                    if self.nodes[node].links.remove(&link).is_some() {
                        self.nodes[node].swarm.handle_disconnected(at, link);
                        self.drain(node);
                    }
                }
                Ev::Timer { node } => {
                    if self.nodes[node].timer == Some(at) {
                        self.nodes[node].timer = None;
                        self.nodes[node].swarm.handle_timeout(at);
                        self.drain(node);
                    }
                }
            }
            if self.nodes.iter().all(|n| n.completed_at.is_some()) {
                break;
            }
        }
    }

    fn deliver(&mut self, to: NodeId, link: LinkId, bytes: Vec<u8>) {
        if !self.nodes[to].links.contains_key(&link) {
            return;
        }
        let bytes = Bytes::from(bytes);
        let mut at = 0;
        while let Ok(Some((body, used))) = wire::split_frame(&bytes[at..]) {
            let body = bytes.slice_ref(body);
            self.nodes[to].swarm.handle_frame(self.now, link, body);
            at += used;
        }
        self.drain(to);
    }

    /// Carries out everything a node's swarm asks for after an input.
    fn drain(&mut self, id: NodeId) {
        loop {
            let mut progressed = false;
            while let Some((link, segments)) = self.nodes[id].swarm.poll_transmit() {
                progressed = true;
                let mut bytes: Vec<u8> = segments.concat();
                match self.nodes[id].behavior {
                    Behavior::Honest => {}
                    Behavior::CorruptBlocks => corrupt_blocks(&mut bytes),
                    Behavior::WithholdBlocks => bytes = without_kind(&bytes, Kind::Block),
                    Behavior::WithholdManifest => {
                        bytes = without_kind(&bytes, Kind::ManifestPart);
                    }
                }
                self.transmit(id, link, bytes);
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

    fn act(&mut self, id: NodeId, action: Action) {
        match action {
            Action::ReadPiece { piece } => {
                let data = self.nodes[id].store.get(&piece).cloned();
                self.nodes[id]
                    .swarm
                    .handle_piece_read(self.now, piece, data);
            }
            Action::StorePiece { piece, data } => {
                let data = data.to_bytes();
                if !self.matches_truth(piece, &data) {
                    self.bad_stores.push((id, piece));
                }
                self.nodes[id].store.insert(piece, data);
                self.nodes[id]
                    .swarm
                    .handle_piece_stored(self.now, piece, true);
            }
            Action::CheckPiece(check) => {
                let checked = check.run();
                self.nodes[id].swarm.handle_piece_checked(self.now, checked);
            }
            Action::StoreManifest(_) => {}
            Action::Disconnect { link, .. } => {
                if let Some((peer, peer_link)) = self.nodes[id].links.remove(&link) {
                    let at = self.now + self.latency;
                    self.schedule(
                        at,
                        Ev::Disconnected {
                            node: peer,
                            link: peer_link,
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
        let size = self.nodes[0]
            .swarm
            .manifest()
            .map(|m| m.layout().piece_size())
            .unwrap_or(0);
        let start = piece as usize * size as usize;
        truth.get(start..start + data.len()) == Some(data)
    }

    fn record(&mut self, id: NodeId, event: &Event) {
        let line = format!("{} {id} {event:?}\n", self.now.as_micros());
        self.trace.update(line.as_bytes());
        self.trace_len += 1;
        match event {
            Event::Complete => self.nodes[id].completed_at = Some(self.now),
            Event::PeerBanned { peer, .. } => self.nodes[id].banned.push(*peer),
            _ => {}
        }
    }

    /// Sends bytes over the sender's uplink, the latency, and the receiver's downlink.
    fn transmit(&mut self, from: NodeId, link: LinkId, bytes: Vec<u8>) {
        let Some(&(to, to_link)) = self.nodes[from].links.get(&link) else {
            return;
        };
        let len = bytes.len() as u64;
        self.nodes[from].bytes_sent += len;
        let sender = &mut self.nodes[from];
        let sent = sender.up_free_at.max(self.now) + transfer_time(len, sender.capacity.up);
        sender.up_free_at = sent;
        let receiver = &mut self.nodes[to];
        let arrived = (sent + self.latency).max(receiver.down_free_at);
        let received = arrived + transfer_time(len, receiver.capacity.down);
        receiver.down_free_at = received;
        self.schedule(
            received,
            Ev::Deliver {
                to,
                link: to_link,
                bytes,
            },
        );
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
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

    /// When a node completed, if it did.
    pub fn completed_at(&self, node: NodeId) -> Option<Instant> {
        self.nodes[node].completed_at
    }

    /// A node's swarm.
    pub fn swarm(&self, node: NodeId) -> &Swarm {
        &self.nodes[node].swarm
    }

    /// A node's stored artifact, if it holds every piece.
    pub fn assembled(&self, node: NodeId) -> Option<Vec<u8>> {
        let n = &self.nodes[node];
        if !n.swarm.is_complete() {
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
