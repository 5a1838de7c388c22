//! A deterministic harness of swarms joined by in-memory links, in simulated time (in the
//! spirit of quinn-proto's test `Pair`): a [`Mesh`] of any swarms and links, and its two
//! usual shapes, a [`Pair`] (a seed and a downloader) and a [`Star`] (a seed and `n`
//! downloaders). Nothing moves, and time does not pass, unless the test says so.
//!
//! Each node carries out its swarm's actions as the test configured it: checks run at once;
//! reads are answered from [`DATA`] at once ([`Reads::Answer`]) or held ([`Reads::Hold`]);
//! stores complete at once ([`Stores::Written`]) or are held ([`Stores::Hold`]). Disconnects
//! and events are recorded, not carried out. A link may lead nowhere ([`Mesh::open`]): what
//! its swarm sends there is only recorded, and the test speaks for the peer with
//! [`Mesh::hear`].

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytes::Bytes;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, DisconnectReason, Event, LinkId, Stored, Swarm, SwarmConfig},
    wire::{self, Handshake, Message},
};

use super::{DATA, MAX_ROUNDS, frames};

/// The seed's node in a [`Pair`] or a [`Star`].
pub const SEED: usize = 0;
/// The downloader's node in a [`Pair`].
pub const DOWN: usize = 1;

/// The manifest of [`DATA`].
pub fn manifest() -> Manifest {
    DATA.with(|d| Manifest::of(d).expect("small"))
}

/// The piece count of [`DATA`].
pub fn pieces() -> u32 {
    manifest().layout().piece_count()
}

/// The ticket of [`DATA`].
pub fn ticket() -> Ticket {
    Ticket::new(manifest().id(), DATA.with(Vec::len) as u64).expect("valid")
}

/// A swarm holding all of [`DATA`], made at time zero with rng seed 1.
pub fn seed_swarm(cfg: SwarmConfig) -> Swarm {
    let manifest = manifest();
    let pieces = manifest.layout().piece_count();
    Swarm::with_manifest(cfg, manifest, Bitfield::full(pieces), Instant::ZERO, 1)
}

/// A swarm fetching [`DATA`] from its ticket, made at `now` with rng seed `rng`.
pub fn downloader_swarm(cfg: SwarmConfig, now: Instant, rng: u64) -> Swarm {
    Swarm::new(cfg, &ticket(), now, rng)
}

/// The config of peer `[peer; 32]`.
pub fn config(peer: u8) -> SwarmConfig {
    SwarmConfig::new(PeerId::from_bytes([peer; 32]))
}

/// The handshake of peer `[peer; 32]` in the swarm of [`DATA`].
pub fn handshake(peer: u8) -> Message<'static> {
    Message::Handshake(Handshake {
        peer_id: PeerId::from_bytes([peer; 32]),
        swarm: Some(manifest().id()),
        listen_port: None,
    })
}

/// How a node answers its swarm's piece reads.
#[derive(Debug, Clone, Copy)]
pub enum Reads {
    /// At once: with the piece's bytes from [`DATA`] where `can(piece)`, unreadable elsewhere.
    Answer(fn(u32) -> bool),
    /// Only when the test calls [`Mesh::answer_reads`]; until then they wait in `held_reads`.
    Hold,
}

/// How a node answers its swarm's piece stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    /// Written, at once.
    Written,
    /// Only when the test calls [`Mesh::complete_store`] (or hands them to the swarm itself);
    /// until then they wait in `held_stores`.
    Hold,
}

/// One swarm and its driver's state.
pub struct Node {
    /// The swarm under test.
    pub swarm: Swarm,
    /// How its reads are answered.
    pub reads: Reads,
    /// How its stores are answered.
    pub stores: Stores,
    /// Whether bytes it hands out are reported sent ([`Swarm::handle_sent`]) at once.
    pub report_sent: bool,
    /// Reads not answered yet, oldest first.
    pub held_reads: Vec<u32>,
    /// Stores not completed yet, oldest first.
    pub held_stores: VecDeque<u32>,
    /// Every frame body it sent and on which link, oldest first (see [`Mesh::take_sent`]).
    pub sent: Vec<(LinkId, Bytes)>,
    /// The bytes it handed out per link.
    pub handed: BTreeMap<LinkId, u64>,
    /// The links it closed, when and why.
    pub disconnects: Vec<(Instant, LinkId, DisconnectReason)>,
    /// What it reported.
    pub events: Vec<Event>,
}

