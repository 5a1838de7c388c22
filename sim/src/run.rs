//! One run of a scenario at one peer count, and what it measured.

use std::time::Duration;

use pollen_core::{Instant, policy::PolicyConfig};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::{
    net::{Capacity, Dialing, Net, NodeId},
    scenario::Scenario,
};

/// MB/s in the scenario files are 10^6 bytes per second.
const MB: f64 = 1e6;

/// What one run measured. Times are in seconds; ratios are to `t_min_s` or to the artifact.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed the run used.
    pub seed: u64,
    /// Peers (origins not counted).
    pub peers: usize,
    /// Origins.
    pub origins: usize,
    /// Artifact size, bytes.
    pub artifact_bytes: u64,
    /// Piece size, bytes.
    pub piece_bytes: u64,
    /// The lower bound: max(F/u_s, F/d, N·F/(u_s + Σu_i)).
    pub t_min_s: f64,
    /// Median completion time over the peers that stayed, over `t_min_s`.
    pub p50: f64,
    /// 99th percentile, over `t_min_s`.
    pub p99: f64,
    /// Slowest peer that stayed, over `t_min_s`.
    pub max: f64,
    /// Bytes the origins sent, over the artifact size.
    pub origin_copies: f64,
    /// Bytes sent between zones, over the artifact size.
    pub cross_zone_copies: f64,
    /// Mean over nodes of the time each uplink was busy, over the run's length.
    pub upload_utilisation: f64,
    /// Peers that stayed but had not completed when the run ended.
    pub incomplete: usize,
    /// The single-origin baseline: every peer fetching from the origins alone,
    /// max(N·F/u_s, F/d), over `t_min_s`.
    pub single_origin: f64,
    /// Simulated seconds the run covered.
    pub simulated_s: f64,
    /// The same times per group of peers, in the scenario's order (empty with one group).
    pub groups: Vec<GroupReport>,
}

/// Completion times of one group of peers, over the run's `t_min_s`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupReport {
    /// The group's capacities and zone, as the scenario gives them.
    pub label: String,
    /// Peers in the group (those that left or crashed included).
    pub peers: usize,
    /// Median over the group's peers that stayed.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Peers of the group that stayed but had not completed.
    pub incomplete: usize,
}

/// Runs `scenario` with `peers` peers on [`default_threads`]. `progress` is called now and
/// then with the simulated time and how many peers have completed.
pub fn run(scenario: &Scenario, peers: usize, progress: impl FnMut(Duration, usize)) -> Report {
    run_on(scenario, peers, default_threads(), progress)
}

