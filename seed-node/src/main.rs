//! `pollen`: the Pollen seed node and command-line interface.

mod api_types;
mod cli;
mod client;
mod commands;
mod config;
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
    let args = match config::expand(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("pollen: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = cli::Cli::parse_from(args);
    let result = match cli.command {
        cli::Command::Id(args) => commands::id::run(&args),
        cli::Command::Config(cli::ConfigCommand::Check { path }) => match config::check(&path) {
            Ok(n) => {
                println!("{}: {n} settings, all valid", path.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e),
        },
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
                init_logging(args.log_format);
                node::run(*args).await.map(|()| ExitCode::SUCCESS)
            }
            cli::Command::Share(args) => commands::share::run(&args).await,
            cli::Command::Get(args) => commands::get::run(&args).await,
            cli::Command::Status(args) => commands::status::run(&args).await,
            cli::Command::Cancel(args) => commands::remove::run(&args, true).await,
            cli::Command::Rm(args) => commands::remove::run(&args, false).await,
            cli::Command::Pin(args) => commands::remove::pin(&args, true).await,
            cli::Command::Unpin(args) => commands::remove::pin(&args, false).await,
            cli::Command::Id(_) | cli::Command::Config(_) => {
                unreachable!("handled without a runtime")
            }
        }
    })
}

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One JSON object a line, fields (artifact id, peer, ...) as keys.
        cli::LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}
