//! `pollen-signal`: runs the signaling server alone.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use clap::Parser;
use pollen_signal::{Config, Limits, PATH, Signaling};

/// Pollen's WebSocket bootstrap server: peers find a few members of a swarm and exchange
/// WebRTC offers through it.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:7712")]
    listen: SocketAddr,
    /// Largest message in bytes (1024 to 65536).
    #[arg(long, default_value_t = Limits::default().max_message,
          value_parser = clap::value_parser!(u32).range(1024..=65536))]
    max_message: u32,
    /// Messages per second per connection (bursts of four times as many pass).
    #[arg(long, default_value_t = Limits::default().rate_per_second,
          value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Most swarms one connection may join.
    #[arg(long, default_value_t = Limits::default().max_swarms)]
    max_swarms: u32,
    /// Most members returned by one join.
    #[arg(long, default_value_t = Limits::default().max_members)]
    max_members: u32,
    /// Seconds without a message before a connection is closed.
    #[arg(long, default_value_t = Limits::default().idle_timeout_secs)]
    idle_timeout: u32,
    /// Seconds a connection may stay in no swarm before it is closed, pings or not.
    #[arg(long, default_value_t = Config::default().unjoined_timeout.as_secs())]
    unjoined_timeout: u64,
    /// Most connections at once.
    #[arg(long, default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Most connections at once from one IPv4 address or IPv6 /64 (refused with 429 beyond);
    /// behind a reverse proxy, where all come from its address, set it to --max-connections.
    #[arg(long, default_value_t = Config::default().max_connections_per_ip,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_ip: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run(Args::parse()).await {
        eprintln!("pollen-signal: {err:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let limits = Limits {
        max_message: args.max_message,
        rate_per_second: args.rate,
        burst: args.rate.saturating_mul(4),
        max_swarms: args.max_swarms,
        max_members: args.max_members,
        idle_timeout_secs: args.idle_timeout,
    };
    let server = Signaling::new(Config {
        limits,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        unjoined_timeout: Duration::from_secs(args.unjoined_timeout),
        ..Config::default()
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("pollen-signal: listening on ws://{addr}{PATH}");
    tokio::select! {
        () = pollen_signal::serve(listener, server) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