/// The threads a run uses unless told otherwise: two if the machine has them (the network
/// has two partitions, [`Net::run`]).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Like [`run`] on `threads` threads; the report is the same for any number.
pub fn run_on(
    scenario: &Scenario,
    peers: usize,
    threads: usize,
    mut progress: impl FnMut(Duration, usize),
) -> Report {
    let size = scenario.artifact_bytes();
    let zones = scenario.zones();
    let zone_of = |label: &Option<String>| zones[&label.clone().unwrap_or_default()];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(scenario.seed ^ (peers as u64).rotate_left(32));
    let mut net = Net::lengths_only(rng.next_u64(), ms(scenario.latency_ms));
    net.set_inter_zone_latency(ms(scenario
        .inter_zone_latency_ms
        .unwrap_or(scenario.latency_ms)));
    net.set_loss(scenario.loss);
    net.set_threads(threads);
    net.set_slot_rate(
        (scenario.slot_rate_mb_s > 0.0).then_some((scenario.slot_rate_mb_s * MB) as u64),
    );
    net.set_send_window((scenario.send_window_kib > 0).then_some(scenario.send_window_kib * 1024));

    let mut origins = Vec::new();
    let mut ticket = None;
    for o in &scenario.origins {
        net.set_spread_first(o.spread_first);
        for _ in 0..o.count {
            let (id, t) = net.add_origin(
                size,
                capacity(o.up_mb_s, o.down_mb_s),
                crate::net::Behavior::Honest,
            );
            net.set_zone(id, zone_of(&o.zone));
            origins.push(id);
            ticket = Some(t);
        }
    }
    let ticket = ticket.expect("a checked scenario has an origin");
    let mut peer_ids = Vec::new();
    let mut group_of = Vec::new();
    for (g, (group, count)) in scenario
        .groups
        .iter()
        .zip(scenario.group_counts(peers))
        .enumerate()
    {
        for _ in 0..count {
            group_of.push(g);
            let id = net.add_peer(
                &ticket,
                capacity(group.up_mb_s, group.down_mb_s),
                crate::net::Behavior::Honest,
            );
            net.set_zone(id, zone_of(&group.zone));
            peer_ids.push(id);
        }
    }

    net.apply_origin_policy();

    // Churn: distinct peers for each role, times uniform in the window.
    let mut joined_at = vec![Instant::ZERO; net.len()];
    let mut gone = vec![false; net.len()];
    let mut late = Vec::new();
    if let Some(c) = &scenario.churn {
        let mut order = peer_ids.clone();
        shuffle(&mut order, &mut rng);
        let take = |f: f64| (f * peers as f64).round() as usize;
        let (leave, crash, join) = (take(c.leave), take(c.crash), take(c.join));
        let at = |rng: &mut Xoshiro256PlusPlus| {
            let [a, b] = c.window_s;
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            Instant::ZERO + Duration::from_secs_f64(a + u * (b - a))
        };
        let mut it = order.into_iter();
        for node in it.by_ref().take(leave) {
            let t = at(&mut rng);
            net.leave_at(node, t);
            gone[node] = true;
        }
        for node in it.by_ref().take(crash) {
            let t = at(&mut rng);
            net.crash_at(node, t);
            gone[node] = true;
        }
        for node in it.take(join) {
            let t = at(&mut rng);
            late.push((node, t));
            joined_at[node] = t;
        }
    }
    for &(node, t) in &late {
        net.join_later(node, t, scenario.degree);
    }
    let present: Vec<NodeId> = peer_ids
        .iter()
        .copied()
        .filter(|p| !late.iter().any(|&(n, _)| n == *p))
        .collect();
    // Peers link as a node's dial policy does, with the scenario's numbers: every origin (the
    // ticket names them), then `degree` more peers in the policy's order; in zones, only a
    // few elected fetchers per zone cross, once the zone grace has passed.
    let zoned = zones.len() > 1 && scenario.zone_local;
    let dialing = Dialing {
        cfg: PolicyConfig {
            max_links: scenario.degree + origins.len(),
            fetchers_per_crossing: scenario.fetchers_per_crossing,
            ..PolicyConfig::default()
        },
        zones: zoned,
    };
    net.set_dialing(dialing);
    for &p in &present {
        net.dial_by_policy(p, &dialing, Duration::ZERO);
        if zoned {
            // Its dial tick once the zone grace has passed: elected fetchers now cross.
            net.redial_at(p, Instant::ZERO + dialing.cfg.zone_grace);
        }
    }

    let limit = Duration::from_secs_f64(scenario.time_limit_s);
    let step = Duration::from_secs(1);
    let mut until = step;
    loop {
        net.run(until.min(limit));
        let done = peer_ids
            .iter()
            .filter(|&&p| net.completed_at(p).is_some())
            .count();
        progress(net.now().saturating_since(Instant::ZERO), done);
        if net.is_finished() || net.is_idle() || until >= limit {
            break;
        }
        until += step;
    }

    let stayed: Vec<NodeId> = peer_ids.iter().copied().filter(|&p| !gone[p]).collect();
    let completion = |p: NodeId| {
        net.completed_at(p)
            .map(|t| t.saturating_since(joined_at[p]).as_secs_f64())
    };

    let f = size as f64;
    let u_s: f64 = origins.iter().map(|&o| net.capacity(o).up as f64).sum();
    let u_peers: f64 = peer_ids.iter().map(|&p| net.capacity(p).up as f64).sum();
    let d_min = peer_ids
        .iter()
        .map(|&p| net.capacity(p).down as f64)
        .fold(f64::INFINITY, f64::min);
    let n = peers as f64;
    let t_min = (f / u_s).max(f / d_min).max(n * f / (u_s + u_peers));
    let single = (n * f / u_s).max(f / d_min);
    let end = net.now().saturating_since(Instant::ZERO).as_secs_f64();
    let all = Times::of(stayed.iter().map(|&p| completion(p)), t_min);
    let groups = if scenario.groups.len() > 1 {
        scenario
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let members = || {
                    peer_ids
                        .iter()
                        .zip(&group_of)
                        .filter(move |&(_, &of)| of == g)
                        .map(|(&p, _)| p)
                };
                let t = Times::of(members().filter(|&p| !gone[p]).map(completion), t_min);
                GroupReport {
                    label: group_label(group),
                    peers: members().count(),
                    p50: t.percentile(0.5),
                    p99: t.percentile(0.99),
                    max: t.max(),
                    incomplete: t.incomplete,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let nodes = origins.iter().chain(&peer_ids);
    let utilisation = if end > 0.0 {
        let busy: f64 = nodes
            .clone()
            .map(|&x| net.upload_busy(x).as_secs_f64() / end)
            .sum();
        busy / (origins.len() + peer_ids.len()) as f64
    } else {
        0.0
    };
    let origin_bytes: u64 = origins.iter().map(|&o| net.bytes_sent(o)).sum();
    Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        peers,
        origins: origins.len(),
        artifact_bytes: size,
        piece_bytes: net
            .swarm(origins[0])
            .manifest()
            .map_or(0, |m| m.layout().piece_size()),
        t_min_s: t_min,
        p50: all.percentile(0.5),
        p99: all.percentile(0.99),
        max: all.max(),
        origin_copies: origin_bytes as f64 / f,
        cross_zone_copies: net.cross_zone_bytes() as f64 / f,
        upload_utilisation: utilisation,
        incomplete: all.incomplete,
        single_origin: single / t_min,
        simulated_s: end,
        groups,
    }
}

/// Completion times of a set of peers that stayed, sorted, as ratios to T_min.
struct Times {
    /// Ratios of those that completed.
    done: Vec<f64>,
    /// Those that did not.
    incomplete: usize,
}

impl Times {
    fn of(times: impl Iterator<Item = Option<f64>>, t_min: f64) -> Self {
        let mut done = Vec::new();
        let mut incomplete = 0;
        for t in times {
            match t {
                Some(t) => done.push(t / t_min),
                None => incomplete += 1,
            }
        }
        done.sort_by(f64::total_cmp);
        Self { done, incomplete }
    }

    /// The `q` quantile, infinite if it falls among the incomplete.
    fn percentile(&self, q: f64) -> f64 {
        let all = self.done.len() + self.incomplete;
        if self.done.is_empty() || q * all as f64 > self.done.len() as f64 {
            return f64::INFINITY;
        }
        let rank = ((q * all as f64).ceil() as usize).clamp(1, self.done.len());
        self.done[rank - 1]
    }

    /// The slowest, infinite if any did not complete.
    fn max(&self) -> f64 {
        if self.incomplete > 0 {
            return f64::INFINITY;
        }
        self.done.last().copied().unwrap_or(f64::INFINITY)
    }
}

/// A group's capacities and zone, e.g. "12.5/50 MB/s us".
fn group_label(g: &crate::scenario::Group) -> String {
    let mut label = format!("{}/{} MB/s", g.up_mb_s, g.down_mb_s);
    if let Some(zone) = &g.zone {
        label.push(' ');
        label.push_str(zone);
    }
    label
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

fn capacity(up_mb_s: f64, down_mb_s: f64) -> Capacity {
    Capacity {
        up: (up_mb_s * MB) as u64,
        down: (down_mb_s * MB) as u64,
    }
}

/// Fisher-Yates with the run's generator.
fn shuffle<T>(items: &mut [T], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
