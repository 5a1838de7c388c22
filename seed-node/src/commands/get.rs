//! `pollen get`: fetch an artifact through the running node, show progress, write it out, and
//! check that what was written hashes to the content id.

use std::{
    fs::File,
    io::{IsTerminal, Read},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pollen_core::{ContentId, Ticket};

use crate::{
    api_types::{ArtifactReply, ArtifactStatus, ExportRequest, GetReply, GetRequest},
    cli::GetArgs,
    client::Client,
};

/// How long one request for news waits on the node.
const WAIT: Duration = Duration::from_secs(1);
/// The least time the node waits to answer with progress alone (a few updates a second are
/// enough; completion comes at once).
const MIN_UPDATE: Duration = Duration::from_millis(100);

/// Runs `pollen get`: exit 0 only when the output's BLAKE3 equals the content id.
pub(crate) async fn run(args: &GetArgs) -> Result<ExitCode> {
    let ticket: Ticket = args.ticket.parse().context("invalid ticket")?;
    let output = output_path(args.output.as_deref(), &ticket, args.force)?;
    let client = Client::new(&args.api.api);
    let reply: GetReply = client
        .post(
            "/api/get",
            &GetRequest {
                ticket: args.ticket.trim().to_string(),
            },
        )
        .await?;
    let id: ContentId = reply.id.parse().context("the node replied with a bad id")?;
    wait_complete(&client, &ticket, Duration::from_secs(args.stall_timeout)).await?;
    // The file may have appeared while the artifact arrived.
    refuse_existing(&output, args.force)?;
    client
        .post::<_, ()>(
            "/api/export",
            &ExportRequest {
                id: id.to_string(),
                path: output.to_string_lossy().into_owned(),
                replace: args.force,
            },
        )
        .await
        .with_context(|| format!("writing {}", output.display()))?;
    let written = hash_file(&output).with_context(|| format!("checking {}", output.display()))?;
    if written != id {
        bail!(
            "{} hashes to {written}, not {id}: do not use it",
            output.display()
        );
    }
    eprintln!("{}: verified, BLAKE3 {id}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// The absolute output path: `-o`, else the ticket's name made safe ([`safe_file_name`]),
/// else the content id. An existing file is refused unless `force`.
fn output_path(output: Option<&Path>, ticket: &Ticket, force: bool) -> Result<PathBuf> {
    let path = match output {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(
            ticket
                .name()
                .and_then(safe_file_name)
                .unwrap_or_else(|| ticket.id().to_string()),
        ),
    };
    let path = std::path::absolute(&path)
        .with_context(|| format!("{}: cannot resolve", path.display()))?;
    if path.is_dir() {
        bail!(
            "{} is a directory; give a file path with -o",
            path.display()
        );
    }
    refuse_existing(&path, force)?;
    Ok(path)
}

/// Fails if `path` exists and `force` was not given.
fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        bail!(
            "{} exists; pass --force to replace it, or -o another path",
            path.display()
        );
    }
    Ok(())
}

/// A ticket's name as a file name that cannot surprise: characters that change how text
/// reads (bidirectional overrides and other invisible formatting) become `_`, and so does a
/// leading dot (no hidden or dot files such as `.bashrc`). `None` if nothing is left.
/// Tickets already refuse path separators and control characters.
fn safe_file_name(name: &str) -> Option<String> {
    let invisible = |c: char| {
        matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    };
    let mut out: String = name
        .chars()
        .map(|c| {
            if invisible(c) || c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    out = out.trim().to_string();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    (!out.is_empty() && out.chars().any(|c| c != '_')).then_some(out)
}

/// Waits for the node to hold the artifact whole, showing progress. Fails once nothing new
/// arrived for `stall`, naming what the node tried.
async fn wait_complete(client: &Client, ticket: &Ticket, stall: Duration) -> Result<()> {
    let id = ticket.id().to_string();
    let mut progress = Progress::new(ticket.size());
    let mut last_change = Instant::now();
    let mut last_bytes = None;
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            None => format!("/api/artifacts/{id}"),
            Some(g) => format!(
                "/api/artifacts/{id}?after={g}&wait_ms={}&min_ms={}",
                WAIT.as_millis(),
                MIN_UPDATE.as_millis()
            ),
        };
        let reply: ArtifactReply = client
            .get(&path)
            .await
            .context("asking the node how the fetch goes")?;
        after = Some(reply.generation);
        let a = reply.artifact;
        if let Some(err) = &a.error {
            progress.finish();
            bail!("the node cannot store the artifact: {err}");
        }
        progress.update(&a);
        if a.complete {
            progress.finish();
            return Ok(());
        }
        if last_bytes != Some((a.have_bytes, a.downloaded)) {
            last_bytes = Some((a.have_bytes, a.downloaded));
            last_change = Instant::now();
        } else if last_change.elapsed() > stall {
            progress.finish();
            bail!("{}", stalled_message(&a, stall));
        }
    }
}

/// Why a fetch without progress gives up: what the node tried, address by address.
fn stalled_message(a: &ArtifactStatus, stall: Duration) -> String {
    let mut msg = format!(
        "nothing arrived for {}s ({} of {} bytes held)",
        stall.as_secs(),
        a.have_bytes,
        a.size
    );
    if a.sources.is_empty() {
        msg.push_str(
            ": the node knows no peer that holds it (the ticket names none, no --peer, and no \
             cluster member says it holds it)",
        );
        return msg;
    }
    msg.push_str("; the node tried:");
    for s in &a.sources {
        let linked = a.peers.iter().find(|p| p.addr == s.addr);
        let what = match (s.state.as_str(), linked, &s.error) {
            ("linked", Some(p), _) => format!(
                "linked, holds {} pieces, sent {} bytes",
                p.pieces, p.downloaded
            ),
            ("linked", None, _) => "linked".to_string(),
            (state, _, Some(err)) => format!("{state}, {} failed dials, last: {err}", s.failures),
            (state, _, None) => state.to_string(),
        };
        msg.push_str(&format!("\n  {}: {what}", s.addr));
    }
    msg
}

/// A progress bar on a terminal, plain lines otherwise.
enum Progress {
    Bar(ProgressBar),
    Lines { last: Option<Instant> },
}

impl Progress {
    fn new(size: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(size);
            let style = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            Progress::Bar(bar)
        } else {
            Progress::Lines { last: None }
        }
    }

    fn update(&mut self, a: &ArtifactStatus) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(a.have_bytes);
                bar.set_message(format!("{} peers", a.peers.len()));
            }
            Progress::Lines { last } => {
                if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) && !a.complete {
                    return;
                }
                *last = Some(Instant::now());
                let pct = if a.size == 0 {
                    100.0
                } else {
                    100.0 * a.have_bytes as f64 / a.size as f64
                };
                eprintln!(
                    "{} / {} ({pct:.1}%), {}/s, {} peers",
                    human_bytes(a.have_bytes),
                    human_bytes(a.size),
                    human_bytes(a.download_rate),
                    a.peers.len()
                );
            }
        }
    }

    fn finish(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// Streams a file through BLAKE3.
fn hash_file(path: &Path) -> Result<ContentId> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// Bytes in binary units, e.g. `12.3 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_neither_hidden_nor_deceptive() {
        assert_eq!(safe_file_name("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_file_name(".bashrc").as_deref(), Some("_bashrc"));
        assert_eq!(safe_file_name("..x").as_deref(), Some("_.x"));
        // A right-to-left override makes "evil\u{202E}fdp.exe" read as "evilexe.pdf".
        assert_eq!(
            safe_file_name("evil\u{202E}fdp.exe").as_deref(),
            Some("evil_fdp.exe")
        );
        assert_eq!(
            safe_file_name("a\u{200B}b\u{2066}c").as_deref(),
            Some("a_b_c")
        );
        assert_eq!(safe_file_name("\u{202E}"), None);
        assert_eq!(safe_file_name(" "), None);
        assert_eq!(safe_file_name("日本語.txt").as_deref(), Some("日本語.txt"));
    }

    #[test]
    fn an_existing_output_is_refused_without_force() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.bin");
        refuse_existing(&path, false).expect("nothing there yet");
        std::fs::write(&path, b"mine").expect("write");
        let err = refuse_existing(&path, false).expect_err("exists");
        assert!(err.to_string().contains("--force"), "{err}");
        refuse_existing(&path, true).expect("--force replaces");
    }
}
