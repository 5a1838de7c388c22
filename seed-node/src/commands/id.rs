//! `pollen id`: content ids (or tickets) of files, printed like `b3sum`.

use std::{
    fs::File,
    io::{self, Read, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use pollen_core::{ContentId, Manifest, ManifestBuilder, Ticket, ticket};

use crate::cli::IdArgs;

/// Read buffer size: large enough for BLAKE3's SIMD paths to stay busy.
const READ_BUF: usize = 1 << 20;

/// Runs `pollen id`; a file that cannot be read is reported and the others are still printed.
pub(crate) fn run(args: &IdArgs) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut buf = vec![0u8; READ_BUF];
    let mut failed = false;
    for path in &args.paths {
        match line_for(path, args.ticket, &mut buf) {
            Ok(line) => {
                writeln!(out, "{line}").context("writing to standard output")?;
            }
            Err(err) => {
                // Keep the order of lines and messages as a person reading both would expect.
                out.flush().context("writing to standard output")?;
                eprintln!("pollen: {}: {err:#}", path.display());
                failed = true;
            }
        }
    }
    out.flush().context("writing to standard output")?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn line_for(path: &Path, want_ticket: bool, buf: &mut [u8]) -> Result<String> {
    if path.as_os_str() == "-" {
        if want_ticket {
            bail!("--ticket needs a file: the size of standard input is not known in advance");
        }
        let id = hash_stream(&mut io::stdin().lock(), buf)?;
        return Ok(b3sum_line(&id, path));
    }
    let manifest = manifest_of_file(path, buf)?;
    if want_ticket {
        let mut ticket = Ticket::new(manifest.id(), manifest.layout().size())?;
        // A file name that cannot be offered as a plain name is left out of the ticket.
        if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| ticket::check_name(n).is_ok())
        {
            ticket = ticket.with_name(name)?;
        }
        Ok(ticket.to_string())
    } else {
        Ok(b3sum_line(&manifest.id(), path))
    }
}

/// Streams a file through a manifest builder, never holding it in memory.
pub(crate) fn manifest_of_file(path: &Path, buf: &mut [u8]) -> Result<Manifest> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut builder = ManifestBuilder::new(size)?;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        builder
            .update(&buf[..n])
            .context("the file changed while it was being read")?;
    }
    builder
        .finish()
        .context("the file changed while it was being read")
}

fn hash_stream(reader: &mut impl Read, buf: &mut [u8]) -> Result<ContentId> {
    let mut hasher = blake3::Hasher::new();
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(hasher.finalize().into()),
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Formats `<hex>  <path>` exactly as `b3sum` does, escaping `\`, newline and carriage return
/// (and then starting the line with `\`).
fn b3sum_line(id: &ContentId, path: &Path) -> String {
    let name = path.to_string_lossy();
    if name.contains(['\\', '\n', '\r']) {
        let escaped = name
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{id}  {escaped}")
    } else {
        format!("{id}  {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_b3sum() {
        let id = ContentId::of(b"");
        assert_eq!(b3sum_line(&id, Path::new("a b")), format!("{id}  a b"));
        assert_eq!(
            b3sum_line(&id, Path::new("a\\b\nc")),
            format!("\\{id}  a\\\\b\\nc")
        );
    }
}
