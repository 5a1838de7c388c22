//! An [`Endpoint`] after a connection's handshake, fed arbitrary frames and driver inputs.
//!
//! The endpoint under test (peer [`me`]) seeds [`Artifacts::seeded`] and fetches
//! [`Artifacts::fetched`]; connection 0 is open and has had the handshake of peer `[2; 32]`.
//! An input is a sequence of records `op | arg | len | payload[len]` ([`op`] lists them; `arg`
//! picks one of the connections opened so far). Some ops build well-formed frames from a few
//! bytes (opens of the two swarms, blocks and manifest parts with the right bytes) so that the
//! fuzzer gets past the content checks it cannot forge; the raw ops feed it anything.
//!
//! The harness is a driver: it carries out every output after every input (pieces are read
//! from and stored into memory at once, checks run at once) and checks that whatever the
//! endpoint sends decodes, that only verified pieces and the true manifest reach storage, that
//! no swarm's `Disconnect` escapes the endpoint, and that no timer is left in the past.

use std::{collections::BTreeMap, sync::OnceLock, time::Duration};

use bytes::Bytes;
use pollen_core::{
    Bitfield, ContentId, Instant, Manifest, PeerId, Ticket,
    endpoint::{ConnId, Endpoint, EndpointConfig, Output},
    policy::presets,
    swarm::{Action, Stored, Swarm, SwarmConfig},
    wire::{self, Handshake, Message},
};

/// The ops of a record (taken modulo [`op::COUNT`]).
pub mod op {
    /// A new connection; `arg` odd: we dialed it.
    pub const CONNECT: u8 = 0;
    /// A connection handshake on the connection from peer `[1 + payload[0] % 3; 32]` (1 is us).
    pub const HANDSHAKE: u8 = 1;
    /// The payload as one frame body.
    pub const FRAME: u8 = 2;
    /// A `Channel` frame on channel `payload[0]` carrying the rest of the payload as one frame
    /// body.
    pub const CHANNEL_FRAME: u8 = 3;
    /// `OpenChannel { channel: payload[0], swarm, answers }`: the swarm is seeded, fetched or
    /// another as `payload[1] % 3`; `answers` is `payload[3]` if `payload[2]` is odd.
    pub const OPEN: u8 = 4;
    /// A block with the right bytes on channel `payload[0]`: of the fetched artifact if
    /// `payload[1] & 1`, one byte wrong if `payload[1] & 2`, handed over by
    /// [`Endpoint::handle_block`] (not in a `Channel` frame) if `payload[1] & 4`; piece
    /// `payload[2]`, block `payload[3]` of [`BLOCK_SIZE`].
    pub const BLOCK: u8 = 5;
    /// The driver reports `payload[0] * 512` bytes sent on the connection (0: all it was
    /// given), never more than it was given.
    pub const SENT: u8 = 6;
    /// The connection closed.
    pub const CLOSED: u8 = 7;
    /// `(payload[0] + 1) * 100` ms pass.
    pub const TICK: u8 = 8;
    /// The driver opens the seeded (`payload[0]` even) or fetched swarm on the connection.
    pub const OPEN_SWARM: u8 = 9;
    /// The driver removes the seeded or fetched swarm (`payload[0] & 1`), and adds it again
    /// afresh unless `payload[0] & 2`.
    pub const REPLACE_SWARM: u8 = 10;
    /// A `ManifestPart` of the seeded or fetched artifact (`payload[1] & 1`) on channel
    /// `payload[0]`, pieces `payload[2]..payload[2] + payload[3]` of the true chaining values.
    pub const MANIFEST_PART: u8 = 11;
    /// How many ops there are.
    pub const COUNT: u8 = 12;
}

/// The block size of the swarms (small, so pieces take several blocks).
pub const BLOCK_SIZE: u32 = 4096;

/// The endpoint under test.
pub fn me() -> PeerId {
    PeerId::from_bytes([1; 32])
}

/// The peer whose handshake connection 0 had.
pub fn peer() -> PeerId {
    PeerId::from_bytes([2; 32])
}

/// One artifact: its bytes, manifest and ticket.
#[derive(Debug)]
pub struct Artifact {
    /// The bytes.
    pub data: Vec<u8>,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its ticket.
    pub ticket: Ticket,
}

