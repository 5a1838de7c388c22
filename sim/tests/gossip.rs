//! Membership at scale, in the simulator: the real state machines, seeded and deterministic.

use std::time::Duration;

use pollen_core::{ContentId, Instant, membership::MembershipConfig};
use pollen_sim::gossip::Cluster;

const LATENCY: Duration = Duration::from_millis(2);

/// `n` nodes, each joining through a random earlier one, 10 ms apart.
fn joined_cluster(seed: u64, n: usize) -> Cluster {
    let mut c = Cluster::new(seed, MembershipConfig::default(), LATENCY);
    c.add_node("a");
    for i in 1..n {
        let node = c.add_node("a");
        let via = (seed as usize).wrapping_mul(31).wrapping_add(i * 7919) % i;
        c.join(node, via);
        c.run_for(Duration::from_millis(10));
    }
    c
}

#[test]
fn a_thousand_nodes_converge_on_full_membership() {
    let mut c = joined_cluster(1, 1000);
    let at = c.run_until_with(
        Duration::from_secs(1),
        Duration::from_secs(300),
        Cluster::converged,
    );
    let at = at.expect("1,000 nodes converge on full membership");
    // Joins took 10 s; convergence follows within a few sync sweeps.
    assert!(at <= Instant::ZERO + Duration::from_secs(300));
    assert_eq!(c.false_deaths(), 0);
}

#[test]
fn a_new_fact_reaches_every_live_node() {
    let mut c = Cluster::new(2, MembershipConfig::default(), LATENCY);
    for _ in 0..500 {
        c.add_node("a");
    }
    c.bootstrap_full();
    // Some nodes are down: the fact must still reach every live one.
    for n in (0..500).step_by(25) {
        if n != 7 {
            c.kill(n);
        }
    }
    let version = c.announce_holding(7, ContentId::of(b"artifact"));
    let live = c.live_others(7);
    let reached = c.run_until_with(Duration::from_millis(200), Duration::from_secs(30), |c| {
        c.reached(7, version) == live
    });
    assert!(
        reached.is_some(),
        "reached {} of {live}",
        c.reached(7, version)
    );
}

#[test]
fn with_loss_the_killed_are_declared_dead_and_the_live_are_not() {
    let n = 200;
    let mut c = Cluster::new(3, MembershipConfig::default(), LATENCY);
    for _ in 0..n {
        c.add_node("a");
    }
    c.bootstrap_full();
    c.set_loss(0.05);
    c.run_for(Duration::from_secs(5));
    let killed: Vec<usize> = (0..n).filter(|i| i % 10 == 3).collect();
    for &k in &killed {
        c.kill(k);
    }
    let done = c.run_until_with(Duration::from_secs(1), Duration::from_secs(180), |c| {
        killed.iter().all(|k| c.declared_dead_by_all(*k))
    });
    assert!(done.is_some(), "not every killed node was declared dead");
    // Keep running: no live node may be declared dead meanwhile or after.
    c.run_for(Duration::from_secs(60));
    assert_eq!(c.false_deaths(), 0, "live nodes were declared dead");
    assert!(c.converged());
    assert!(c.dropped() > 0, "the loss was applied");
}

#[test]
fn a_graceful_leave_is_seen_as_left_not_dead() {
    let mut c = Cluster::new(4, MembershipConfig::default(), LATENCY);
    for _ in 0..50 {
        c.add_node("a");
    }
    c.bootstrap_full();
    c.run_for(Duration::from_secs(2));
    c.leave(5);
    c.run_for(Duration::from_secs(3));
    let id = c.id(5);
    for n in (0..50).filter(|n| *n != 5) {
        let m = c.membership(n).member(&id).expect("still remembered");
        assert_eq!(m.status, pollen_core::membership::Status::Left, "node {n}");
    }
}

#[test]
fn runs_are_deterministic() {
    let run = || {
        let mut c = joined_cluster(9, 60);
        c.run_for(Duration::from_secs(20));
        (c.traffic(), c.converged())
    };
    assert_eq!(run(), run());
}

#[test]
fn a_bounded_view_talks_only_to_its_active_set_and_still_learns_everyone() {
    let mut c = Cluster::new(5, MembershipConfig::default(), LATENCY);
    for _ in 0..40 {
        c.add_node("a");
    }
    c.bootstrap_full();
    let b = c.add_browser("b", 4);
    c.join(b, 0);
    c.run_for(Duration::from_secs(30));
    let m = c.membership(b);
    assert_eq!(
        m.present_count(),
        40,
        "the bounded node learns every member"
    );
    assert_eq!(m.active_view().len(), 4);
    let contacted = c.contacted_by(b);
    assert!(
        contacted.len() <= 4 + 1,
        "talked to {} members (4 active + the join contact)",
        contacted.len()
    );
    // Kill one active member: it is replaced from the passive view.
    let victim = m.active_view()[0];
    let victim = (0..40)
        .find(|n| c.id(*n) == victim)
        .expect("a cluster node");
    c.kill(victim);
    c.run_for(Duration::from_secs(60));
    let m = c.membership(b);
    assert_eq!(m.active_view().len(), 4);
    assert!(!m.active_view().contains(&c.id(victim)));
}
