//! Small filesystem helpers: error mapping, durable writes, atomic replacement, cleanup guards.

use std::{
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use super::StoreError;

/// Maps an `io::Error` to [`StoreError::Io`] naming `action` and `path`.
pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Makes the entries of directory `dir` (creations, renames, deletions) durable.
pub(super) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

/// Creates `path`, which must not exist, writes `bytes` to it and fsyncs it (not its directory).
pub(super) fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = File::create_new(path).map_err(io_err("creating", path))?;
    file.write_all(bytes).map_err(io_err("writing", path))?;
    file.sync_all().map_err(io_err("syncing", path))
}

/// Atomically replaces `dir/name` with `bytes`: writes `dir/tmp_name`, fsyncs it, renames it
/// over `dir/name` and fsyncs `dir`. After a crash, `dir/name` holds either version, whole.
pub(super) fn replace_file(
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(bytes).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("syncing", &tmp))?;
    drop(file);
    let target = dir.join(name);
    fs::rename(&tmp, &target).map_err(io_err("replacing", &target))?;
    fsync_dir(dir)
}

/// Reads a whole file of at most `max` bytes; `Ok(None)` if it is longer.
pub(super) fn read_bounded(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Removes a file or directory on drop unless [`StagingPath::keep`] is called: the cleanup of
/// a staging directory or temporary file on every error path.
#[derive(Debug)]
pub(super) struct StagingPath {
    path: PathBuf,
    is_dir: bool,
    armed: bool,
}

impl StagingPath {
    /// Guards a directory (removed recursively).
    pub(super) fn dir(path: PathBuf) -> Self {
        Self {
            path,
            is_dir: true,
            armed: true,
        }
    }

    /// Guards a file.
    pub(super) fn file(path: PathBuf) -> Self {
        Self {
            path,
            is_dir: false,
            armed: true,
        }
    }

    /// The guarded path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Disarms the guard: the path has been renamed away or is wanted.
    pub(super) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for StagingPath {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a staging directory left behind is cleared when the store next opens.
            let _ = if self.is_dir {
                fs::remove_dir_all(&self.path)
            } else {
                fs::remove_file(&self.path)
            };
        }
    }
}
