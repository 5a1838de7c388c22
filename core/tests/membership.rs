//! Gossip membership behaviour: small clusters of real `Membership` state machines, wired
//! together by an in-test network with simulated time, a fixed latency and switches that drop
//! packets.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use pollen_core::{
    ContentId, Instant, PeerId,
    membership::{
        Holding, MAX_VERSION_STEP, MAX_ZONE_LEN, MemberEvent, Membership, MembershipConfig,
        NodeState, Record, Role, StateError, Status,
        packet::{self, Body, Header, Packet},
    },
};

/// One-way delay of every packet.
const LATENCY: Duration = Duration::from_millis(1);

/// Most consecutive steps without time advancing before the harness calls it a livelock.
const MAX_STALLS: u32 = 10_000;

fn id(i: usize) -> PeerId {
    PeerId::from_bytes([u8::try_from(i + 1).expect("few nodes"); 32])
}

fn addr(i: usize) -> String {
    format!("n{i}")
}

fn state(i: usize, zone: &str) -> NodeState {
    NodeState {
        addrs: vec![addr(i)],
        zone: zone.to_string(),
        ..NodeState::default()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Sees every packet from one node to another that the other switches let through: may
/// observe it, rewrite it, or drop it (returns `true`).
type TamperFn = Box<dyn FnMut(usize, usize, &mut Packet) -> bool>;

struct Flight {
    at: Instant,
    from: usize,
    to: usize,
    payload: Vec<u8>,
}

/// Nodes `n0`, `n1`, ... (ids `[1; 32]`, `[2; 32]`, ...) and the packets between them.
struct Net {
    now: Instant,
    cfg: MembershipConfig,
    /// Each node's identity (`id(i)` unless a test replaced the node).
    ids: Vec<PeerId>,
    nodes: Vec<Membership>,
    /// Every event each node emitted, in order.
    events: Vec<Vec<MemberEvent>>,
    flights: VecDeque<Flight>,
    /// Crashed nodes: nothing reaches them, nothing leaves them, their timers do not run.
    down: BTreeSet<usize>,
    /// Directed links that drop every packet.
    cut: BTreeSet<(usize, usize)>,
    tamper: Option<TamperFn>,
    stalls: u32,
}

impl Net {
    /// Nodes with `states`, none joined to any other.
    fn new(cfg: &MembershipConfig, states: Vec<NodeState>) -> Self {
        let nodes: Vec<Membership> = states
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Membership::new(cfg.clone(), id(i), s, Instant::ZERO, 0x5eed + i as u64)
                    .expect("valid state")
            })
            .collect();
        let events = vec![Vec::new(); nodes.len()];
        Self {
            now: Instant::ZERO,
            cfg: cfg.clone(),
            ids: (0..nodes.len()).map(id).collect(),
            nodes,
            events,
            flights: VecDeque::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            tamper: None,
            stalls: 0,
        }
    }

    /// `zones.len()` nodes, all joined through `n0` and seeing each other alive.
    fn joined(cfg: &MembershipConfig, zones: &[&str]) -> Self {
        let states = zones.iter().enumerate().map(|(i, z)| state(i, z)).collect();
        let mut net = Self::new(cfg, states);
        for i in 1..net.nodes.len() {
            net.nodes[i].join(Instant::ZERO, vec![addr(0)]);
        }
        net.collect();
        assert!(
            net.run_until(secs(30), Net::all_alive),
            "the cluster formed within 30 s"
        );
        net
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| !self.down.contains(i))
    }

    /// Every live node sees every other live node alive, and nothing else present.
    fn all_alive(&self) -> bool {
        let live: Vec<usize> = self.live().collect();
        live.iter().all(|&i| {
            self.nodes[i].present_count() == live.len() - 1
                && live.iter().filter(|&&j| j != i).all(|&j| {
                    self.nodes[i]
                        .member(&self.ids[j])
                        .is_some_and(|m| m.status == Status::Alive)
                })
        })
    }

    fn status(&self, observer: usize, of: usize) -> Option<Status> {
        self.nodes[observer].member(&self.ids[of]).map(|m| m.status)
    }

    fn saw(&self, i: usize, event: MemberEvent) -> bool {
        self.events[i].contains(&event)
    }

    /// Moves every node's transmits onto the network and its events into `events`.
    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit() {
                let mut packet = packet::decode(&t.payload).expect("every packet sent decodes");
                assert_eq!(packet.header.sender, self.ids[i], "a node sends as itself");
                if self.down.contains(&i) {
                    continue;
                }
                let Some(to) = t
                    .addr
                    .strip_prefix('n')
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n < self.nodes.len())
                else {
                    continue;
                };
                // (A packet for a member of the harness goes to its address; one for a stranger
                // may go anywhere its record said.)
                if let Some(peer) = t.to
                    && let Some(k) = self.ids.iter().position(|p| *p == peer)
                {
                    assert_eq!(k, to, "a packet for a member goes to its address");
                }
                if self.cut.contains(&(i, to)) || self.down.contains(&to) {
                    continue;
                }
                let mut payload = t.payload;
                if let Some(tamper) = &mut self.tamper {
                    if tamper(i, to, &mut packet) {
                        continue;
                    }
                    payload = forge(packet.header.sender, packet.header.body, &packet.records);
                }
                self.flights.push_back(Flight {
                    at: self.now + LATENCY,
                    from: i,
                    to,
                    payload,
                });
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Advances to the next delivery or timeout (at most `limit`) and runs it.
    fn step(&mut self, limit: Instant) {
        let mut next = limit;
        if let Some(f) = self.flights.front() {
            next = next.min(f.at);
        }
        for i in self.live() {
            if let Some(t) = self.nodes[i].poll_timeout() {
                next = next.min(t);
            }
        }
        if next > self.now {
            self.now = next;
            self.stalls = 0;
        } else {
            self.stalls += 1;
            assert!(self.stalls < MAX_STALLS, "time stopped at {:?}", self.now);
        }
        while let Some(f) = self.flights.front()
            && f.at <= self.now
        {
            let Some(f) = self.flights.pop_front() else {
                break;
            };
            if self.down.contains(&f.to) {
                continue;
            }
            let now = self.now;
            self.nodes[f.to]
                .handle_packet(now, &addr(f.from), &f.payload)
                .expect("a member's packet is accepted");
        }
        let due: Vec<usize> = self
            .live()
            .filter(|&i| self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now))
            .collect();
        for i in due {
            let now = self.now;
            self.nodes[i].handle_timeout(now);
        }
        self.collect();
    }

    /// Runs until `done` holds (true) or `d` of simulated time passed (false).
    fn run_until(&mut self, d: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let limit = self.now + d;
        loop {
            if done(self) {
                return true;
            }
            if self.now >= limit {
                return false;
            }
            self.step(limit);
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Delivers a hand-made packet to node `to` as if it came from node `from`.
    fn inject(&mut self, from: usize, to: usize, payload: &[u8]) {
        self.inject_from(&addr(from), to, payload);
    }

    /// Delivers a hand-made packet to node `to` as if it came from address `from`.
    fn inject_from(&mut self, from: &str, to: usize, payload: &[u8]) {
        let now = self.now;
        self.nodes[to]
            .handle_packet(now, from, payload)
            .expect("a well-formed packet is accepted");
        self.collect();
    }

    /// Starts node `i` now, as a fresh process: a new state machine with identity `who`,
    /// joining through the nodes `joins`.
    fn start(&mut self, i: usize, who: PeerId, joins: &[usize]) {
        let now = self.now;
        self.down.remove(&i);
        self.ids[i] = who;
        self.nodes[i] = Membership::new(self.cfg.clone(), who, state(i, ""), now, 0xa11 + i as u64)
            .expect("valid state");
        if !joins.is_empty() {
            self.nodes[i].join(now, joins.iter().map(|&j| addr(j)).collect());
        }
        self.collect();
    }

    /// Cuts (or, with `cut` false, heals) every link between the nodes `a` and the nodes `b`.
    fn partition(&mut self, a: &[usize], b: &[usize], cut: bool) {
        for &i in a {
            for &j in b {
                for link in [(i, j), (j, i)] {
                    if cut {
                        self.cut.insert(link);
                    } else {
                        self.cut.remove(&link);
                    }
                }
            }
        }
    }

    /// Whether every node in `group` sees every other node in it alive.
    fn group_alive(&self, group: &[usize]) -> bool {
        group.iter().all(|&i| {
            group
                .iter()
                .filter(|&&j| j != i)
                .all(|&j| self.status(i, j) == Some(Status::Alive))
        })
    }
}

/// `n` nodes that know each other from the start, as if long converged (no join addresses).
fn bootstrapped(cfg: &MembershipConfig, n: usize) -> Net {
    let mut net = Net::new(cfg, (0..n).map(|i| state(i, "")).collect());
    let records: Vec<Record> = net.nodes.iter().map(Membership::own_record).collect();
    for i in 0..n {
        for (j, r) in records.iter().enumerate() {
            if i != j {
                net.nodes[i].insert_record(Instant::ZERO, r.clone());
            }
        }
    }
    net.collect();
    net
}

/// Deterministic pseudo-random identities (xorshift), distinct from every `id(i)`.
fn strangers(seed: u64, n: usize) -> Vec<PeerId> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            bytes[0] |= 0xf0;
            PeerId::from_bytes(bytes)
        })
        .collect()
}

