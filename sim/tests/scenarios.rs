//! Scenario runs: lengths-only payloads, zones, loss, churn, determinism, and the CLI.

use std::{process::Command, time::Duration};

use pollen_core::policy::PolicyConfig;
use pollen_sim::{
    net::{Behavior, Capacity, Dialing, Net},
    run::{Report, run, run_on},
    scenario::Scenario,
};

const MB: u64 = 1_000_000;

fn scenario(extra_top: &str, groups: &str) -> Scenario {
    let text = format!(
        r#"
        name = "test"
        artifact_mib = 4
        peers = [30]
        degree = 4
        latency_ms = 5
        {extra_top}
        [[origins]]
        up_mb_s = 20
        down_mb_s = 20
        zone = "a"
        {groups}
        "#
    );
    Scenario::parse(&text, "test").expect("valid scenario")
}

const ONE_GROUP: &str = "[[groups]]\nup_mb_s = 5\ndown_mb_s = 20\nzone = \"a\"";

fn quiet(s: &Scenario) -> Report {
    run(s, s.peers[0], |_, _| {})
}

#[test]
fn lengths_only_payloads_complete_and_still_ban_a_corrupting_origin() {
    let mut net = Net::lengths_only(3, Duration::from_millis(5));
    let size = 3 << 20;
    let cap = Capacity {
        up: 10 * MB,
        down: 40 * MB,
    };
    let (good, ticket) = net.add_origin(size, cap, Behavior::Honest);
    let (bad, _) = net.add_origin(size, cap, Behavior::CorruptBlocks);
    let peers: Vec<_> = (0..10)
        .map(|_| net.add_peer(&ticket, cap, Behavior::Honest))
        .collect();
    for &p in &peers {
        net.connect(p, good);
        net.connect(p, bad);
    }
    net.run(Duration::from_secs(600));
    for &p in &peers {
        assert!(net.completed_at(p).is_some(), "peer {p} completed");
        assert!(net.swarm(p).is_complete());
    }
    let banners = peers
        .iter()
        .filter(|&&p| net.banned_by(p).contains(&net.peer_id(bad)))
        .count();
    assert!(
        banners > 0,
        "the corrupting origin is banned by those it served"
    );
    assert!(
        peers
            .iter()
            .all(|&p| !net.banned_by(p).contains(&net.peer_id(good)))
    );
}

#[test]
fn a_run_is_a_function_of_its_scenario_and_seed() {
    let s = scenario("", ONE_GROUP);
    let first = quiet(&s);
    assert_eq!(first, quiet(&s));
    let mut other = s.clone();
    other.seed = 2;
    assert_ne!(first, quiet(&other), "another seed takes another path");
}

#[test]
fn one_or_two_threads_give_the_same_report_with_churn_zones_and_loss() {
    let s = Scenario::parse(
        r#"
        name = "threads"
        artifact_mib = 4
        peers = [40]
        degree = 4
        latency_ms = 5
        inter_zone_latency_ms = 20
        loss = 0.01

        [[origins]]
        up_mb_s = 20
        down_mb_s = 20
        zone = "a"

        [[groups]]
        up_mb_s = 5
        down_mb_s = 20
        zone = "a"

        [[groups]]
        up_mb_s = 2
        down_mb_s = 10
        zone = "b"

        [churn]
        leave = 0.1
        crash = 0.1
        join = 0.2
        window_s = [0.2, 2.0]
        "#,
        "test",
    )
    .expect("valid scenario");
    let one = run_on(&s, 40, 1, |_, _| {});
    assert!(one.p50 > 0.0 && one.cross_zone_copies > 0.0, "{one:?}");
    assert_eq!(one, run_on(&s, 40, 2, |_, _| {}));
}

#[test]
fn reports_respect_the_lower_bound_and_count_the_origin() {
    let r = quiet(&scenario("", ONE_GROUP));
    assert_eq!((r.peers, r.origins, r.incomplete), (30, 1, 0));
    assert_eq!(r.artifact_bytes, 4 << 20);
    assert!(r.p50 >= 1.0 && r.p99 >= r.p50 && r.max >= r.p99, "{r:?}");
    assert!(
        r.origin_copies >= 1.0,
        "the origin sends every byte at least once: {r:?}"
    );
    assert!(r.upload_utilisation > 0.0 && r.upload_utilisation <= 1.0);
    assert!(
        r.single_origin > 1.0,
        "one origin alone is slower than the bound"
    );
    assert_eq!(r.cross_zone_copies, 0.0, "one zone");
}

#[test]
fn bytes_between_zones_are_counted() {
    let groups = format!("{ONE_GROUP}\n[[groups]]\nup_mb_s = 5\ndown_mb_s = 20\nzone = \"b\"");
    let r = quiet(&scenario("inter_zone_latency_ms = 30", &groups));
    assert_eq!(r.incomplete, 0);
    // Zone b's 15 peers need at least one copy from zone a.
    assert!(r.cross_zone_copies >= 1.0, "{r:?}");
}

