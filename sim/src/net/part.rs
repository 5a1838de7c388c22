//! One partition's share of a run: the events of a contiguous range of nodes, handled in
//! time order, touching only those nodes.
//!
//! Nodes affect each other only through links, which take at least the least latency, so
//! partitions run apart for windows of that length ([`super::Net::run`]): what a node sends
//! to another partition's node waits in the outbox until the window ends.

use std::time::Duration;

use bytes::Bytes;
use pollen_core::{
    ContentId, Instant, PieceLayout,
    endpoint::{ConnId, EndpointEvent, LinkEnd, Output},
    swarm::{Action, DisconnectReason, Event, LinkId, Stored, Verdict},
};

use super::{
    Behavior, EXPRESS_BYTES, Ev, KEEPALIVE_TIMEOUT, MSS, Node, NodeId, REDIAL_PINNED,
    REDIAL_UNPRODUCTIVE, State, UNIT_BYTES, Unit,
    frames::{self, Item},
    link_of, transfer_time,
};
use crate::{fair::SharedLink, queue::EventQueue};

/// What every partition reads and none changes while partitions run.
pub(super) struct Shared {
    pub(super) latency: Duration,
    pub(super) inter_zone_latency: Duration,
    /// Packet loss rate on every link, 0 for none.
    pub(super) loss: f64,
    /// Each node's zone.
    pub(super) zones: Vec<u16>,
    /// Each node's behavior.
    pub(super) behaviors: Vec<Behavior>,
    /// The artifact's true bytes and layout, when real payloads are simulated.
    pub(super) truth: Option<(Bytes, PieceLayout)>,
    /// Lengths-only payloads: the zero bytes every block and piece is sliced from.
    pub(super) zeros: Option<Bytes>,
    /// The nodes that started with the whole artifact (a ticket's addresses).
    pub(super) origins: std::collections::BTreeSet<NodeId>,
}

impl Shared {
    pub(super) fn latency_between(&self, a: NodeId, b: NodeId) -> Duration {
        if self.zones[a] == self.zones[b] {
            self.latency
        } else {
            self.inter_zone_latency
        }
    }
}

/// A partition's event queue and what its nodes' events produced.
pub(super) struct Part {
    pub(super) queue: EventQueue<Ev>,
    /// The time of the event being handled.
    pub(super) now: Instant,
    /// Events for nodes outside the partition, in the order scheduled.
    pub(super) outbox: Vec<(Instant, Ev)>,
    /// Every event its nodes' swarms reported, with time and node.
    pub(super) trace: blake3::Hasher,
    pub(super) trace_len: u64,
    /// Bytes sent between nodes of different zones (taken at each window's end).
    pub(super) cross_zone_bytes: u64,
    /// Pieces stored without matching the truth (taken at each window's end).
    pub(super) bad_stores: Vec<(NodeId, u32)>,
    /// Nodes that completed (taken at each window's end).
    pub(super) completed: usize,
    /// Dial ticks nodes asked for, and when (taken at each window's end).
    pub(super) redials: Vec<(Instant, NodeId)>,
}

impl Part {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            queue: EventQueue::new(),
            now,
            outbox: Vec::new(),
            trace: blake3::Hasher::new(),
            trace_len: 0,
            cross_zone_bytes: 0,
            bad_stores: Vec::new(),
            completed: 0,
            redials: Vec::new(),
        }
    }
}

/// A partition's nodes, its state and the shared settings: what handling an event needs.
pub(super) struct Ctx<'a> {
    /// Nodes `base..base + nodes.len()`.
    pub(super) nodes: &'a mut [Node],
    pub(super) base: NodeId,
    pub(super) part: &'a mut Part,
    pub(super) shared: &'a Shared,
    /// Every event scheduled goes to the outbox (for steps over all nodes, between windows).
    pub(super) outbox_only: bool,
}