/// A packet from `sender` with `body` and `records`, built with the public packet API.
fn forge(sender: PeerId, body: Body, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    packet::start(&Header { sender, body }, &mut out);
    let encoded: Vec<Vec<u8>> = records.iter().map(packet::encode_record).collect();
    packet::push_records(encoded.iter().map(Vec::as_slice), &mut out);
    out
}

/// A record saying node `of` (as `net` node `of` currently is) is suspect, accused by `by`.
fn suspicion_of(net: &Net, of: usize, by: usize) -> Record {
    let m = &net.nodes[of];
    Record {
        id: id(of),
        version: m.version(),
        status: Status::Suspect,
        by: id(by),
        state: Some(m.state().clone()),
    }
}

#[test]
fn nodes_joining_through_one_address_all_see_each_other_alive() {
    let cfg = MembershipConfig::default();
    let net = Net::joined(&cfg, &["", "", ""]);
    for i in 0..3 {
        let n = &net.nodes[i];
        assert_eq!(n.present_count(), 2, "n{i} sees both others");
        let mut seen: Vec<(PeerId, Status)> = n.members().map(|m| (m.id, m.status)).collect();
        seen.sort();
        let expected: Vec<(PeerId, Status)> = (0..3)
            .filter(|&j| j != i)
            .map(|j| (id(j), Status::Alive))
            .collect();
        assert_eq!(seen, expected, "n{i}'s member table");
        for j in (0..3).filter(|&j| j != i) {
            assert!(net.saw(i, MemberEvent::Joined(id(j))), "n{i}: Joined(n{j})");
            let m = n.member(&id(j)).expect("known");
            assert_eq!(m.state.addrs, vec![addr(j)], "n{i} knows n{j}'s address");
            assert_eq!(m.version, net.nodes[j].version());
        }
    }
    // n1 and n2 never talked to each other before joining, only to n0.
    assert!(net.saw(1, MemberEvent::Joined(id(2))));
    assert!(net.saw(2, MemberEvent::Joined(id(1))));
}

