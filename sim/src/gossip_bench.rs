//! The membership benchmark: rounds for a fact to reach every live node, gossip traffic per
//! node per round, time to declare a dead node, and false declarations under loss.
//!
//! Up to [`FULL_VIEW_MAX`] nodes every node knows every other. Beyond that the simulator
//! cannot hold N² member records, so each node knows a partial view: node 0 (the hub every
//! node joined through) and [`PARTIAL_VIEW`] random others, and remembers no more.

use std::time::Duration;

use pollen_core::{ContentId, Instant, membership::MembershipConfig};
use serde::Serialize;

use crate::gossip::Cluster;

/// Packets take 1-1.5 ms: a data-centre LAN.
const LATENCY: Duration = Duration::from_millis(1);
/// Above this many nodes every node knows only a partial view (memory of the simulator).
pub const FULL_VIEW_MAX: usize = 2_000;
/// The partial view's size: the hub plus this many random members.
pub const PARTIAL_VIEW: usize = 256;

/// What one cluster size measured.
#[derive(Debug, Clone, Serialize)]
pub struct GossipReport {
    /// Nodes.
    pub n: usize,
    /// Whether each node knew every other (else a partial view of [`PARTIAL_VIEW`] + 1).
    pub full_view: bool,
    /// Gossip rounds until a new fact reached every live node.
    pub rounds_to_spread: f64,
    /// The goal: ceil(log2 N) + 2.
    pub rounds_goal: u32,
    /// Packets each node sent per round, in steady state (no news).
    pub packets_per_node_round: f64,
    /// Bytes each node sent per round, in steady state.
    pub bytes_per_node_round: f64,
    /// Packets per node per round while the fact spread.
    pub spread_packets_per_node_round: f64,
    /// Bytes per node per round while the fact spread.
    pub spread_bytes_per_node_round: f64,
    /// Seconds from a crash until every live node declared it dead.
    pub detect_s: f64,
}

/// Runs the benchmark for `n` nodes.
pub fn measure(n: usize, seed: u64) -> GossipReport {
    let full_view = n <= FULL_VIEW_MAX;
    let mut cfg = MembershipConfig::default();
    if !full_view {
        // Without a cap, anti-entropy would fill every view to all N members.
        cfg.max_members = PARTIAL_VIEW + 1;
    }
    let round = cfg.round_interval;
    let mut c = Cluster::new(seed, cfg, LATENCY);
    for _ in 0..n {
        c.add_node("a");
    }
    if full_view {
        c.bootstrap_full();
    } else {
        c.bootstrap_partial(0, PARTIAL_VIEW);
    }
    // Let the first probes and syncs settle, then measure a quiet window.
    c.run_for(Duration::from_secs(5));
    let quiet = Duration::from_secs(10);
    let (p0, b0) = c.traffic();
    c.run_for(quiet);
    let (p1, b1) = c.traffic();
    let rounds = quiet.as_secs_f64() / round.as_secs_f64();
    let per = |x: u64| x as f64 / n as f64 / rounds;

    // A fact: node 0 starts holding an artifact.
    let start = c.now();
    let version = c.announce_holding(0, ContentId::of(b"gossip-bench"));
    let live = c.live_others(0);
    let reached = c
        .run_until_with(round / 4, Duration::from_secs(120), |c| {
            c.reached(0, version) == live
        })
        .unwrap_or(Instant::from_micros(u64::MAX));
    let spread = reached.saturating_since(start);
    let (p2, b2) = c.traffic();
    let spread_rounds = spread.as_secs_f64() / round.as_secs_f64();
    let per_spread = |x: u64| x as f64 / n as f64 / spread_rounds.max(1.0);

    // A crash: node 0 (known to every node, even with partial views).
    c.kill(0);
    let killed = c.now();
    let detected = c
        .run_until_with(Duration::from_millis(250), Duration::from_secs(600), |c| {
            c.declared_dead_by_all(0)
        })
        .unwrap_or(Instant::from_micros(u64::MAX));
    GossipReport {
        n,
        full_view,
        rounds_to_spread: spread_rounds,
        rounds_goal: ceil_log2(n) + 2,
        packets_per_node_round: per(p1 - p0),
        bytes_per_node_round: per(b1 - b0),
        spread_packets_per_node_round: per_spread(p2 - p1),
        spread_bytes_per_node_round: per_spread(b2 - b1),
        detect_s: detected.saturating_since(killed).as_secs_f64(),
    }
}

/// False death declarations in `n` live nodes over `duration` at packet loss `loss`, and
/// the node-hours simulated.
pub fn false_declarations(n: usize, loss: f64, duration: Duration, seed: u64) -> (usize, f64) {
    let mut c = Cluster::new(seed, MembershipConfig::default(), LATENCY);
    for _ in 0..n {
        c.add_node("a");
    }
    c.bootstrap_full();
    c.set_loss(loss);
    c.run_for(duration);
    let node_hours = n as f64 * duration.as_secs_f64() / 3600.0;
    (c.false_deaths(), node_hours)
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_matches_the_goal_formula() {
        assert_eq!(ceil_log2(100), 7);
        assert_eq!(ceil_log2(1000), 10);
        assert_eq!(ceil_log2(1024), 10);
        assert_eq!(ceil_log2(10_000), 14);
    }

    #[test]
    fn a_small_cluster_meets_the_spread_goal_and_detects_a_crash() {
        let r = measure(64, 1);
        assert!(r.full_view);
        assert!(
            r.rounds_to_spread <= f64::from(r.rounds_goal),
            "{} rounds, goal {}",
            r.rounds_to_spread,
            r.rounds_goal
        );
        assert!(r.detect_s.is_finite() && r.detect_s < 600.0);
        assert!(r.packets_per_node_round > 0.0);
    }
}