#[test]
fn zone_local_links_cross_zones_through_a_few_fetchers() {
    // 60 peers, 20 per zone, the origin in zone a: zones b and c each cross through one
    // fetcher (20 / 25, at least one) instead of every peer linking at random.
    let groups = (["a", "b", "c"].iter())
        .map(|z| format!("[[groups]]\nup_mb_s = 5\ndown_mb_s = 20\nzone = \"{z}\"\n"))
        .collect::<String>();
    let sixty = |top: &str| {
        let mut s = scenario(top, &groups);
        s.peers = vec![60];
        quiet(&s)
    };
    let local = sixty("inter_zone_latency_ms = 30");
    let random = sixty("inter_zone_latency_ms = 30\nzone_local = false");
    assert_eq!((local.incomplete, random.incomplete), (0, 0));
    assert!(local.cross_zone_copies >= 2.0, "{local:?}");
    assert!(
        local.cross_zone_copies * 4.0 < random.cross_zone_copies,
        "{} vs {}",
        local.cross_zone_copies,
        random.cross_zone_copies
    );
    // Every group is reported, with its zone.
    let labels: Vec<&str> = local.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["5/20 MB/s a", "5/20 MB/s b", "5/20 MB/s c"]);
    assert!(
        local
            .groups
            .iter()
            .all(|g| g.peers == 20 && g.incomplete == 0)
    );
}

#[test]
fn a_crossing_fetcher_whose_cap_is_full_still_links_across() {
    // Zone 0: the origin and 20 peers; zone 1: 40 peers, of which one crosses. The links its
    // zone opens to it fill its cap, yet it links to holders across
    // (`PolicyConfig::cross_links`): with the origin alone across, an origin that spreads
    // first refuses it what its own zone's peers hold.
    let mut net = Net::lengths_only(1, Duration::from_millis(5));
    let cap = Capacity {
        up: 5 * MB,
        down: 20 * MB,
    };
    let (origin, ticket) = net.add_origin(4 << 20, cap, Behavior::Honest);
    net.set_zone(origin, 0);
    let peers: Vec<_> = (0..60)
        .map(|i| {
            let p = net.add_peer(&ticket, cap, Behavior::Honest);
            net.set_zone(p, u16::from(i >= 20));
            p
        })
        .collect();
    let dialing = Dialing {
        cfg: PolicyConfig {
            max_links: 5,
            ..PolicyConfig::default()
        },
        zones: true,
    };
    for &p in &peers {
        net.dial_by_policy(p, &dialing, Duration::ZERO);
    }
    for &p in &peers {
        net.dial_by_policy(p, &dialing, dialing.cfg.zone_grace);
    }
    let across = |p: usize| {
        net.linked_peers(p)
            .iter()
            .filter(|&&q| net.zone(q) != net.zone(p))
            .count()
    };
    let crossing: Vec<usize> = peers[20..]
        .iter()
        .copied()
        .filter(|&p| across(p) > 0)
        .collect();
    assert_eq!(crossing.len(), 1, "one fetcher of 40 crosses");
    let c = crossing[0];
    assert!(
        net.linked_peers(c).len() > dialing.cfg.max_links,
        "its cap is full"
    );
    // More than the origin, and at least the policy's count.
    assert!(
        across(c) > 1 && across(c) >= dialing.cfg.cross_links,
        "{} links across",
        across(c)
    );
}

#[test]
fn loss_slows_a_transfer_down() {
    let clean = quiet(&scenario("", ONE_GROUP));
    let lossy = quiet(&scenario("loss = 0.02", ONE_GROUP));
    assert_eq!(lossy.incomplete, 0);
    assert!(lossy.p50 > clean.p50, "{} vs {}", lossy.p50, clean.p50);
}

#[test]
fn peers_that_crash_or_leave_do_not_stop_the_others_and_late_joiners_finish() {
    let churn = "[churn]\nleave = 0.2\ncrash = 0.2\njoin = 0.2\nwindow_s = [0.2, 2.0]";
    let s = scenario("", &format!("{ONE_GROUP}\n{churn}"));
    let r = quiet(&s);
    assert_eq!(r.incomplete, 0, "every peer that stayed completed: {r:?}");
    assert!(r.max.is_finite());
}

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pollen-sim"))
}

#[test]
fn the_cli_prints_a_table_json_and_a_chart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"cli\"\nartifact_mib = 2\npeers = [5, 20]\n[[origins]]\nup_mb_s = 20\ndown_mb_s = 20\n{ONE_GROUP}\n"
        ),
    )
    .expect("write scenario");

    let out = sim().arg(&file).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("T_min")),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.starts_with("cli")).count(),
        2,
        "{table}"
    );

    let charts = dir.path().join("charts");
    let out = sim()
        .arg(&file)
        .args(["--json", "--peers", "7", "--chart"])
        .arg(&charts)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json[0]["peers"], 7);
    assert!(json[0]["p50"].as_f64().is_some_and(|v| v >= 1.0), "{json}");
    let svg = std::fs::read_to_string(charts.join("cli.svg")).expect("chart");
    assert!(svg.starts_with("<svg") && svg.contains("single origin"));
}