#[test]
fn a_join_is_retried_until_the_seed_answers() {
    let cfg = MembershipConfig::default();
    let mut net = Net::new(&cfg, vec![state(0, ""), state(1, "")]);
    net.cut.insert((1, 0));
    net.nodes[1].join(Instant::ZERO, vec![addr(0)]);
    net.collect();
    net.run_for(secs(5));
    assert_eq!(net.nodes[0].present_count(), 0, "no join got through");
    net.cut.clear();
    // The retries back off, but never wait longer than the reconnect interval.
    assert!(
        net.run_until(cfg.reconnect_interval + secs(1), Net::all_alive),
        "the next retry joins"
    );
}

#[test]
fn a_suspected_node_refutes_with_a_higher_version() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", ""]);
    let a = 2;
    let before = net.nodes[a].version();
    let accusation = forge(id(1), Body::Gossip, &[suspicion_of(&net, a, 1)]);
    // n0 believes it; A hears it too.
    net.inject(1, 0, &accusation);
    assert_eq!(net.status(0, a), Some(Status::Suspect));
    assert!(net.saw(0, MemberEvent::Suspected(id(a))));
    net.inject(1, a, &accusation);
    let after = net.nodes[a].version();
    assert!(after > before, "A raised its version: {before} -> {after}");
    assert!(net.saw(a, MemberEvent::Refuted));

    assert!(
        net.run_until(secs(10), |net| (0..2).all(|i| net.nodes[i]
            .member(&id(a))
            .is_some_and(|m| m.status == Status::Alive && m.version == after))),
        "everyone sees A alive at version {after}"
    );
    assert!(net.saw(0, MemberEvent::Recovered(id(a))));
    for i in 0..3 {
        assert!(
            !net.events[i]
                .iter()
                .any(|e| matches!(e, MemberEvent::Died(_))),
            "n{i} declared nobody dead"
        );
    }
}

#[test]
fn a_sync_digest_listing_us_as_suspect_makes_us_refute() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", ""]);
    let a = 2;
    let before = net.nodes[a].version();
    let digest = vec![packet::Digest {
        id: id(a),
        version: before,
        status: Status::Suspect,
    }];
    let body = Body::SyncRequest {
        start: PeerId::from_bytes([0; 32]),
        end: None,
        digest,
        full: false,
    };
    net.inject(1, a, &forge(id(1), body, &[]));
    assert!(net.nodes[a].version() > before, "A raised its version");
    assert!(net.saw(a, MemberEvent::Refuted));
}

#[test]
fn an_accusation_at_an_older_version_is_ignored() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", ""]);
    net.nodes[1]
        .set_state(NodeState {
            load: 5,
            ..state(1, "")
        })
        .expect("valid");
    net.run_for(secs(2));
    let version = net.nodes[1].version();
    assert!(version >= 2);
    let mut stale = suspicion_of(&net, 1, 0);
    stale.version = version - 1;
    net.inject(0, 1, &forge(id(0), Body::Gossip, &[stale]));
    assert_eq!(net.nodes[1].version(), version, "nothing to refute");
    assert!(!net.saw(1, MemberEvent::Refuted));
}

#[test]
fn one_forged_accusation_does_not_kill_a_reachable_node() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", "", ""]);
    let d = 3;
    let before = net.nodes[d].version();
    // n1 alone accuses D, to n2.
    let accusation = forge(id(1), Body::Gossip, &[suspicion_of(&net, d, 1)]);
    net.inject(1, 2, &accusation);
    assert!(net.saw(2, MemberEvent::Suspected(id(d))));
    net.run_for(secs(60));
    assert!(
        net.saw(d, MemberEvent::Refuted),
        "D heard of it and refuted"
    );
    let version = net.nodes[d].version();
    assert!(version > before);
    for i in 0..3 {
        assert!(
            !net.saw(i, MemberEvent::Died(id(d))),
            "n{i} declared D dead"
        );
        let m = net.nodes[i].member(&id(d)).expect("known");
        assert_eq!(
            (m.status, m.version),
            (Status::Alive, version),
            "n{i}'s view of D"
        );
    }
    assert!(net.all_alive());
}

