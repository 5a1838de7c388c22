//! The tickets of downloads, kept beside the store so a restarted node knows where to look.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use pollen_core::Ticket;

/// Directory of saved tickets inside the data directory.
fn dir(data: &Path) -> PathBuf {
    data.join("tickets")
}

/// Saves a ticket durably (write to a temporary file, sync, rename).
pub(crate) fn save(data: &Path, ticket: &Ticket) -> std::io::Result<()> {
    let dir = dir(data);
    fs::create_dir_all(&dir)?;
    let path = dir.join(ticket.id().to_string());
    let tmp = dir.join(format!(".{}.tmp", ticket.id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(ticket.to_string().as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(&dir)?.sync_all()
}

/// Forgets the saved ticket of `id`, if any.
pub(crate) fn remove(data: &Path, id: &pollen_core::ContentId) -> std::io::Result<()> {
    match fs::remove_file(dir(data).join(id.to_string())) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every saved ticket that parses; unreadable ones are reported and skipped.
pub(crate) fn load_all(data: &Path) -> Vec<Ticket> {
    let Ok(entries) = fs::read_dir(dir(data)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        match fs::read_to_string(&path).map(|s| s.parse::<Ticket>()) {
            Ok(Ok(t)) if path.file_name().and_then(|n| n.to_str()) == Some(&t.id().to_string()) => {
                out.push(t)
            }
            _ => tracing::warn!("ignoring unreadable ticket file {}", path.display()),
        }
    }
    out.sort_by_key(Ticket::id);
    out
}