impl Artifact {
    fn new(len: usize, salt: usize) -> Self {
        let data: Vec<u8> = (0..len).map(|i| ((i * 31 + salt) % 251) as u8).collect();
        let manifest = Manifest::of(&data).expect("small");
        let ticket = Ticket::new(manifest.id(), len as u64).expect("valid");
        Self {
            data,
            manifest,
            ticket,
        }
    }

    /// Its content id.
    pub fn id(&self) -> ContentId {
        self.manifest.id()
    }

    /// Its piece count.
    pub fn pieces(&self) -> u32 {
        self.manifest.layout().piece_count()
    }

    /// The bytes of piece `piece`, if there is one.
    pub fn piece(&self, piece: u32) -> Option<&[u8]> {
        let r = self.manifest.layout().piece_range(piece)?;
        Some(&self.data[r.start as usize..r.end as usize])
    }
}

/// The two artifacts of the harness.
#[derive(Debug)]
pub struct Artifacts {
    /// Two pieces, held by the endpoint under test.
    pub seeded: Artifact,
    /// Three pieces, fetched by the endpoint under test.
    pub fetched: Artifact,
}

impl Artifacts {
    /// The artifacts (built once).
    pub fn get() -> &'static Artifacts {
        static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
        ARTIFACTS.get_or_init(|| Artifacts {
            seeded: Artifact::new(16 * 1024 + 1000, 0),
            fetched: Artifact::new(2 * 16 * 1024 + 500, 7),
        })
    }

    /// The seeded artifact (`false`) or the fetched one (`true`).
    pub fn pick(&self, fetched: bool) -> &Artifact {
        if fetched { &self.fetched } else { &self.seeded }
    }
}

/// The swarm settings of the harness (a native node's, with small blocks).
pub fn swarm_config(peer: PeerId) -> SwarmConfig {
    let mut cfg = presets::native(peer, Some(7711), None, false);
    cfg.block_size = BLOCK_SIZE;
    cfg
}

/// A swarm holding the whole artifact.
pub fn seed_swarm(peer: PeerId, a: &Artifact, now: Instant, seed: u64) -> Swarm {
    Swarm::with_manifest(
        swarm_config(peer),
        a.manifest.clone(),
        Bitfield::full(a.pieces()),
        now,
        seed,
    )
}

/// A swarm fetching the artifact from its ticket.
pub fn fetch_swarm(peer: PeerId, a: &Artifact, now: Instant, seed: u64) -> Swarm {
    Swarm::new(swarm_config(peer), &a.ticket, now, seed)
}

/// The body of a frame (what [`Endpoint::handle_frame`] takes) from a whole frame.
fn body(frame: Vec<u8>) -> Bytes {
    Bytes::from(frame).slice(wire::LEN_PREFIX..)
}

fn encode(msg: &Message<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    wire::encode(msg, &mut out).ok()?;
    Some(out)
}

/// A `Channel` frame body on `channel` carrying `frames` (whole frames).
fn channel_frame(channel: u32, frames: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    wire::encode_channel_header(channel, frames.len(), &mut out).ok()?;
    out.extend_from_slice(frames);
    Some(body(out))
}

/// Appends a record to `out`.
pub fn record(op: u8, arg: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = u8::try_from(payload.len()).expect("a record's payload is at most 255 bytes");
    out.extend_from_slice(&[op, arg, len]);
    out.extend_from_slice(payload);
}

/// Runs the harness on an input.
pub fn run(input: &[u8]) {
    let mut h = Harness::new();
    let mut rest = input;
    while let [op, arg, len, tail @ ..] = rest {
        let (payload, tail) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = tail;
        h.step(*op, *arg, payload);
    }
}

/// The endpoint under test and its driver.
pub struct Harness {
    ep: Endpoint,
    /// What storage holds of each artifact (seeded, fetched).
    held: [Bitfield; 2],
    conns: Vec<ConnId>,
    /// Bytes handed to each connection and not yet reported sent.
    unsent: BTreeMap<ConnId, u64>,
    now: Instant,
    /// What the endpoint sent since [`Harness::take_sent`].
    sent: Vec<(ConnId, Vec<u8>)>,
    seed: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The endpoint with its two swarms and connection 0, after the peer's handshake.
    pub fn new() -> Self {
        let a = Artifacts::get();
        let now = Instant::ZERO;
        let mut ep = Endpoint::new(EndpointConfig {
            listen_port: Some(7711),
            report_sent: true,
            ..EndpointConfig::new(me())
        });
        ep.add_swarm(now, seed_swarm(me(), &a.seeded, now, 1));
        ep.add_swarm(now, fetch_swarm(me(), &a.fetched, now, 2));
        let mut h = Self {
            ep,
            held: [
                Bitfield::full(a.seeded.pieces()),
                Bitfield::new(a.fetched.pieces()),
            ],
            conns: Vec::new(),
            unsent: BTreeMap::new(),
            now,
            sent: Vec::new(),
            seed: 2,
        };
        h.step(op::CONNECT, 1, &[]);
        h.step(op::HANDSHAKE, 0, &[1]);
        h
    }

