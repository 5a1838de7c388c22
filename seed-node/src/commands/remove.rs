//! `pollen cancel` and `pollen rm`: stop a fetch, or drop an artifact, and delete its files;
//! `pollen pin` and `pollen unpin`: keep an artifact whatever the storage limit, or not.

use std::process::ExitCode;

use anyhow::{Context, Result};
use pollen_core::{ContentId, Ticket};

use crate::{api_types::RemoveReply, cli::RemoveArgs, client::Client};

/// Runs `pollen cancel` (`only_incomplete`) or `pollen rm`.
pub(crate) async fn run(args: &RemoveArgs, only_incomplete: bool) -> Result<ExitCode> {
    let id = target_id(&args.target)?;
    let client = Client::new(&args.api.api);
    let query = if only_incomplete {
        "?only_incomplete=true"
    } else {
        ""
    };
    let reply: RemoveReply = client
        .delete(&format!("/api/artifacts/{id}{query}"))
        .await
        .with_context(|| format!("removing {id}"))?;
    let what = if reply.was_complete {
        "removed"
    } else {
        "cancelled the fetch of"
    };
    eprintln!("{what} {} and deleted its files", reply.id);
    Ok(ExitCode::SUCCESS)
}

/// Runs `pollen pin` (`pinned`) or `pollen unpin`.
pub(crate) async fn pin(args: &RemoveArgs, pinned: bool) -> Result<ExitCode> {
    let id = target_id(&args.target)?;
    let client = Client::new(&args.api.api);
    let path = format!("/api/artifacts/{id}/pin");
    let done: Result<()> = if pinned {
        client.post(&path, &()).await
    } else {
        client.delete(&path).await
    };
    done.with_context(|| format!("{} {id}", if pinned { "pinning" } else { "unpinning" }))?;
    eprintln!("{} {id}", if pinned { "pinned" } else { "unpinned" });
    Ok(ExitCode::SUCCESS)
}

/// The content id a command-line argument names: a hex id, or a ticket's.
fn target_id(s: &str) -> Result<ContentId> {
    let s = s.trim();
    if let Ok(id) = s.parse::<ContentId>() {
        return Ok(id);
    }
    s.parse::<Ticket>().map(|t| t.id()).map_err(|e| {
        anyhow::anyhow!("'{s}' is neither a content id (64 hex digits) nor a ticket: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_an_id_or_a_ticket() {
        let id = ContentId::from_bytes([7; 32]);
        assert_eq!(target_id(&id.to_string()).ok(), Some(id));
        let ticket = Ticket::new(id, 10).expect("valid");
        assert_eq!(target_id(&format!(" {ticket}\n")).ok(), Some(id));
        let err = target_id("nonsense").expect_err("refused");
        assert!(err.to_string().contains("neither a content id"), "{err}");
    }
}