#[test]
fn one_accuser_is_not_enough_even_when_the_accused_cannot_refute() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", "", ""]);
    let d = 3;
    // D answers probes, but never hears that it is suspected (the news is cut out of every
    // packet to it), so it cannot refute: only the rule that one member's word never kills a
    // node keeps it alive.
    let d_id = id(d);
    net.tamper = Some(Box::new(move |_, to, p: &mut Packet| {
        if to == d {
            p.records
                .retain(|r| r.id != d_id || r.status == Status::Alive);
            // A sync request's digest would also tell D (and D refutes from it).
            if let Body::SyncRequest { digest, .. } = &mut p.header.body {
                digest.retain(|e| e.id != d_id);
            }
        }
        false
    }));
    let accusation = forge(id(1), Body::Gossip, &[suspicion_of(&net, d, 1)]);
    net.inject(1, 2, &accusation);
    net.run_for(secs(120));
    assert!(!net.saw(d, MemberEvent::Refuted), "D never heard of it");
    for i in 0..3 {
        assert!(
            !net.saw(i, MemberEvent::Died(id(d))),
            "n{i} declared D dead"
        );
        let status = net.status(i, d).expect("known");
        assert!(status.is_present(), "n{i} sees D as {status:?}");
    }
    assert!(
        net.saw(0, MemberEvent::Suspected(id(d))),
        "the rumor did spread"
    );
}

#[test]
fn a_broken_link_is_bridged_by_indirect_probes() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", "", ""]);
    net.cut.insert((1, 3));
    net.cut.insert((3, 1));
    net.run_for(secs(60));
    for i in 0..4 {
        assert!(
            !net.events[i]
                .iter()
                .any(|e| matches!(e, MemberEvent::Suspected(_) | MemberEvent::Died(_))),
            "n{i} suspected someone: {:?}",
            net.events[i]
        );
    }
    assert!(net.all_alive());
}

#[test]
fn a_crashed_node_is_declared_dead_by_everyone_and_nobody_else_is() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", "", "", ""]);
    let dead = 4;
    net.down.insert(dead);
    let others = 0..4;
    assert!(
        net.run_until(secs(60), |net| others
            .clone()
            .all(|i| net.status(i, dead) == Some(Status::Dead))),
        "all declared n{dead} dead within 60 s"
    );
    for i in others {
        assert!(net.saw(i, MemberEvent::Died(id(dead))), "n{i}: Died");
        assert_eq!(net.nodes[i].present_count(), 3);
        assert!(
            !net.events[i].iter().any(|e| matches!(
                e,
                MemberEvent::Suspected(p) | MemberEvent::Died(p) if *p != id(dead)
            )),
            "n{i} suspected a live node: {:?}",
            net.events[i]
        );
    }
}

#[test]
fn a_node_declared_dead_comes_back_after_the_partition_heals() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", ""]);
    let p = 2;
    for i in 0..2 {
        net.cut.insert((i, p));
        net.cut.insert((p, i));
    }
    assert!(
        net.run_until(secs(60), |net| (0..2)
            .all(|i| net.status(i, p) == Some(Status::Dead))),
        "the isolated node is declared dead"
    );
    // Alone, it cannot gather a second accuser: it suspects the others but kills nobody.
    assert!(
        !net.events[p]
            .iter()
            .any(|e| matches!(e, MemberEvent::Died(_)))
    );
    net.cut.clear();
    assert!(
        net.run_until(secs(30), Net::all_alive),
        "after the heal everyone is alive again"
    );
    assert!(net.saw(p, MemberEvent::Refuted));
    assert!(
        net.saw(0, MemberEvent::Joined(id(p))),
        "n0 saw it come back"
    );
}

#[test]
fn dead_members_are_forgotten_after_dead_retention() {
    let cfg = MembershipConfig {
        dead_retention: secs(10),
        ..MembershipConfig::default()
    };
    let mut net = Net::joined(&cfg, &["", "", ""]);
    net.down.insert(2);
    assert!(
        net.run_until(secs(60), |net| (0..2)
            .all(|i| net.status(i, 2) == Some(Status::Dead))),
        "declared dead"
    );
    // Anti-entropy must not hand the dead record back and forth forever.
    assert!(
        net.run_until(secs(120), |net| (0..2).all(|i| net.status(i, 2).is_none())),
        "forgotten: n0 {:?}, n1 {:?}",
        net.status(0, 2),
        net.status(1, 2)
    );
}

#[test]
fn a_new_holding_spreads_and_holders_prefer_the_same_zone() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["a", "b", "a", "b"]);
    let content = ContentId::from_bytes([7; 32]);
    let holding = |complete| Holding {
        id: content,
        complete,
    };
    // n0 (zone a): complete and lightly loaded; n1 (zone b): partial and busy; n2 (zone a):
    // partial and idle.
    for (i, zone, complete, load) in [(0, "a", true, 10), (1, "b", false, 90), (2, "a", false, 0)] {
        let before = net.nodes[i].version();
        net.nodes[i]
            .set_state(NodeState {
                load,
                holdings: vec![holding(complete)],
                ..state(i, zone)
            })
            .expect("valid");
        assert_eq!(net.nodes[i].version(), before + 1);
    }
    net.collect();
    let spread = |net: &Net| {
        (0..4).all(|obs| {
            (0..3).filter(|&i| i != obs).all(|i| {
                net.nodes[obs]
                    .member(&id(i))
                    .is_some_and(|m| m.state.holdings.contains(&net.nodes[i].state().holdings[0]))
            })
        })
    };
    assert!(net.run_until(secs(10), spread), "the holdings spread");
    assert!(net.saw(3, MemberEvent::Updated(id(0))));
    let order = |obs: usize| -> Vec<PeerId> {
        net.nodes[obs]
            .holders(&content)
            .iter()
            .map(|(m, _)| m.id)
            .collect()
    };
    // n3 is in zone b: n1 first although partial and busy, then complete before partial.
    assert_eq!(order(3), vec![id(1), id(0), id(2)]);
    let holders = net.nodes[3].holders(&content);
    assert_eq!(holders[0].1, holding(false));
    assert_eq!(holders[1].1, holding(true));
    // n0 is in zone a (and never lists itself).
    assert_eq!(order(0), vec![id(2), id(1)]);
    assert!(
        net.nodes[3]
            .holders(&ContentId::from_bytes([8; 32]))
            .is_empty()
    );
}

