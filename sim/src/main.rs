//! `pollen-sim`: runs scenario files and reports distribution time against the lower bound.

use std::{io::IsTerminal, path::PathBuf, time::Instant};

use anyhow::{Context, bail};
use clap::Parser;
use pollen_sim::{chart, run, scenario::Scenario};

/// mimalloc: the simulator allocates and frees a frame or unit per event, and with two
/// threads most are freed by the thread that did not allocate them, which glibc's arenas
/// serialise.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the real Pollen swarm code over a simulated network, as each scenario file says.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Scenario files (TOML; see sim/scenarios/).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Runs only these peer counts instead of the scenario's (comma-separated).
    #[arg(long, value_delimiter = ',')]
    peers: Option<Vec<usize>>,
    /// Overrides the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Prints the reports as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Writes an SVG chart of completion time against N, one file per scenario:
    /// DIR/<scenario>.svg.
    #[arg(long, value_name = "DIR")]
    chart: Option<PathBuf>,
    /// Threads to run on (1 or 2; the results are the same). Default: 2 if the machine has
    /// two cores.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: Option<u8>,
}

fn main() -> std::process::ExitCode {
    match main_inner() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pollen-sim: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main_inner() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut scenarios = Vec::new();
    for path in &args.scenarios {
        let mut s = Scenario::load(path)?;
        if let Some(seed) = args.seed {
            s.seed = seed;
        }
        if let Some(peers) = &args.peers {
            if let Some(&bad) = peers
                .iter()
                .find(|&&n| n == 0 || n > pollen_sim::scenario::MAX_PEERS)
            {
                bail!(
                    "--peers: a count must be 1 to {}, not {bad}",
                    pollen_sim::scenario::MAX_PEERS
                );
            }
            s.peers.clone_from(peers);
        }
        scenarios.push(s);
    }
    if let Some(dir) = &args.chart {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the chart directory {}", dir.display()))?;
    }
    let tty = std::io::stderr().is_terminal();
    let mut chart_names = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    if !args.json {
        println!("{}", table_header());
    }
    for s in &scenarios {
        let mut reports = Vec::new();
        for &n in &s.peers {
            let started = Instant::now();
            let mut last = Instant::now();
            let threads = args.threads.map_or_else(run::default_threads, usize::from);
            let report = run::run_on(s, n, threads, |sim, done| {
                // At most a line a second of wall time; a live line on a terminal.
                if last.elapsed().as_secs_f64() >= 1.0 {
                    last = Instant::now();
                    let line = format!(
                        "{} N={n}: {:.1} s simulated, {done}/{n} peers complete, {:.0} s so far",
                        s.name,
                        sim.as_secs_f64(),
                        started.elapsed().as_secs_f64()
                    );
                    if tty {
                        eprint!("\r{line}\x1b[K");
                    } else {
                        eprintln!("{line}");
                    }
                }
            });
            if tty {
                eprint!("\r\x1b[K");
            }
            if !args.json {
                println!("{}", table_row(&report, started.elapsed().as_secs_f64()));
                for g in &report.groups {
                    println!("{}", group_row(g));
                }
            }
            reports.push(report);
        }
        if let Some(dir) = &args.chart {
            // Two scenarios whose names read alike get a file each.
            let base = file_name(&s.name);
            let mut name = base.clone();
            let mut n = 1;
            while !chart_names.insert(name.clone()) {
                n += 1;
                name = format!("{base}-{n}");
            }
            let path = dir.join(format!("{name}.svg"));
            std::fs::write(&path, chart::svg(&s.name, &reports))
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("chart: {}", path.display());
        }
        all.extend(reports);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

fn table_header() -> String {
    format!(
        "{:<16} {:>6} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>5} {:>7} {:>6}",
        "scenario",
        "N",
        "F MiB",
        "piece",
        "T_min s",
        "p50",
        "p99",
        "max",
        "origin",
        "zones",
        "util",
        "single",
        "wall s"
    )
}

fn table_row(r: &run::Report, wall: f64) -> String {
    let piece = if r.piece_bytes >= 1 << 20 {
        format!("{}MiB", r.piece_bytes >> 20)
    } else {
        format!("{}KiB", r.piece_bytes >> 10)
    };
    let mut row = format!(
        "{:<16} {:>6} {:>9.1} {:>8} {:>8.2} {:>6} {:>6} {:>6} {:>7.2} {:>6.2} {:>5.2} {:>7.1} {:>6.1}",
        r.scenario,
        r.peers,
        r.artifact_bytes as f64 / f64::from(1 << 20),
        piece,
        r.t_min_s,
        ratio(r.p50),
        ratio(r.p99),
        ratio(r.max),
        r.origin_copies,
        r.cross_zone_copies,
        r.upload_utilisation,
        r.single_origin,
        wall
    );
    if r.incomplete > 0 {
        row.push_str(&format!("  ({} incomplete)", r.incomplete));
    }
    row
}

/// One group's times, under its run's row.
fn group_row(g: &run::GroupReport) -> String {
    let mut row = format!(
        "  {:<32} {:>5} {:>6} {:>6} {:>6}",
        g.label,
        g.peers,
        ratio(g.p50),
        ratio(g.p99),
        ratio(g.max)
    );
    if g.incomplete > 0 {
        row.push_str(&format!("  ({} incomplete)", g.incomplete));
    }
    row
}

/// A ratio with two decimals, or "inf".
fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "inf".into()
    }
}

/// A scenario name made safe for a file name.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
