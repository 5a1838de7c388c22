//! Cold-fetch latency: the wall time of `pollen get TICKET -o FILE` for an artifact the node
//! does not hold yet, from a seed on loopback, for small sizes; p50 and p99 over many runs.
//! Every run shares fresh bytes, so each get is cold. Against the same get of an artifact the
//! node already holds, in the same run (the fixed cost of the command itself).
//!
//! `cargo build --release -p pollen -p pollen-tests && target/release/bench-latency [RUNS]`

use std::{
    path::Path,
    time::{Duration, Instant},
};

use pollen_tests::{Node, NodeOpts, finish_get, pseudo_random};

/// The sizes measured, with their labels.
const SIZES: [(usize, &str); 3] = [(1 << 10, "1 KiB"), (1 << 20, "1 MiB"), (10 << 20, "10 MiB")];

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("RUNS is a number"))
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = Node::start(&dir.path().join("seed"), &NodeOpts::default());
    let node = Node::start(
        &dir.path().join("node"),
        &NodeOpts {
            peers: vec![seed.listen.clone()],
            ..NodeOpts::default()
        },
    );
    println!("size      runs  cold p50  cold p99  held p50  held p99");
    for (i, (size, label)) in SIZES.iter().enumerate() {
        let mut cold = Vec::new();
        let mut held = Vec::new();
        for run in 0..runs {
            let src = dir.path().join("src.bin");
            std::fs::write(&src, pseudo_random(*size, (i * 100_000 + run) as u64))
                .expect("write artifact");
            let ticket = seed.share(&src);
            cold.push(timed_get(&node, &ticket, &dir.path().join("cold.out")));
            held.push(timed_get(&node, &ticket, &dir.path().join("held.out")));
        }
        println!(
            "{label:<9} {runs:>4}  {:>8}  {:>8}  {:>8}  {:>8}",
            ms(percentile(&mut cold, 0.5)),
            ms(percentile(&mut cold, 0.99)),
            ms(percentile(&mut held, 0.5)),
            ms(percentile(&mut held, 0.99)),
        );
    }
}

/// Runs `pollen get` to a fresh output file; returns its wall time.
fn timed_get(node: &Node, ticket: &str, out: &Path) -> Duration {
    let _ = std::fs::remove_file(out);
    let start = Instant::now();
    let get = node.cli_spawn(&["get", ticket, "-o", out.to_str().expect("utf-8 path")]);
    finish_get(get);
    start.elapsed()
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