impl Node {
    /// `swarm`, reading every piece and storing at once.
    pub fn new(swarm: Swarm) -> Self {
        Self {
            swarm,
            reads: Reads::Answer(|_| true),
            stores: Stores::Written,
            report_sent: false,
            held_reads: Vec::new(),
            held_stores: VecDeque::new(),
            sent: Vec::new(),
            handed: BTreeMap::new(),
            disconnects: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// Swarms and the links between them, in simulated time.
pub struct Mesh {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Each link end's other end.
    pipes: BTreeMap<(usize, LinkId), (usize, LinkId)>,
    /// Simulated time: every input is given at it.
    pub now: Instant,
}

impl Mesh {
    /// The swarms, unlinked, at time zero.
    pub fn new(swarms: Vec<Swarm>) -> Self {
        Self {
            nodes: swarms.into_iter().map(Node::new).collect(),
            pipes: BTreeMap::new(),
            now: Instant::ZERO,
        }
    }

    /// Node `i`.
    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// Node `i`'s swarm.
    pub fn swarm(&mut self, i: usize) -> &mut Swarm {
        &mut self.nodes[i].swarm
    }

    /// Joins `a`'s link `la` to `b`'s link `lb`, without telling either swarm (for tests
    /// that connect the ends themselves, in their own order).
    pub fn pipe(&mut self, a: usize, la: u64, b: usize, lb: u64) {
        let (la, lb) = (LinkId(la), LinkId(lb));
        self.pipes.insert((a, la), (b, lb));
        self.pipes.insert((b, lb), (a, la));
    }

    /// Opens a link between `a` (its link `la`) and `b` (its link `lb`): `a` connects first.
    pub fn link(&mut self, a: usize, la: u64, b: usize, lb: u64) {
        self.pipe(a, la, b, lb);
        let now = self.now;
        self.nodes[a].swarm.handle_connected(now, LinkId(la));
        self.nodes[b].swarm.handle_connected(now, LinkId(lb));
    }

    /// Opens `link` on node `i` to no one: what it sends there is only recorded.
    pub fn open(&mut self, i: usize, link: u64) {
        let now = self.now;
        self.nodes[i].swarm.handle_connected(now, LinkId(link));
    }

    /// Closes node `i`'s `link`: both ends are told, and nothing more crosses it.
    pub fn disconnect(&mut self, i: usize, link: u64) {
        let now = self.now;
        let link = LinkId(link);
        self.nodes[i].swarm.handle_disconnected(now, link);
        if let Some((j, their)) = self.pipes.remove(&(i, link)) {
            self.pipes.remove(&(j, their));
            self.nodes[j].swarm.handle_disconnected(now, their);
        }
    }

    /// Opens `link` on node `i` to no one, and hears peer `[peer; 32]`'s handshake on it.
    pub fn greet(&mut self, i: usize, link: u64, peer: u8) {
        self.open(i, link);
        self.hear(i, link, &handshake(peer));
    }

    /// Delivers `msg` to node `i` as if from the peer on `link`.
    pub fn hear(&mut self, i: usize, link: u64, msg: &Message<'_>) {
        let mut frame = Vec::new();
        wire::encode(msg, &mut frame).expect("valid message");
        let now = self.now;
        for body in frames(vec![Bytes::from(frame)]) {
            self.nodes[i].swarm.handle_frame(now, LinkId(link), body);
        }
    }

    /// What node `i` sent since the last call, oldest first.
    pub fn take_sent(&mut self, i: usize) -> Vec<(LinkId, Bytes)> {
        std::mem::take(&mut self.nodes[i].sent)
    }

    /// What node `i` sent since the last call, decoded and picked by `pick` (given the
    /// link number), oldest first; frames that do not decode are left out.
    pub fn take_decoded<T>(
        &mut self,
        i: usize,
        mut pick: impl FnMut(u64, Message<'_>) -> Option<T>,
    ) -> Vec<T> {
        self.take_sent(i)
            .iter()
            .filter_map(|(link, body)| pick(link.0, wire::decode(body).ok()?))
            .collect()
    }

    /// Node `i`'s queued frames, taken from its swarm (recorded, counted and, if it
    /// reports sends, reported sent).
    fn transmit(&mut self, i: usize) -> Vec<(LinkId, Bytes)> {
        let node = &mut self.nodes[i];
        let mut out = Vec::new();
        while let Some((link, segments)) = node.swarm.poll_transmit() {
            let len: u64 = segments.iter().map(|b| b.len() as u64).sum();
            *node.handed.entry(link).or_default() += len;
            out.extend(frames(segments).into_iter().map(|body| (link, body)));
            if node.report_sent {
                node.swarm.handle_sent(link, len);
            }
        }
        node.sent.extend(out.iter().cloned());
        out
    }

    /// Hands node `i`'s frames to the other ends of their links (dropping those on links
    /// to no one).
    fn deliver(&mut self, i: usize, out: &[(LinkId, Bytes)]) {
        let now = self.now;
        for (link, body) in out {
            if let Some(&(j, their)) = self.pipes.get(&(i, *link)) {
                self.nodes[j].swarm.handle_frame(now, their, body.clone());
            }
        }
    }

    /// Moves what node `i` has queued to the other ends at once; returns what it moved.
    pub fn flush(&mut self, i: usize) -> Vec<(LinkId, Bytes)> {
        let out = self.transmit(i);
        self.deliver(i, &out);
        out
    }

    /// Carries out node `i`'s queued actions and takes its events; true if there were any.
    pub fn act(&mut self, i: usize) -> bool {
        let now = self.now;
        let node = &mut self.nodes[i];
        let mut moved = false;
        while let Some(action) = node.swarm.poll_action() {
            moved = true;
            match action {
                Action::ReadPiece { piece } => match node.reads {
                    Reads::Answer(can) => {
                        let data = can(piece).then(|| read(&node.swarm, piece)).flatten();
                        node.swarm.handle_piece_read(now, piece, data);
                    }
                    Reads::Hold => node.held_reads.push(piece),
                },
                Action::CheckPiece(check) => node.swarm.handle_piece_checked(now, check.run()),
                Action::StorePiece { piece, .. } => match node.stores {
                    Stores::Written => node.swarm.handle_piece_stored(now, piece, Stored::Written),
                    Stores::Hold => node.held_stores.push_back(piece),
                },
                Action::StoreManifest(_) => {}
                Action::Disconnect { link, reason } => node.disconnects.push((now, link, reason)),
            }
        }
        while let Some(event) = node.swarm.poll_event() {
            moved = true;
            node.events.push(event);
        }
        moved
    }

    /// Moves what every node has queued once (all taken first, then delivered, in node
    /// order), then carries out every node's actions; true if anything happened.
    pub fn step(&mut self) -> bool {
        let out: Vec<_> = (0..self.nodes.len()).map(|i| self.transmit(i)).collect();
        let mut moved = false;
        for (i, out) in out.iter().enumerate() {
            moved |= !out.is_empty();
            self.deliver(i, out);
        }
        for i in 0..self.nodes.len() {
            moved |= self.act(i);
        }
        moved
    }

    /// Steps at most `n` times; true if it went quiet.
    pub fn drive_bounded(&mut self, n: usize) -> bool {
        (0..n).any(|_| !self.step())
    }

    /// Steps until quiet, without moving time; panics after [`MAX_ROUNDS`] (a livelock).
    pub fn drive(&mut self) {
        assert!(
            self.drive_bounded(MAX_ROUNDS),
            "the swarms never went quiet: a livelock"
        );
    }

    /// The earliest timeout of any node.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.nodes
            .iter()
            .filter_map(|n| n.swarm.poll_timeout())
            .min()
    }

    /// Moves time to `at` (never back) and has every node whose timeout is due handle it.
    fn fire(&mut self, at: Instant) {
        self.now = self.now.max(at);
        let now = self.now;
        for n in &mut self.nodes {
            if n.swarm.poll_timeout().is_some_and(|t| t <= now) {
                n.swarm.handle_timeout(now);
            }
        }
    }

    /// Moves time to `at` and has node `i` handle a timeout then, due or not.
    pub fn wake(&mut self, i: usize, at: Instant) {
        assert!(at >= self.now, "time only moves forward");
        self.now = at;
        self.nodes[i].swarm.handle_timeout(at);
    }

    /// Drives until quiet, then moves time to the next timeout while `done` is false;
    /// returns whether `done` held (false once no timeout is left). Panics after
    /// [`MAX_ROUNDS`] timeouts.
    pub fn run_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        for _ in 0..MAX_ROUNDS {
            self.drive();
            if done(self) {
                return true;
            }
            let Some(next) = self.next_timeout() else {
                return false;
            };
            self.fire(next);
        }
        panic!("the swarms never reached the goal: a livelock");
    }

    /// Lets `by` pass: every timeout on the way fires at its time, and the swarms are driven
    /// until quiet after each.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        self.run_until(|m| m.next_timeout().is_none_or(|t| t > until));
        self.now = self.now.max(until);
    }

    /// Answers up to `n` of node `i`'s held reads, oldest first, with their bytes.
    pub fn answer_reads(&mut self, i: usize, n: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let n = n.min(node.held_reads.len());
        for piece in node.held_reads.drain(..n).collect::<Vec<_>>() {
            let data = read(&node.swarm, piece);
            node.swarm.handle_piece_read(now, piece, data);
        }
    }

    /// Completes node `i`'s oldest held store (written); returns its piece.
    pub fn complete_store(&mut self, i: usize) -> Option<u32> {
        let now = self.now;
        let node = &mut self.nodes[i];
        let piece = node.held_stores.pop_front()?;
        node.swarm.handle_piece_stored(now, piece, Stored::Written);
        Some(piece)
    }
}

/// Piece `piece` of [`DATA`], cut by `swarm`'s manifest.
fn read(swarm: &Swarm, piece: u32) -> Option<Bytes> {
    let r = swarm.manifest()?.layout().piece_range(piece)?;
    DATA.with(|d| Some(Bytes::copy_from_slice(&d[r.start as usize..r.end as usize])))
}

/// A seed holding [`DATA`] (node [`SEED`], peer 1) and a downloader (node [`DOWN`]), linked
/// as link 1 on both at time zero.
pub struct Pair(Mesh);

impl Pair {
    /// The seed with the default config and the downloader with `down` (rng seed 2).
    pub fn new(down: SwarmConfig) -> Self {
        let now = Instant::ZERO;
        let mut mesh = Mesh::new(vec![seed_swarm(config(1)), downloader_swarm(down, now, 2)]);
        mesh.link(SEED, 1, DOWN, 1);
        Self(mesh)
    }