#[test]
fn an_overlong_zone_is_refused_and_changes_nothing() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["a", "a"]);
    net.run_for(secs(5));
    let version = net.nodes[0].version();
    let old = net.nodes[0].state().clone();
    let rumors = net.nodes[0].rumors_in_flight();
    let overlong = NodeState {
        zone: "z".repeat(MAX_ZONE_LEN + 1),
        ..state(0, "")
    };
    assert_eq!(net.nodes[0].set_state(overlong), Err(StateError::Zone));
    assert_eq!(net.nodes[0].version(), version);
    assert_eq!(net.nodes[0].state(), &old);
    assert_eq!(net.nodes[0].rumors_in_flight(), rumors);
    net.run_for(secs(5));
    let seen = net.nodes[1].member(&id(0)).expect("known");
    assert_eq!((seen.version, &seen.state.zone), (version, &old.zone));
    // The longest allowed zone is accepted.
    let longest = NodeState {
        zone: "z".repeat(MAX_ZONE_LEN),
        ..state(0, "")
    };
    assert_eq!(net.nodes[0].set_state(longest), Ok(()));
    assert_eq!(net.nodes[0].version(), version + 1);
}

#[test]
fn an_unchanged_state_is_not_news() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["a", "a"]);
    let version = net.nodes[0].version();
    net.nodes[0].set_state(state(0, "a")).expect("valid");
    assert_eq!(net.nodes[0].version(), version);
}

#[test]
fn a_node_that_leaves_is_seen_as_left_not_dead() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", ""]);
    let l = 2;
    let now = net.now;
    net.nodes[l].leave(now);
    net.collect();
    assert!(
        net.run_until(secs(5), |net| (0..2)
            .all(|i| net.status(i, l) == Some(Status::Left))),
        "the others saw it leave"
    );
    for i in 0..2 {
        assert!(net.saw(i, MemberEvent::Left(id(l))));
        assert_eq!(net.nodes[i].present_count(), 1);
    }
    // It stops talking; it must not be declared dead, nor come back.
    net.down.insert(l);
    net.run_for(secs(60));
    for i in 0..2 {
        assert_eq!(net.status(i, l), Some(Status::Left));
        assert!(!net.saw(i, MemberEvent::Died(id(l))));
        assert_eq!(
            net.nodes[i].member(&id(l)).map(|m| m.state.addrs.len()),
            Some(0)
        );
    }
}

#[test]
fn anti_entropy_alone_spreads_a_member_nobody_gossips_about() {
    let cfg = MembershipConfig::default();
    let mut net = Net::new(&cfg, (0..3).map(|i| state(i, "")).collect());
    // n0 - n1 - n2: the ends know only the middle, and nothing is news.
    let records: Vec<Record> = net.nodes.iter().map(Membership::own_record).collect();
    net.nodes[0].insert_record(Instant::ZERO, records[1].clone());
    net.nodes[1].insert_record(Instant::ZERO, records[0].clone());
    net.nodes[1].insert_record(Instant::ZERO, records[2].clone());
    net.nodes[2].insert_record(Instant::ZERO, records[1].clone());
    assert!(net.nodes[0].member(&id(2)).is_none());
    assert!(net.nodes.iter().all(|n| n.rumors_in_flight() == 0));
    let mut gossip = false;
    let learned = net.run_until(secs(10), |net| {
        gossip |= net.nodes.iter().any(|n| n.rumors_in_flight() > 0);
        net.all_alive()
    });
    assert!(learned, "the ends learned of each other by sync");
    assert!(!gossip, "no rumor was ever in flight");
    assert!(net.saw(0, MemberEvent::Joined(id(2))));
    assert!(net.saw(2, MemberEvent::Joined(id(0))));
}

#[test]
fn anti_entropy_sweeps_the_id_space_in_bounded_ranges() {
    let max_digest = 1;
    let cfg = MembershipConfig {
        max_digest,
        ..MembershipConfig::default()
    };
    let n = 6;
    let mut net = Net::new(&cfg, (0..n).map(|i| state(i, "")).collect());
    let records: Vec<Record> = net.nodes.iter().map(Membership::own_record).collect();
    // Everyone but the last knows everyone but the last; the last knows only n1.
    let last = n - 1;
    for i in 0..last {
        for j in (0..last).filter(|&j| j != i) {
            net.nodes[i].insert_record(Instant::ZERO, records[j].clone());
        }
    }
    net.nodes[1].insert_record(Instant::ZERO, records[last].clone());
    net.nodes[last].insert_record(Instant::ZERO, records[1].clone());
    let biggest = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let seen = biggest.clone();
    net.tamper = Some(Box::new(move |_, _, p: &mut Packet| {
        if let Body::SyncRequest { digest, .. } = &p.header.body {
            seen.set(seen.get().max(digest.len()));
        }
        false
    }));
    let mut gossip = false;
    let learned = net.run_until(secs(120), |net| {
        gossip |= net.nodes.iter().any(|n| n.rumors_in_flight() > 0);
        net.all_alive()
    });
    assert!(learned, "everyone learned of the last node by sync");
    assert!(!gossip, "no rumor was ever in flight");
    // At most `max_digest` members per request, plus the requester itself.
    assert!(
        biggest.get() >= 1 && biggest.get() <= max_digest + 1,
        "{}",
        biggest.get()
    );
}

