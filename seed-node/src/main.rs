//! `pollen`: the Pollen seed node and command-line interface.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Id(args) => commands::id::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pollen: {err:#}");
            ExitCode::FAILURE
        }
    }
}