    /// The downloader's swarm.
    pub fn down(&mut self) -> &mut Swarm {
        self.swarm(DOWN)
    }
}

/// A seed holding [`DATA`] (node [`SEED`]) and `n` downloaders: downloader `k` (from 1) is
/// node `k`, peer `9 + k` with rng seed `1 + k`, and the seed's link `k` is its link 1.
pub struct Star(Mesh);

impl Star {
    /// The seed configured by `cfg`, linked to `n` downloaders with default configs at time
    /// zero.
    pub fn new(cfg: SwarmConfig, n: usize) -> Self {
        let now = Instant::ZERO;
        let downs = (1..=n as u8).map(|k| downloader_swarm(config(9 + k), now, 1 + u64::from(k)));
        let mut mesh = Mesh::new(std::iter::once(seed_swarm(cfg)).chain(downs).collect());
        for k in 1..=n {
            mesh.link(SEED, k as u64, k, 1);
        }
        Self(mesh)
    }

    /// Downloader `k`'s swarm (from 1).
    pub fn down(&mut self, k: usize) -> &mut Swarm {
        self.swarm(k)
    }
}

/// What both shapes share: they are a [`Mesh`] with the seed at node [`SEED`].
macro_rules! shape {
    ($($shape:ident),*) => {$(
        impl $shape {
            /// The seed's swarm.
            pub fn seed(&mut self) -> &mut Swarm {
                self.swarm(SEED)
            }
        }

        impl Deref for $shape {
            type Target = Mesh;
            fn deref(&self) -> &Mesh {
                &self.0
            }
        }

        impl DerefMut for $shape {
            fn deref_mut(&mut self) -> &mut Mesh {
                &mut self.0
            }
        }
    )*};
}

shape!(Pair, Star);