#[test]
fn members_without_addresses_are_never_probed() {
    // A seed whose only member is a browser (reachable only over links it opens itself).
    let cfg = MembershipConfig::default();
    let mut net = Net::new(&cfg, vec![state(0, "")]);
    let browser = PeerId::from_bytes([9; 32]);
    net.nodes[0].insert_record(
        Instant::ZERO,
        Record {
            id: browser,
            version: 1,
            status: Status::Alive,
            by: browser,
            state: Some(NodeState {
                role: Role::Browser,
                ..NodeState::default()
            }),
        },
    );
    net.run_for(secs(10));
    assert_eq!(net.nodes[0].stats().packets_sent, 0);
    let seen = net.nodes[0].member(&browser).map(|m| m.status);
    assert_eq!(seen, Some(Status::Alive), "never suspected");
}

#[test]
fn a_record_of_us_at_the_highest_version_does_not_overflow() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", ""]);
    let version = net.nodes[1].version();
    // Claims of a newer life, and an accusation, at the last version there is: not followed
    // (nobody would take them from a third party), so our versions are not used up.
    for status in [Status::Alive, Status::Suspect] {
        let mut record = suspicion_of(&net, 1, 0);
        record.version = u64::MAX;
        record.status = status;
        net.inject(0, 1, &forge(id(0), Body::Gossip, &[record]));
        assert_eq!(net.nodes[1].version(), version);
    }
    // Just within reach, a claim is outdone.
    let mut record = suspicion_of(&net, 1, 0);
    record.version = version + MAX_VERSION_STEP;
    net.inject(0, 1, &forge(id(0), Body::Gossip, &[record]));
    assert_eq!(net.nodes[1].version(), version + MAX_VERSION_STEP + 1);
    net.run_for(secs(1));
}

// Issue 18: start orders, partitions and forged packets.

/// Nodes `0..n`, started one at a time in `order`, `gap` apart (zero: at the same instant),
/// node `i` joining through the nodes `joins(i)`. A join sent before its target started is
/// lost, as a datagram to a socket not yet bound is.
fn started_in_order(
    cfg: &MembershipConfig,
    n: usize,
    order: &[usize],
    gap: Duration,
    joins: impl Fn(usize) -> Vec<usize>,
) -> Net {
    let mut net = Net::new(cfg, (0..n).map(|i| state(i, "")).collect());
    net.down.extend(0..n);
    for &i in order {
        net.start(i, id(i), &joins(i));
        net.run_for(gap);
    }
    net
}

