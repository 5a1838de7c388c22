//! `pollen`: the Pollen seed node and command-line interface.

mod api_types;
mod cli;
mod client;
mod commands;
mod error_chain;
mod node;
mod store;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc keeps freed piece-sized buffers for reuse; the system allocator maps and unmaps
/// them, and every fresh mapping costs page faults and zeroing on the data path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Id(args) => commands::id::run(&args),
        command => run_async(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pollen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the commands that need the async runtime.
fn run_async(command: cli::Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            cli::Command::Node(args) => {
                init_logging();
                node::run(*args).await.map(|()| ExitCode::SUCCESS)
            }
            cli::Command::Share(args) => commands::share::run(&args).await,
            cli::Command::Get(args) => commands::get::run(&args).await,
            cli::Command::Status(args) => commands::status::run(&args).await,
            cli::Command::Cancel(args) => commands::remove::run(&args, true).await,
            cli::Command::Rm(args) => commands::remove::run(&args, false).await,
            cli::Command::Id(_) => unreachable!("handled without a runtime"),
        }
    })
}

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
