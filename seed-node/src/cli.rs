//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pollen: verified peer-to-peer distribution of large artifacts.
#[derive(Debug, Parser)]
#[command(name = "pollen", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the content id of files, in the same format as `b3sum`.
    Id(IdArgs),
}

/// Arguments of `pollen id`.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// Print a ticket for each file instead of its content id.
    #[arg(long)]
    pub(crate) ticket: bool,
    /// Files to hash; `-` reads standard input (not with --ticket).
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
}