impl Ctx<'_> {
    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id - self.base]
    }

    fn node_ref(&self, id: NodeId) -> &Node {
        &self.nodes[id - self.base]
    }

    fn now(&self) -> Instant {
        self.part.now
    }

    /// Handles the partition's events before `until`, in time order, or until `completions`
    /// nodes completed.
    pub(super) fn run_until(&mut self, until: Instant, completions: usize) {
        while self.part.completed < completions
            && self.part.queue.peek_time().is_some_and(|at| at < until)
        {
            let Some((at, ev)) = self.part.queue.pop() else {
                break;
            };
            self.part.now = at;
            self.handle(at, ev);
        }
    }

    /// Handles one event of one of the partition's nodes.
    fn handle(&mut self, at: Instant, ev: Ev) {
        match ev {
            Ev::UpDone { node } => {
                if self.node(node).up.woken(at) {
                    if self.node(node).up.next_done().is_some_and(|t| t <= at) {
                        self.sent(node);
                    }
                    self.schedule_up(node);
                }
            }
            Ev::Resume { node, link } => {
                if self.node(node).state == State::Active {
                    self.node(node).up.resume(at, link);
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
                if self.node(node).down.woken(at) {
                    if self.node(node).down.next_done().is_some_and(|t| t <= at) {
                        self.received(node);
                    }
                    self.schedule_down(node);
                }
            }
            Ev::Disconnected { node, link } => {
                if self.node(node).state == State::Active
                    && self.node(node).links.remove(link).is_some()
                {
                    let n = self.node(node);
                    n.up.remove(at, link);
                    n.down.remove(at, link);
                    n.ep.handle_closed(at, ConnId(link.0));
                    self.schedule_up(node);
                    self.schedule_down(node);
                    self.drain(node);
                }
            }
            Ev::Timer { node } => {
                let n = self.node(node);
                if n.state == State::Active && n.timer == Some(at) {
                    n.timer = None;
                    n.ep.handle_timeout(at);
                    self.drain(node);
                }
            }
            Ev::Join { .. } | Ev::Leave { .. } | Ev::Crash { .. } | Ev::Redial { .. } => {
                unreachable!("joins, departures and crashes are handled between windows")
            }
        }
    }

    /// Schedules `ev`: in the partition's queue if it is for one of its nodes, else in the
    /// outbox.
    pub(super) fn schedule(&mut self, at: Instant, ev: Ev) {
        let to = ev.node();
        if !self.outbox_only && (self.base..self.base + self.nodes.len()).contains(&to) {
            self.part.queue.push(at, ev);
        } else {
            self.part.outbox.push((at, ev));
        }
    }

    fn deliver(&mut self, to: NodeId, link: LinkId, unit: Unit) {
        let now = self.now();
        if self.node(to).state != State::Active {
            return;
        }
        let Some(end) = self.node(to).links.get_mut(link) else {
            return;
        };
        assert!(
            unit.seq > end.delivered_unit,
            "unit {} delivered after unit {} on one link",
            unit.seq,
            end.delivered_unit
        );
        end.delivered_unit = unit.seq;
        let conn = ConnId(link.0);
        for item in unit.items {
            match item {
                Item::Frame { body, .. } => self.node(to).ep.handle_frame(now, conn, body),
                Item::Block {
                    channel,
                    piece,
                    offset,
                    len,
                    ..
                } => {
                    let data = self.zero_bytes(len as usize);
                    self.node(to)
                        .ep
                        .handle_block(now, conn, channel, piece, offset, data);
                }
            }
        }
        self.drain(to);
    }

    /// `len` zero bytes, shared (lengths-only payloads).
    fn zero_bytes(&self, len: usize) -> Bytes {
        let zeros = self.shared.zeros.as_ref().expect("lengths-only payloads");
        zeros.slice(..len.min(zeros.len()))
    }

    /// Carries out everything a node's endpoint asks for after an input.
    pub(super) fn drain(&mut self, id: NodeId) {
        if self.node(id).state != State::Active {
            return;
        }
        while let Some(out) = self.node(id).ep.poll_output() {
            match out {
                Output::Transmit(conn, segments) => {
                    let handed: u64 = segments.iter().map(|b| b.len() as u64).sum();
                    let items = frames::items(
                        &segments,
                        self.shared.behaviors[id],
                        self.shared.zeros.is_some(),
                    );
                    // What a misbehaving node leaves out counts as sent, or its window would
                    // never drain.
                    let kept: u64 = items.iter().map(Item::wire_len).sum();
                    if handed > kept {
                        self.node(id).ep.handle_sent(conn, handed - kept);
                    }
                    self.transmit(id, link_of(conn), items);
                }
                Output::Action(swarm, action) => self.act(id, swarm, action),
                Output::Close(conn, _) => self.close(id, link_of(conn)),
                Output::Event(event) => self.record(id, &event),
            }
        }
        let now = self.now();
        if let Some(at) = self.node(id).ep.poll_timeout() {
            let at = at.max(now);
            if self.node(id).timer.is_none_or(|t| at < t) {
                self.node(id).timer = Some(at);
                self.schedule(at, Ev::Timer { node: id });
            }
        }
    }

    /// A node's endpoint closed a connection: the peer sees it close after the latency.
    fn close(&mut self, id: NodeId, link: LinkId) {
        let now = self.now();
        if let Some(end) = self.node(id).links.remove(link) {
            self.node(id).up.remove(now, link);
            self.node(id).down.remove(now, link);
            self.schedule_up(id);
            self.schedule_down(id);
            let at = now + self.shared.latency_between(id, end.peer);
            self.schedule(
                at,
                Ev::Disconnected {
                    node: end.peer,
                    link: end.peer_link,
                },
            );
        }
    }

    /// The swarm of artifact `swarm` at node `id`.
    fn swarm(&mut self, id: NodeId, swarm: &ContentId) -> &mut pollen_core::swarm::Swarm {
        self.node(id)
            .ep
            .swarm_mut(swarm)
            .expect("a node's swarm stays")
    }

    fn act(&mut self, id: NodeId, swarm: ContentId, action: Action) {
        let now = self.now();
        match action {
            Action::ReadPiece { piece } => {
                let data = match &self.shared.zeros {
                    Some(_) => self
                        .node_ref(id)
                        .ep
                        .swarm(&swarm)
                        .and_then(|s| s.manifest())
                        .and_then(|m| m.layout().piece_len(piece))
                        .map(|len| self.zero_bytes(len as usize)),
                    None => self.node_ref(id).store.get(&piece).cloned(),
                };
                self.swarm(id, &swarm).handle_piece_read(now, piece, data);
            }
            Action::StorePiece { piece, data } => {
                if self.shared.zeros.is_none() {
                    let data = data.to_bytes();
                    if !self.matches_truth(piece, &data) {
                        self.part.bad_stores.push((id, piece));
                    }
                    self.node(id).store.insert(piece, data);
                }
                self.swarm(id, &swarm)
                    .handle_piece_stored(now, piece, Stored::Written);
            }
            Action::CheckPiece(check) => {
                let checked = if self.shared.zeros.is_some() {
                    // The data is not there to hash: a piece is good unless its sender
                    // corrupts blocks (each piece comes from one link).
                    let node = self.node_ref(id);
                    let sender = node
                        .ep
                        .link_conn(check.link())
                        .and_then(|conn| node.links.get(link_of(conn)))
                        .map(|l| l.peer);
                    let corrupt =
                        sender.is_some_and(|s| self.shared.behaviors[s] == Behavior::CorruptBlocks);
                    check.simulated(if corrupt {
                        Verdict::Corrupt
                    } else {
                        Verdict::Matched
                    })
                } else {
                    check.run()
                };
                self.swarm(id, &swarm).handle_piece_checked(now, checked);
            }
            Action::StoreManifest(_) => {}
            Action::Disconnect { .. } => unreachable!("the endpoint keeps a swarm's links"),
        }
    }

    fn matches_truth(&self, piece: u32, data: &[u8]) -> bool {
        let Some((truth, layout)) = &self.shared.truth else {
            return true;
        };
        let Some(range) = layout.piece_range(piece) else {
            return false;
        };
        truth.get(range.start as usize..range.end as usize) == Some(data)
    }

    fn record(&mut self, id: NodeId, event: &EndpointEvent) {
        let now = self.now();
        // Every node has the one swarm: its events go without its id.
        let line = match event {
            EndpointEvent::Swarm(_, e) => format!("{} {id} {e:?}\n", now.as_micros()),
            e => format!("{} {id} {e:?}\n", now.as_micros()),
        };
        self.part.trace.update(line.as_bytes());
        self.part.trace_len += 1;
        if let EndpointEvent::LinkClosed {
            conn,
            reason: LinkEnd::Swarm(DisconnectReason::Unproductive),
            ..
        } = event
        {
            self.unproductive(id, *conn);
        }
        let EndpointEvent::Swarm(_, event) = event else {
            return;
        };
        match event {
            Event::Complete if self.node_ref(id).completed_at.is_none() => {
                self.node(id).completed_at = Some(now);
                self.part.completed += 1;
            }
            Event::PeerBanned { peer, .. } => self.node(id).banned.push(*peer),
            _ => {}
        }
    }

    /// A node's swarm dropped a link that gave it nothing: as a node does, it leaves that
    /// peer alone for a while (an origin, which a ticket names, only briefly) and dials
    /// others at its next dial tick.
    fn unproductive(&mut self, id: NodeId, conn: ConnId) {
        let now = self.now();
        let Some(peer) = self.node_ref(id).links.get(link_of(conn)).map(|l| l.peer) else {
            return;
        };
        let wait = if self.shared.origins.contains(&peer) {
            REDIAL_PINNED
        } else {
            REDIAL_UNPRODUCTIVE
        };
        self.node(id).retry_at.insert(peer, now + wait);
        // A node dials on a tick every second; ticks right after, and once the peer may be
        // dialed again, are the ones that can change anything.
        self.part.redials.push((now + REDIAL_PINNED, id));
        self.part.redials.push((now + wait + REDIAL_PINNED, id));
    }

    /// Queues what a node sends on a link at its uplink, cut into units.
    fn transmit(&mut self, from: NodeId, link: LinkId, items: Vec<Item>) {
        if !self.node_ref(from).links.contains(link) {
            return;
        }
        let mut unit = Unit::empty();
        for item in items {
            let block = item.is_block();
            unit.len += item.wire_len();
            unit.items.push(item);
            if block || unit.len >= UNIT_BYTES {
                let full = std::mem::replace(&mut unit, Unit::empty());
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
        let now = self.now();
        let node = self.node(from);
        let Some(end) = node.links.get_mut(link) else {
            return;
        };
        if !block && append(&mut node.up, now, link, &mut unit) {
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
        node.bytes_sent += len;
        node.ep.handle_sent(ConnId(link.0), len);
        if self.shared.zones[from] != self.shared.zones[to] {
            self.part.cross_zone_bytes += len;
        }
        // A crashed receiver drops it on arrival.
        let at = through + self.shared.latency_between(from, to);
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

    /// Makes sure an `UpDone` event comes no later than the uplink's next finish.
    fn schedule_up(&mut self, node: NodeId) {
        if let Some(at) = self.node(node).up.wake() {
            self.schedule(at, Ev::UpDone { node });
        }
    }

    /// Makes sure a `DownDone` event comes no later than the downlink's next finish.
    fn schedule_down(&mut self, node: NodeId) {
        if let Some(at) = self.node(node).down.wake() {
            self.schedule(at, Ev::DownDone { node });
        }
    }

    /// A unit left the sender's uplink: it reaches the peer's downlink after the link's loss
    /// cap (if any) and the latency.
    fn sent(&mut self, from: NodeId) {
        let now = self.now();
        let Some(done) = self.node(from).up.complete(now) else {
            return;
        };
        let link = done.flow;
        let Some(&end) = self.node_ref(from).links.get(link) else {
            // Closed links' units are dropped when they close.
            self.schedule_up(from);
            return;
        };
        let to = end.peer;
        let len = done.len;
        self.node(from).bytes_sent += len;
        self.node(from).ep.handle_sent(ConnId(link.0), len);
        self.drain(from);
        if self.shared.zones[from] != self.shared.zones[to] {
            self.part.cross_zone_bytes += len;
        }
        let latency = self.shared.latency_between(from, to);
        let mut through = now;
        if self.shared.loss > 0.0 {
            let rtt = 2.0 * latency.as_secs_f64().max(1e-4);
            let cap = (1.22 * MSS / (rtt * self.shared.loss.sqrt())) as u64;
            through = through.max(done.started + transfer_time(len, cap));
        }
        if through > now {
            self.schedule(through, Ev::Resume { node: from, link });
        } else {
            self.node(from).up.resume(now, link);
        }
        self.schedule_up(from);
        // Not ahead of an express unit sent before it on this link; a crashed receiver
        // drops it on arrival.
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
        let now = self.now();
        let node = self.node(to);
        if node.state != State::Active || !node.links.contains(link) {
            return;
        }
        if express && node.down.is_idle(link) {
            self.deliver(to, link, unit);
            return;
        }
        let down = &mut node.down;
        if unit.has_block() || !append(down, now, link, &mut unit) {
            down.push(now, link, unit.len, unit);
        }
        self.schedule_down(to);
    }

    /// A unit went through the receiver's downlink: deliver it.
    fn received(&mut self, to: NodeId) {
        let now = self.now();
        let Some(done) = self.node(to).down.complete(now) else {
            return;
        };
        self.node(to).down.resume(now, done.flow);
        self.schedule_down(to);
        self.deliver(to, done.flow, done.unit);
    }

    /// Takes a node out of the run: gracefully (its peers see its links close after the
    /// latency) or by a crash (its peers' keepalive notices much later). Returns whether it
    /// was running and incomplete.
    pub(super) fn stop(&mut self, node: NodeId, how: State) -> bool {
        let now = self.now();
        let n = self.node(node);
        n.state = how;
        n.timer = None;
        // Pending UpDone and DownDone events no longer count.
        n.up.clear(now);
        n.down.clear(now);
        let incomplete = n.completed_at.is_none();
        let links = std::mem::take(&mut n.links);
        for end in links.values() {
            let at = match how {
                State::Left => now + self.shared.latency_between(node, end.peer),
                _ => now + KEEPALIVE_TIMEOUT,
            };
            self.schedule(
                at,
                Ev::Disconnected {
                    node: end.peer,
                    link: end.peer_link,
                },
            );
        }
        incomplete
    }
}

/// Adds a unit of a few small frames (haves, requests) to the last unit its flow has queued
/// or in service on `shared`, as a stream carries them right behind it; saves the three
/// events of a unit of its own. At most [`EXPRESS_BYTES`] are appended to a unit, so what it
/// carries is delayed by little. Returns whether it was appended (`unit` is then emptied).
pub(super) fn append(
    shared: &mut SharedLink<Unit>,
    now: Instant,
    link: LinkId,
    unit: &mut Unit,
) -> bool {
    let len = unit.len;
    if len > EXPRESS_BYTES {
        return false;
    }
    let Some(last) = shared.append(now, link, len, |u| u.appended + len <= EXPRESS_BYTES) else {
        return false;
    };
    last.len += len;
    last.appended += len;
    last.items.append(&mut unit.items);
    true
}