    /// The harness's clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Whether storage holds every piece of the fetched artifact.
    pub fn fetched_complete(&self) -> bool {
        self.held[1].is_complete()
    }

    /// What the endpoint sent since the last call, by connection, as whole frames.
    pub fn take_sent(&mut self) -> Vec<(ConnId, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }

    /// One record.
    pub fn step(&mut self, op: u8, arg: u8, payload: &[u8]) {
        let a = Artifacts::get();
        let byte = |i: usize| payload.get(i).copied().unwrap_or(0);
        let conn = match self.conns.len() {
            0 => ConnId(0),
            n => self.conns[usize::from(arg) % n],
        };
        let now = self.now;
        match op % op::COUNT {
            op::CONNECT => {
                let c = self.ep.connect(now, arg % 2 == 1);
                self.conns.push(c);
            }
            op::HANDSHAKE => {
                let hs = Message::Handshake(Handshake {
                    peer_id: PeerId::from_bytes([1 + byte(0) % 3; 32]),
                    swarm: None,
                    listen_port: Some(7712),
                });
                let frame = encode(&hs).expect("a valid handshake");
                self.ep.handle_frame(now, conn, body(frame));
            }
            op::FRAME => self
                .ep
                .handle_frame(now, conn, Bytes::copy_from_slice(payload)),
            op::CHANNEL_FRAME => {
                let inner = payload.get(1..).unwrap_or_default();
                let mut frames = (inner.len() as u32).to_le_bytes().to_vec();
                frames.extend_from_slice(inner);
                if let Some(b) = channel_frame(u32::from(byte(0)), &frames) {
                    self.ep.handle_frame(now, conn, b);
                }
            }
            op::OPEN => {
                let swarm = match byte(1) % 3 {
                    0 => a.seeded.id(),
                    1 => a.fetched.id(),
                    _ => ContentId::from_bytes([byte(1); 32]),
                };
                let msg = Message::OpenChannel {
                    channel: u32::from(byte(0)),
                    swarm,
                    answers: (byte(2) % 2 == 1).then(|| u32::from(byte(3))),
                };
                let frame = encode(&msg).expect("a valid open");
                self.ep.handle_frame(now, conn, body(frame));
            }
            op::BLOCK => self.block(conn, payload),
            op::SENT => {
                let unsent = self.unsent.get(&conn).copied().unwrap_or(0);
                let n = match byte(0) {
                    0 => unsent,
                    k => (u64::from(k) * 512).min(unsent),
                };
                if n > 0 {
                    self.unsent.insert(conn, unsent - n);
                    self.ep.handle_sent(conn, n);
                }
            }
            op::CLOSED => {
                self.unsent.remove(&conn);
                self.ep.handle_closed(now, conn);
            }
            op::TICK => {
                self.now = now + Duration::from_millis((u64::from(byte(0)) + 1) * 100);
                self.ep.handle_timeout(self.now);
                let now = self.now;
                // Whatever was due is done: a timer in the past would spin the driver.
                assert!(
                    self.ep.poll_timeout().is_none_or(|at| at > now),
                    "a timeout at or before {now:?} after handling it"
                );
            }
            op::OPEN_SWARM => {
                let id = a.pick(byte(0) % 2 == 1).id();
                self.ep.open_swarm(now, conn, id);
            }
            op::REPLACE_SWARM => {
                let fetched = byte(0) % 2 == 1;
                let art = a.pick(fetched);
                self.ep.remove_swarm(now, &art.id());
                if byte(0) & 2 == 0 {
                    self.seed += 1;
                    let swarm = if fetched {
                        // A node restarting a fetch starts from what it holds.
                        Swarm::with_manifest(
                            swarm_config(me()),
                            art.manifest.clone(),
                            self.held[1].clone(),
                            now,
                            self.seed,
                        )
                    } else {
                        seed_swarm(me(), art, now, self.seed)
                    };
                    self.ep.add_swarm(now, swarm);
                }
            }
            op::MANIFEST_PART => {
                let art = a.pick(byte(1) % 2 == 1);
                let cvs = art.manifest.piece_cv_bytes();
                let first = usize::from(byte(2));
                let end = (first + usize::from(byte(3))).min(cvs.len() / 32);
                let hashes = cvs.get(first * 32..end * 32).unwrap_or_default();
                let msg = Message::ManifestPart {
                    first: u32::from(byte(2)),
                    hashes,
                };
                if let Some(frame) = encode(&msg)
                    && let Some(b) = channel_frame(u32::from(byte(0)), &frame)
                {
                    self.ep.handle_frame(now, conn, b);
                }
            }
            _ => unreachable!("op % COUNT"),
        }
        self.drain();
    }

