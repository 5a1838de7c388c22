//! A harness of whole endpoints joined by in-memory connections, for tests of routing,
//! connection sharing and duplicate connections. Storage is a byte vector per artifact,
//! answered at once.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use pollen_core::{
    Bitfield, ContentId, Instant, Manifest, PeerId, Ticket,
    endpoint::{CloseReason, ConnId, Endpoint, EndpointConfig, EndpointEvent, Output},
    policy::presets,
    swarm::{Action, Stored, Swarm, SwarmConfig},
    wire::FrameBuffer,
};

/// One peer: its endpoint and the bytes of its artifacts.
pub struct Node {
    /// The endpoint under test.
    pub ep: Endpoint,
    /// Each artifact's bytes (zeros where pieces are missing).
    pub data: BTreeMap<ContentId, Vec<u8>>,
    /// Everything it reported, in order.
    pub events: Vec<EndpointEvent>,
    /// The connections it closed, and why.
    pub closed: Vec<(ConnId, CloseReason)>,
}

/// Endpoints and the connections between them.
pub struct Net {
    /// The peers, `nodes[i]` with peer id `[i + 1; 32]`.
    pub nodes: Vec<Node>,
    /// Each connection end's other end.
    pipes: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// Frames in flight: to node, on its connection.
    queue: VecDeque<(usize, ConnId, Bytes)>,
    /// Bytes each connection end carries per step, if limited ([`Net::limit_rate`]).
    rate: Option<usize>,
    /// Bytes handed to a connection end and not yet carried (rate-limited connections).
    wires: BTreeMap<(usize, ConnId), VecDeque<Bytes>>,
    /// Bytes a connection end received and has not made a whole frame of yet.
    partial: BTreeMap<(usize, ConnId), FrameBuffer>,
    /// Swarms take a native node's settings ([`presets::native`]).
    native: bool,
    /// Simulated time.
    pub now: Instant,
    seed: u64,
}

/// Most steps [`Net::drive`] takes before calling it a livelock.
pub const MAX_STEPS: usize = 200_000;

impl Net {
    /// `n` endpoints with nothing to share.
    pub fn new(n: usize) -> Self {
        let nodes = (0..n)
            .map(|i| Node {
                ep: Endpoint::new(EndpointConfig {
                    report_sent: true,
                    ..EndpointConfig::new(Self::peer(i))
                }),
                data: BTreeMap::new(),
                events: Vec::new(),
                closed: Vec::new(),
            })
            .collect();
        Self {
            nodes,
            pipes: BTreeMap::new(),
            queue: VecDeque::new(),
            rate: None,
            wires: BTreeMap::new(),
            partial: BTreeMap::new(),
            native: false,
            now: Instant::from_micros(1),
            seed: 1,
        }
    }

    /// Node `i`'s peer id.
    pub fn peer(i: usize) -> PeerId {
        PeerId::from_bytes([i as u8 + 1; 32])
    }

    /// Makes every connection carry at most `bytes` each way per step, reporting them sent
    /// as they go, like a link of limited bandwidth.
    pub fn limit_rate(&mut self, bytes: usize) {
        self.rate = Some(bytes);
    }

    /// Makes the swarms added from now on take a native node's settings (a send window).
    pub fn use_native_settings(&mut self) {
        self.native = true;
    }

    fn config(&mut self, node: usize) -> (SwarmConfig, u64) {
        self.seed += 1;
        let cfg = if self.native {
            presets::native(Self::peer(node), None, None, false)
        } else {
            SwarmConfig::new(Self::peer(node))
        };
        (cfg, self.seed)
    }

    /// Node `node` seeds `data`; returns its ticket.
    pub fn seed(&mut self, node: usize, data: Vec<u8>) -> Ticket {
        let manifest = Manifest::of(&data).expect("a test artifact");
        let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid size");
        let pieces = manifest.layout().piece_count();
        let (cfg, seed) = self.config(node);
        let swarm = Swarm::with_manifest(cfg, manifest, Bitfield::full(pieces), self.now, seed);
        let now = self.now;
        let n = &mut self.nodes[node];
        n.data.insert(ticket.id(), data);
        n.ep.add_swarm(now, swarm);
        ticket
    }

    /// Node `node` starts fetching `ticket`.
    pub fn fetch(&mut self, node: usize, ticket: &Ticket) {
        let (cfg, seed) = self.config(node);
        let swarm = Swarm::new(cfg, ticket, self.now, seed);
        let now = self.now;
        let n = &mut self.nodes[node];
        n.data.insert(ticket.id(), vec![0; ticket.size() as usize]);
        n.ep.add_swarm(now, swarm);
    }

    /// Opens a connection that `a` dialed to `b`; returns both ends.
    pub fn connect(&mut self, a: usize, b: usize) -> (ConnId, ConnId) {
        let now = self.now;
        let ca = self.nodes[a].ep.connect(now, true);
        let cb = self.nodes[b].ep.connect(now, false);
        self.pipes.insert((a, ca), (b, cb));
        self.pipes.insert((b, cb), (a, ca));
        (ca, cb)
    }

    /// Connections node `i` holds open.
    pub fn conns(&self, i: usize) -> usize {
        self.nodes[i].ep.conn_count()
    }

    /// Whether node `i` holds artifact `id` whole, with the seed's bytes.
    pub fn complete(&self, i: usize, id: &ContentId) -> bool {
        self.nodes[i].ep.swarm(id).is_some_and(Swarm::is_complete)
    }