#[test]
fn chains_and_stars_started_in_any_order_converge() {
    let cfg = MembershipConfig::default();
    let n = 5;
    let orders: [[usize; 5]; 4] = [
        [4, 3, 2, 1, 0],
        [0, 1, 2, 3, 4],
        [2, 4, 0, 3, 1],
        [3, 1, 4, 0, 2],
    ];
    let chain = |i: usize| if i == 0 { vec![] } else { vec![i - 1] };
    let star = |i: usize| if i == 0 { vec![] } else { vec![0] };
    for order in orders {
        for gap in [
            Duration::ZERO,
            Duration::from_millis(10),
            Duration::from_millis(700),
        ] {
            for (shape, joins) in [
                ("chain", &chain as &dyn Fn(usize) -> Vec<usize>),
                ("star", &star),
            ] {
                let mut net = started_in_order(&cfg, n, &order, gap, joins);
                assert!(
                    net.run_until(secs(300), Net::all_alive),
                    "a {shape} started in order {order:?}, {gap:?} apart, did not converge: {:?}",
                    (0..n)
                        .map(|i| net.nodes[i].present_count())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn two_clusters_formed_apart_merge_once_their_join_addresses_answer() {
    let cfg = MembershipConfig::default();
    // A = n0..n2 joins through n0, B = n3..n5 through n3, and every node also names the
    // other cluster's first node, unreachable while the clusters form.
    let (a, b) = ([0, 1, 2], [3, 4, 5]);
    let mut net = Net::new(&cfg, (0..6).map(|i| state(i, "")).collect());
    net.partition(&a, &b, true);
    for i in 0..6 {
        let joins = if a.contains(&i) { [0, 3] } else { [3, 0] };
        let joins: Vec<String> = joins
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| addr(j))
            .collect();
        net.nodes[i].join(Instant::ZERO, joins);
    }
    net.collect();
    assert!(
        net.run_until(secs(60), |net| net.group_alive(&a) && net.group_alive(&b)),
        "each cluster formed"
    );
    net.run_for(secs(60));
    net.partition(&a, &b, false);
    assert!(
        net.run_until(secs(600), Net::all_alive),
        "the clusters did not merge: {:?}",
        (0..6)
            .map(|i| net.nodes[i].present_count())
            .collect::<Vec<_>>()
    );
}

#[test]
fn halves_that_declared_each_other_dead_merge_after_the_partition_heals() {
    let cfg = MembershipConfig::default();
    let (a, b) = ([0, 1, 2], [3, 4, 5]);
    // No join addresses: only what each node remembers of the others can bring them back.
    let mut net = bootstrapped(&cfg, 6);
    assert!(net.run_until(secs(10), Net::all_alive));
    net.partition(&a, &b, true);
    let dead_across = |net: &Net| {
        a.iter()
            .all(|&i| b.iter().all(|&j| net.status(i, j) == Some(Status::Dead)))
            && b.iter()
                .all(|&i| a.iter().all(|&j| net.status(i, j) == Some(Status::Dead)))
    };
    assert!(
        net.run_until(secs(120), dead_across),
        "each half declared the other dead"
    );
    net.partition(&a, &b, false);
    assert!(
        net.run_until(secs(1200), Net::all_alive),
        "the halves did not merge: {:?}",
        (0..6)
            .map(|i| net.nodes[i].present_count())
            .collect::<Vec<_>>()
    );
}

#[test]
fn forged_deaths_departures_and_moves_leave_the_victim_alive_at_its_address() {
    let cfg = MembershipConfig::default();
    let v = 3;
    let stranger = strangers(7, 1)[0];
    // Deaths and departures carry no state; an alive record either moves the victim to the
    // attacker's address (where nobody answers) or claims a false state at its own.
    let kinds = [
        (Status::Dead, None),
        (Status::Left, None),
        (Status::Alive, Some("n9")),
        (Status::Alive, Some("n3")),
    ];
    for (status, at) in kinds {
        for which in ["0", "current", "current+1", "u64::MAX"] {
            for sender in [stranger, id(1), id(v)] {
                let mut net = Net::joined(&cfg, &["", "", "", ""]);
                let current = net.nodes[v].version();
                let version = match which {
                    "0" => 0,
                    "current" => current,
                    "current+1" => current + 1,
                    _ => u64::MAX,
                };
                let forged = Record {
                    id: id(v),
                    version,
                    status,
                    by: sender,
                    state: at.map(|a| NodeState {
                        addrs: vec![a.to_string()],
                        load: 99,
                        ..state(v, "")
                    }),
                };
                let what = format!(
                    "{status:?} at {at:?}, version {which} (current {current}), sent as {sender:?}"
                );
                let payload = forge(sender, Body::Gossip, &[forged]);
                for to in 0..4 {
                    net.inject_from("n9", to, &payload);
                }
                let fine = |net: &Net| {
                    net.all_alive()
                        && (0..3).all(|i| {
                            net.nodes[i].member(&id(v)).is_some_and(|m| {
                                m.status == Status::Alive && m.state.addrs == [addr(v)]
                            })
                        })
                };
                assert!(
                    net.run_until(secs(300), fine),
                    "{what}: the victim as the others see it: {:?}",
                    (0..3)
                        .map(|i| net.nodes[i].member(&id(v)).map(|m| (
                            m.status,
                            m.version,
                            m.state.addrs.clone()
                        )))
                        .collect::<Vec<_>>()
                );
                // Its versions are not used up: a change of its state still reaches everyone.
                net.nodes[v]
                    .set_state(NodeState {
                        load: 42,
                        ..state(v, "")
                    })
                    .expect("valid");
                net.collect();
                assert!(
                    net.run_until(secs(60), |net| (0..3).all(|i| net.nodes[i]
                        .member(&id(v))
                        .is_some_and(|m| m.state.load == 42 && m.status == Status::Alive))),
                    "{what}: a later change of the victim's state did not spread"
                );
            }
        }
    }
}

#[test]
fn ghosts_made_from_real_packets_neither_spread_nor_stay() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", "", ""]);
    // Real packets from n1 to n0, as an attacker on the path would copy them.
    let copies = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Packet>::new()));
    let sink = copies.clone();
    net.tamper = Some(Box::new(move |from, to, p: &mut Packet| {
        if (from, to) == (1, 0) {
            sink.borrow_mut().push(p.clone());
        }
        false
    }));
    net.run_for(secs(5));
    net.tamper = None;
    let copies = copies.borrow().clone();
    assert!(!copies.is_empty());
    // Each copy mutated: every record given a new identity (keeping a real node's address and
    // state), and every other copy sent in a ghost's name.
    let ghosts = strangers(11, 1000);
    let real: Vec<Record> = net.nodes.iter().map(Membership::own_record).collect();
    for (k, chunk) in ghosts.chunks(25).enumerate() {
        let copy = &copies[k % copies.len()];
        let records: Vec<Record> = chunk
            .iter()
            .enumerate()
            .map(|(j, g)| Record {
                id: *g,
                by: *g,
                ..real[j % real.len()].clone()
            })
            .collect();
        let sender = if k % 2 == 0 {
            copy.header.sender
        } else {
            chunk[0]
        };
        net.inject(1, 0, &forge(sender, copy.header.body.clone(), &records));
    }
    let known = |net: &Net, i: usize| {
        ghosts
            .iter()
            .filter(|g| net.nodes[i].member(g).is_some())
            .count()
    };
    for second in 0..120 {
        net.run_for(secs(1));
        for i in 1..4 {
            assert_eq!(known(&net, i), 0, "n{i} learned of ghosts after {second} s");
        }
    }
    assert_eq!(known(&net, 0), 0, "n0 still keeps ghosts");
    assert!(net.all_alive());
}

#[test]
fn a_flood_of_members_neither_spreads_nor_delays_crash_detection() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", "", "", ""]);
    // To every member: 40 datagrams from 40 addresses, 500 made-up members each, at
    // addresses nobody answers at.
    let ghosts = strangers(3, 20_000);
    let attacker = strangers(99, 1)[0];
    for (k, chunk) in ghosts.chunks(500).enumerate() {
        let records: Vec<Record> = chunk
            .iter()
            .map(|g| Record {
                id: *g,
                version: 1,
                status: Status::Alive,
                by: *g,
                state: Some(NodeState {
                    addrs: vec![format!("x{k}")],
                    ..NodeState::default()
                }),
            })
            .collect();
        let payload = forge(attacker, Body::Gossip, &records);
        assert!(payload.len() <= packet::MAX_PACKET);
        for to in 0..5 {
            net.inject_from(&format!("x{k}"), to, &payload);
        }
    }
    let dead = 4;
    net.down.insert(dead);
    let known = |net: &Net, i: usize| {
        ghosts
            .iter()
            .filter(|g| net.nodes[i].member(g).is_some())
            .count()
    };
    let mut spread = 0;
    let mut detected = false;
    for _ in 0..300 {
        net.run_for(secs(1));
        spread = spread.max((0..4).map(|i| known(&net, i)).max().unwrap_or(0));
        // Declared dead (or, once declared, already forgotten).
        if (0..4).all(|i| matches!(net.status(i, dead), Some(Status::Dead) | None)) {
            detected = true;
            break;
        }
    }
    assert!(
        detected,
        "the crashed node was not declared dead by all: {:?}",
        (0..4).map(|i| net.status(i, dead)).collect::<Vec<_>>()
    );
    assert_eq!(spread, 0, "members learned of ghosts");
    net.run_for(secs(60));
    for i in 0..4 {
        assert_eq!(known(&net, i), 0, "n{i} still keeps ghosts");
        assert_eq!(net.nodes[i].present_count(), 3);
    }
}