    fn block(&mut self, conn: ConnId, payload: &[u8]) {
        let byte = |i: usize| payload.get(i).copied().unwrap_or(0);
        let (channel, flags, piece, index) = (
            u32::from(byte(0)),
            byte(1),
            u32::from(byte(2)),
            u32::from(byte(3)),
        );
        let art = Artifacts::get().pick(flags & 1 == 1);
        let offset = index * BLOCK_SIZE;
        let mut data = match art.piece(piece) {
            Some(p) if (offset as usize) < p.len() => {
                let end = p.len().min((offset + BLOCK_SIZE) as usize);
                p[offset as usize..end].to_vec()
            }
            _ => vec![0],
        };
        if flags & 2 != 0 {
            data[0] ^= 1;
        }
        if flags & 4 != 0 {
            self.ep
                .handle_block(self.now, conn, channel, piece, offset, Bytes::from(data));
        } else if let Some(frame) = encode(&Message::Block {
            piece,
            offset,
            data: &data,
        }) && let Some(b) = channel_frame(channel, &frame)
        {
            self.ep.handle_frame(self.now, conn, b);
        }
    }

    /// Carries out every output.
    fn drain(&mut self) {
        let mut outputs = 0;
        while let Some(out) = self.ep.poll_output() {
            outputs += 1;
            assert!(outputs < 100_000, "the endpoint's outputs do not end");
            match out {
                Output::Transmit(conn, segments) => {
                    let bytes: Vec<u8> = segments.concat();
                    check_frames(&bytes);
                    *self.unsent.entry(conn).or_default() += bytes.len() as u64;
                    self.sent.push((conn, bytes));
                }
                Output::Action(id, action) => self.act(id, action),
                Output::Close(conn, _) => {
                    self.unsent.remove(&conn);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Carries out a swarm's storage action at once.
    fn act(&mut self, id: ContentId, action: Action) {
        let a = Artifacts::get();
        let which = [a.seeded.id(), a.fetched.id()]
            .iter()
            .position(|&x| x == id)
            .expect("an action of one of our swarms");
        let art = a.pick(which == 1);
        let now = self.now;
        match action {
            Action::ReadPiece { piece } => {
                let bytes = art
                    .piece(piece)
                    .filter(|_| self.held[which].contains(piece))
                    .map(Bytes::copy_from_slice);
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_read(now, piece, bytes);
                }
            }
            Action::CheckPiece(check) => {
                let checked = check.run();
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_checked(now, checked);
                }
            }
            Action::StorePiece { piece, data } => {
                assert!(
                    art.manifest.verify_piece(piece, &data.to_bytes()).is_ok(),
                    "an unverified piece {piece} reached storage"
                );
                self.held[which].insert(piece);
                if let Some(s) = self.ep.swarm_mut(&id) {
                    s.handle_piece_stored(now, piece, Stored::Written);
                }
            }
            Action::StoreManifest(m) => {
                assert_eq!(m, art.manifest, "a wrong manifest reached storage");
            }
            Action::Disconnect { .. } => {
                panic!("the endpoint handed a swarm's Disconnect to the driver")
            }
        }
    }
}

/// Whatever the endpoint sends is whole frames that decode, and so are the frames inside its
/// `Channel` frames.
fn check_frames(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let (msg, used) = wire::decode_frame(bytes)
            .expect("the endpoint sent a frame that does not decode")
            .expect("the endpoint sent part of a frame");
        if let Message::Channel { mut frames, .. } = msg {
            while !frames.is_empty() {
                let (_, n) = wire::decode_frame(frames)
                    .expect("the endpoint sent a channel frame that does not decode")
                    .expect("the endpoint sent part of a frame in a channel");
                frames = &frames[n..];
            }
        }
        bytes = &bytes[used..];
    }
}
