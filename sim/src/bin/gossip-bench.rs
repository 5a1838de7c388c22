//! `gossip-bench`: the membership benchmark in the simulator (see `pollen_sim::gossip_bench`).

use std::time::{Duration, Instant};

use clap::Parser;
use pollen_sim::gossip_bench::{false_declarations, measure};

/// Measures gossip membership at several cluster sizes: rounds for a fact to reach every
/// live node, traffic per node per round, time to declare a crashed node dead, and false
/// declarations at 5% packet loss.
#[derive(Debug, Parser)]
struct Args {
    /// Cluster sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    peers: Vec<usize>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes in the false-declaration run (0 skips it).
    #[arg(long, default_value_t = 100)]
    loss_nodes: usize,
    /// Simulated hours of the false-declaration run.
    #[arg(long, default_value_t = 1.0)]
    loss_hours: f64,
    /// Prints JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(bad) = args.peers.iter().find(|&&n| !(2..=20_000).contains(&n)) {
        eprintln!("gossip-bench: --peers: a cluster size must be 2 to 20000, not {bad}");
        return std::process::ExitCode::FAILURE;
    }
    if !(0.0..=1000.0).contains(&args.loss_hours) {
        eprintln!("gossip-bench: --loss-hours must be 0 to 1000");
        return std::process::ExitCode::FAILURE;
    }
    let mut reports = Vec::new();
    if !args.json {
        println!(
            "{:>6} {:>5} {:>7} {:>5} {:>10} {:>11} {:>11} {:>12} {:>9} {:>6}",
            "N",
            "view",
            "rounds",
            "goal",
            "pkts/rnd",
            "bytes/rnd",
            "spread pkt",
            "spread bytes",
            "detect s",
            "wall s"
        );
    }
    for &n in &args.peers {
        let started = Instant::now();
        let r = measure(n, args.seed);
        if !args.json {
            println!(
                "{:>6} {:>5} {:>7.1} {:>5} {:>10.2} {:>11.0} {:>11.2} {:>12.0} {:>9.1} {:>6.0}",
                r.n,
                if r.full_view { "full" } else { "part" },
                r.rounds_to_spread,
                r.rounds_goal,
                r.packets_per_node_round,
                r.bytes_per_node_round,
                r.spread_packets_per_node_round,
                r.spread_bytes_per_node_round,
                r.detect_s,
                started.elapsed().as_secs_f64()
            );
        }
        reports.push(r);
    }
    let mut false_rate = None;
    if args.loss_nodes > 0 && args.loss_hours > 0.0 {
        let d = Duration::from_secs_f64(args.loss_hours * 3600.0);
        let (falses, node_hours) = false_declarations(args.loss_nodes, 0.05, d, args.seed);
        let per_1000 = falses as f64 / node_hours * 1000.0;
        if !args.json {
            println!(
                "\nat 5% loss, {} nodes for {} h ({node_hours:.0} node-hours): {falses} false declarations ({per_1000:.2} per 1,000 node-hours)",
                args.loss_nodes, args.loss_hours
            );
        }
        false_rate = Some((falses, node_hours, per_1000));
    }
    if args.json {
        let json = serde_json::json!({
            "reports": reports,
            "false_declarations": false_rate.map(|(f, h, p)| serde_json::json!({
                "count": f, "node_hours": h, "per_1000_node_hours": p
            })),
        });
        println!("{json:#}");
    }
    std::process::ExitCode::SUCCESS
}