#[test]
fn an_ack_from_a_new_node_at_a_dead_nodes_address_does_not_keep_it_alive() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", ""]);
    // n2 crashes, and a new process (a new identity) starts at its address, joining nobody:
    // it answers every ping sent there.
    let old = id(2);
    net.start(2, strangers(5, 1)[0], &[]);
    assert!(
        net.run_until(secs(300), |net| (0..2).all(|i| net.nodes[i]
            .member(&old)
            .is_some_and(|m| m.status == Status::Dead))),
        "the old identity at n2 was not declared dead: {:?}",
        (0..2)
            .map(|i| net.nodes[i].member(&old).map(|m| m.status))
            .collect::<Vec<_>>()
    );
}

#[test]
fn what_one_packet_one_address_and_everyone_can_make_us_verify_is_bounded() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", ""]);
    let ghosts = strangers(21, 5_000);
    let attacker = strangers(22, 1)[0];
    let packet_of = |chunk: &[PeerId], at: &str| {
        let records: Vec<Record> = chunk
            .iter()
            .map(|g| Record {
                id: *g,
                version: 1,
                status: Status::Alive,
                by: *g,
                state: Some(NodeState {
                    addrs: vec![at.to_string()],
                    ..NodeState::default()
                }),
            })
            .collect();
        forge(attacker, Body::Gossip, &records)
    };
    let mut chunks = ghosts.chunks(500);
    let mut next = || chunks.next().expect("enough ghosts");
    net.inject_from("x0", 0, &packet_of(next(), "x0"));
    assert_eq!(net.nodes[0].unverified_count(), cfg.max_new_per_packet);
    for _ in 0..5 {
        net.inject_from("x0", 0, &packet_of(next(), "x0"));
    }
    assert_eq!(
        net.nodes[0].unverified_count(),
        cfg.max_unverified_per_source
    );
    for k in 1..4 {
        net.inject_from(&format!("x{k}"), 0, &packet_of(next(), "x"));
    }
    assert!(net.nodes[0].unverified_count() <= cfg.max_unverified);
    assert_eq!(net.nodes[0].present_count(), 1, "none is a member");
    net.run_for(cfg.unverified_timeout + cfg.round_interval);
    assert_eq!(net.nodes[0].unverified_count(), 0, "all forgotten");
    assert!(net.all_alive());
}

#[test]
fn a_quiet_converged_cluster_sends_no_empty_sync_answers() {
    let cfg = MembershipConfig::default();
    let mut net = Net::joined(&cfg, &["", "", ""]);
    net.run_for(secs(30));
    assert!(net.nodes.iter().all(|n| n.rumors_in_flight() == 0));
    let seen = std::rc::Rc::new(std::cell::Cell::new((0usize, 0usize)));
    let sink = seen.clone();
    net.tamper = Some(Box::new(move |_, _, p: &mut Packet| {
        let (requests, empty) = sink.get();
        match &p.header.body {
            Body::SyncRequest { .. } => sink.set((requests + 1, empty)),
            Body::SyncReply { wants } if wants.is_empty() && p.records.is_empty() => {
                sink.set((requests, empty + 1));
            }
            Body::SyncPush if p.records.is_empty() => sink.set((requests, empty + 1)),
            _ => {}
        }
        false
    }));
    net.run_for(secs(30));
    let (requests, empty) = seen.get();
    assert!(requests >= 30, "{requests} sync requests");
    assert_eq!(empty, 0, "empty sync answers");
    assert!(net.all_alive());
}
