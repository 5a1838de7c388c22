//! `pollen share`: import a file into the running node and print its ticket.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::{
    api_types::{ShareReply, ShareRequest},
    cli::ShareArgs,
    client::Client,
};

/// Runs `pollen share`; the ticket is the last line of output.
pub(crate) async fn run(args: &ShareArgs) -> Result<ExitCode> {
    let path = std::path::absolute(&args.path)
        .with_context(|| format!("{}: cannot resolve the path", args.path.display()))?;
    let meta = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{}: not a regular file", path.display());
    }
    eprintln!(
        "importing {} ({} bytes) into the node...",
        path.display(),
        meta.len()
    );
    let client = Client::new(&args.api.api);
    let reply: ShareReply = client
        .post(
            "/api/share",
            &ShareRequest {
                path: path.to_string_lossy().into_owned(),
            },
        )
        .await
        .with_context(|| format!("sharing {}", path.display()))?;
    eprintln!("seeding {} ({} bytes)", reply.id, reply.size);
    println!("{}", reply.ticket);
    Ok(ExitCode::SUCCESS)
}