    /// Carries out every node's output and delivers the frames in flight once; true if
    /// anything happened.
    pub fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.nodes.len() {
            while let Some(out) = self.nodes[i].ep.poll_output() {
                moved = true;
                self.carry_out(i, out);
            }
        }
        moved |= self.carry_wires();
        let in_flight = std::mem::take(&mut self.queue);
        for (to, conn, body) in in_flight {
            moved = true;
            let now = self.now;
            self.nodes[to].ep.handle_frame(now, conn, body);
        }
        moved
    }

    /// Moves up to the rate's bytes over each rate-limited connection end; true if any moved.
    fn carry_wires(&mut self) -> bool {
        let Some(rate) = self.rate else {
            return false;
        };
        let mut moved = false;
        let ends: Vec<(usize, ConnId)> = self.wires.keys().copied().collect();
        for (i, conn) in ends {
            let Some(&(to, their)) = self.pipes.get(&(i, conn)) else {
                self.wires.remove(&(i, conn));
                continue;
            };
            let Some(wire) = self.wires.get_mut(&(i, conn)) else {
                continue;
            };
            let mut budget = rate;
            let mut carried = Vec::new();
            while budget > 0
                && let Some(mut front) = wire.pop_front()
            {
                if front.len() > budget {
                    wire.push_front(front.split_off(budget));
                }
                budget -= front.len();
                carried.push(front);
            }
            if carried.is_empty() {
                continue;
            }
            moved = true;
            let n: usize = carried.iter().map(Bytes::len).sum();
            self.nodes[i].ep.handle_sent(conn, n as u64);
            let buf = self.partial.entry((to, their)).or_default();
            for c in &carried {
                buf.push(c);
            }
            while let Ok(Some(body)) = buf.next_frame() {
                self.queue.push_back((to, their, body));
            }
        }
        moved
    }

    /// Carries out one output of node `i`.
    pub fn carry_out(&mut self, i: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Transmit(conn, segments) if self.rate.is_some() => {
                self.wires.entry((i, conn)).or_default().extend(segments);
            }
            Output::Transmit(conn, segments) => {
                let bytes = Bytes::from(segments.concat());
                self.nodes[i].ep.handle_sent(conn, bytes.len() as u64);
                let Some(&(to, their)) = self.pipes.get(&(i, conn)) else {
                    return;
                };
                let mut at = 0;
                while let Ok(Some((body, used))) = pollen_core::wire::split_frame(&bytes[at..]) {
                    self.queue.push_back((to, their, bytes.slice_ref(body)));
                    at += used;
                }
                assert_eq!(at, bytes.len(), "a transmit ends in a partial frame");
            }
            Output::Action(id, action) => self.act(i, id, action),
            Output::Close(conn, reason) => {
                self.nodes[i].closed.push((conn, reason));
                if let Some((to, their)) = self.pipes.remove(&(i, conn)) {
                    self.pipes.remove(&(to, their));
                    self.queue.retain(|(n, c, _)| (*n, *c) != (to, their));
                    self.wires.remove(&(i, conn));
                    self.wires.remove(&(to, their));
                    self.partial.remove(&(to, their));
                    self.partial.remove(&(i, conn));
                    self.nodes[to].ep.handle_closed(now, their);
                }
            }
            Output::Event(e) => self.nodes[i].events.push(e),
        }
    }

    fn act(&mut self, i: usize, id: ContentId, action: Action) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let range = |ep: &Endpoint, piece: u32| {
            ep.swarm(&id)
                .and_then(|s| s.manifest())
                .and_then(|m| m.layout().piece_range(piece))
                .map(|r| r.start as usize..r.end as usize)
        };
        match action {
            Action::ReadPiece { piece } => {
                let data = range(&node.ep, piece)
                    .and_then(|r| node.data.get(&id)?.get(r).map(Bytes::copy_from_slice));
                if let Some(s) = node.ep.swarm_mut(&id) {
                    s.handle_piece_read(now, piece, data);
                }
            }
            Action::CheckPiece(check) => {
                if let Some(s) = node.ep.swarm_mut(&id) {
                    s.handle_piece_checked(now, check.run());
                }
            }
            Action::StorePiece { piece, data } => {
                let mut stored = Stored::Failed;
                if let (Some(r), Some(buf)) = (range(&node.ep, piece), node.data.get_mut(&id)) {
                    let bytes: Vec<u8> = data.segments().concat();
                    if let Some(dst) = buf.get_mut(r)
                        && dst.len() == bytes.len()
                    {
                        dst.copy_from_slice(&bytes);
                        stored = Stored::Written;
                    }
                }
                if let Some(s) = node.ep.swarm_mut(&id) {
                    s.handle_piece_stored(now, piece, stored);
                }
            }
            Action::StoreManifest(_) => {}
            Action::Disconnect { .. } => panic!("the endpoint passed a swarm's Disconnect on"),
        }
    }

    /// Steps until nothing happens, moving time to the next timer while `until` is false;
    /// panics after [`MAX_STEPS`].
    pub fn drive_until(&mut self, mut until: impl FnMut(&Self) -> bool) {
        for _ in 0..MAX_STEPS {
            if until(self) {
                return;
            }
            if !self.step() {
                let next = self.nodes.iter().filter_map(|n| n.ep.poll_timeout()).min();
                let Some(next) = next else {
                    return;
                };
                self.now = self.now.max(next);
                let now = self.now;
                for n in &mut self.nodes {
                    n.ep.handle_timeout(now);
                }
            }
        }
        panic!("the endpoints never reached the goal: a livelock");
    }

    /// Steps until nothing happens without moving time; panics after [`MAX_STEPS`].
    pub fn drive(&mut self) {
        for _ in 0..MAX_STEPS {
            if !self.step() {
                return;
            }
        }
        panic!("the endpoints never went quiet: a livelock");
    }
}

/// Test bytes of `len`, different for each `tag`.
pub fn artifact(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(tag) * 7) as u8)
        .collect()
}
