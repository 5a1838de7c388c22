//! `pollen status`: the running node's artifacts and peers.

use std::process::ExitCode;

use anyhow::Result;

use crate::{api_types::Status, cli::StatusArgs, client::Client, commands::get::human_bytes};

/// Runs `pollen status`.
pub(crate) async fn run(args: &StatusArgs) -> Result<ExitCode> {
    let status: Status = Client::new(&args.api.api).get("/api/status").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let zone = if status.zone.is_empty() {
        String::new()
    } else {
        format!("  zone {}", status.zone)
    };
    println!(
        "node {}  peers on {} (advertised {}){zone}",
        status.peer_id, status.listen, status.advertise
    );
    print_members(&status);
    if args.cluster {
        print_holders(&status);
        return Ok(ExitCode::SUCCESS);
    }
    if status.artifacts.is_empty() {
        println!("no artifacts");
    }
    for a in &status.artifacts {
        let pct = if a.size == 0 {
            100.0
        } else {
            100.0 * a.have_bytes as f64 / a.size as f64
        };
        let state = match (&a.error, a.complete) {
            (Some(e), _) => format!("error: {e}"),
            (None, true) => "seeding".to_string(),
            (None, false) => "fetching".to_string(),
        };
        println!(
            "\n{}  {}\n  {} of {} ({pct:.1}%), {state}\n  down {}/s  up {}/s  downloaded {}  uploaded {}  peers {}",
            a.id,
            a.name.as_deref().unwrap_or("-"),
            human_bytes(a.have_bytes),
            human_bytes(a.size),
            human_bytes(a.download_rate),
            human_bytes(a.upload_rate),
            human_bytes(a.downloaded),
            human_bytes(a.uploaded),
            a.peers.len(),
        );
        for p in &a.peers {
            println!(
                "    {}  {:<22} {:>6} pieces  down {:>10}  up {:>10}",
                p.peer_id,
                p.addr,
                p.pieces,
                human_bytes(p.downloaded),
                human_bytes(p.uploaded)
            );
        }
        if !a.banned.is_empty() {
            println!("  banned: {}", a.banned.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The cluster as gossip tells it: one line per member.
fn print_members(status: &Status) {
    let alive = status
        .members
        .iter()
        .filter(|m| m.status == "alive")
        .count();
    println!(
        "\ncluster: {} members known, {alive} alive (this node not counted)",
        status.members.len()
    );
    for m in &status.members {
        let holds: Vec<String> = m
            .holds
            .iter()
            .map(|h| {
                let short = h.id.get(..12).unwrap_or(&h.id);
                if h.complete {
                    short.to_string()
                } else {
                    format!("{short} (partial)")
                }
            })
            .collect();
        let load = if m.upload_capacity > 0 {
            format!("{}/s at {}%", human_bytes(m.upload_capacity), m.load)
        } else {
            "-".to_string()
        };
        println!(
            "    {}  {:<8} zone {:<10} {:<22} upload {:<16} holds {}",
            m.peer_id,
            m.status,
            if m.zone.is_empty() { "-" } else { &m.zone },
            m.addr.as_deref().unwrap_or("-"),
            load,
            if holds.is_empty() {
                "nothing".to_string()
            } else {
                holds.join(", ")
            }
        );
    }
}

/// Every artifact the cluster knows of: how many alive members hold it whole or in part
/// (this node included).
fn print_holders(status: &Status) {
    use std::collections::BTreeMap;
    let mut holders: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for a in &status.artifacts {
        let e = holders.entry(a.id.as_str()).or_default();
        if a.complete {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    for m in status.members.iter().filter(|m| m.status == "alive") {
        for h in &m.holds {
            let e = holders.entry(h.id.as_str()).or_default();
            if h.complete {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    let nodes = 1 + status
        .members
        .iter()
        .filter(|m| m.status == "alive")
        .count();
    println!("\nartifacts in the cluster ({nodes} alive nodes):");
    for (id, (whole, partial)) in holders {
        println!("    {id}  held whole by {whole}, fetching on {partial}");
    }
}