#[test]
fn the_cli_explains_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let out = sim().arg(&missing).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.toml"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nartifact_mib = -3\n").expect("write");
    let out = sim().arg(&bad).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn a_slow_senders_late_bytes_do_not_hold_up_a_fast_senders() {
    // One peer fetches from a fast and a very slow origin. Its downlink takes bytes in the
    // order they arrive, so the fast origin's blocks never wait behind the slow one's.
    let mut net = Net::lengths_only(5, Duration::from_millis(5));
    let size: u64 = 8 << 20;
    let fast = Capacity {
        up: 50 * MB,
        down: 50 * MB,
    };
    let slow = Capacity {
        up: MB / 10,
        down: 50 * MB,
    };
    let (f, ticket) = net.add_origin(size, fast, Behavior::Honest);
    let (s, _) = net.add_origin(size, slow, Behavior::Honest);
    let peer = net.add_peer(
        &ticket,
        Capacity {
            up: 50 * MB,
            down: 50 * MB,
        },
        Behavior::Honest,
    );
    net.connect(peer, f);
    net.connect(peer, s);
    net.run(Duration::from_secs(3600));
    let done = net.completed_at(peer).expect("completes").as_micros() as f64 / 1e6;
    // The fast origin alone needs 0.17 s; the slow one alone 84 s.
    let alone = size as f64 / (50 * MB) as f64;
    assert!(
        done < 3.0 * alone,
        "took {done:.2} s, the fast origin alone {alone:.2} s"
    );
}

#[test]
fn a_peer_that_joins_late_keeps_its_timers() {
    // Joining after its first rechoke time must not leave a peer without timeouts.
    let mut net = Net::lengths_only(9, Duration::from_millis(5));
    let cap = Capacity {
        up: MB,
        down: 4 * MB,
    };
    let (origin, ticket) = net.add_origin(4 << 20, cap, Behavior::Honest);
    let early = net.add_peer(&ticket, cap, Behavior::Honest);
    net.connect(early, origin);
    let late = net.add_peer(&ticket, cap, Behavior::Honest);
    let join = pollen_core::Instant::ZERO + Duration::from_secs(15);
    net.join_later(late, join, 1);
    net.run(Duration::from_secs(16));
    assert!(net.is_active(late), "joined");
    assert!(net.completed_at(late).is_none(), "still downloading");
    let timer = net.timer(late).expect("a downloading peer has a timer");
    assert!(
        timer > join,
        "the timer is the joined swarm's own: {timer:?}"
    );
    net.run(Duration::from_secs(3600));
    assert!(net.completed_at(late).is_some());
}

/// A scenario whose one origin spreads first or not, with `extra` peer-group lines.
fn spreading(spread_first: bool, extra: &str) -> Scenario {
    let text = format!(
        r#"
        name = "spread"
        artifact_mib = 4
        peers = [60]
        degree = 4
        latency_ms = 5
        [[origins]]
        up_mb_s = 20
        down_mb_s = 20
        spread_first = {spread_first}
        [[groups]]
        up_mb_s = 5
        down_mb_s = 20
        {extra}
        "#
    );
    Scenario::parse(&text, "spread").expect("valid scenario")
}

#[test]
fn an_origin_that_spreads_first_sends_fewer_copies_and_every_peer_completes() {
    let plain = quiet(&spreading(false, ""));
    let spread = quiet(&spreading(true, ""));
    assert_eq!((plain.incomplete, spread.incomplete), (0, 0));
    assert!(
        spread.origin_copies < plain.origin_copies,
        "{} vs {}",
        spread.origin_copies,
        plain.origin_copies
    );
    assert!(spread.origin_copies >= 1.0, "{spread:?}");
}

#[test]
fn pieces_an_origin_refused_come_from_it_again_when_their_holders_crash() {
    // Most peers crash early, so some survivors lose every neighbour that held a piece the
    // origin refused them (it still sees other holders). The origin advertises refused pieces
    // again at its next rechoke and serves a link that asks once more, so they complete.
    let churn = "[churn]\ncrash = 0.7\nwindow_s = [0.2, 1.0]";
    let r = quiet(&spreading(true, churn));
    assert_eq!(r.incomplete, 0, "every peer that stayed completed: {r:?}");
}

#[test]
fn an_origin_with_few_links_serves_at_full_rate_even_when_spreading_first() {
    // Ten peers: the origin has fewer links than SPREAD_FIRST_MIN_LINKS, so it serves every
    // request, and the run is the same as with spread_first off.
    let few = |on: bool| {
        let mut s = spreading(on, "");
        s.peers = vec![10];
        quiet(&s)
    };
    let (plain, spread) = (few(false), few(true));
    assert_eq!(spread.incomplete, 0);
    assert_eq!(spread.origin_copies, plain.origin_copies);
    assert_eq!(spread.p99, plain.p99);
    assert!(plain.origin_copies > 1.5, "{plain:?}");
}
