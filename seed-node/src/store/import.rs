//! Importing a local file for sharing.

use std::{
    fs::{File, Metadata},
    io::{self, Read, Write},
    path::Path,
};

use pollen_core::{Bitfield, BuildError, ManifestBuilder, ticket};

use super::{Artifact, COPY_BUF, DATA_FILE, Store, StoreError, fsutil::io_err};

impl Store {
    /// Imports the regular file at `path` as a complete artifact named after the file.
    ///
    /// The file is streamed once through a 1 MiB buffer into a staging directory while a
    /// [`ManifestBuilder`] hashes it. `progress` is called after every chunk with the bytes
    /// done so far; the last call reports the full size (a single call with 0 for an empty
    /// file). If the file changes while it is read, the import fails with
    /// [`StoreError::Changed`]. That is caught when the builder sees a different length, or when
    /// the length or modification time differ afterwards. On any error the staging directory
    /// is removed and the store is unchanged. If the store already has this artifact, the
    /// freshly imported copy replaces it (it is complete and just verified), unless it is open,
    /// which gives [`StoreError::InUse`].
    pub(crate) fn import_file(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Artifact, StoreError> {
        let mut src = File::open(path).map_err(io_err("opening", path))?;
        let before = src
            .metadata()
            .map_err(io_err("reading metadata of", path))?;
        if !before.is_file() {
            return Err(StoreError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let size = before.len();
        let mut builder = ManifestBuilder::new(size).map_err(|source| StoreError::TooLarge {
            path: path.to_path_buf(),
            source,
        })?;
        // A file name that is not a valid artifact name is left out, as `pollen id` does.
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| ticket::check_name(n).is_ok());

        let staging = self.stage()?;
        let data_path = staging.path().join(DATA_FILE);
        let mut data = File::create_new(&data_path).map_err(io_err("creating", &data_path))?;
        data.set_len(size).map_err(io_err("sizing", &data_path))?;
        let mut buf = vec![0; COPY_BUF];
        let mut done = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("reading", path)(e)),
            };
            builder.update(&buf[..n]).map_err(changed(path))?;
            data.write_all(&buf[..n])
                .map_err(io_err("writing", &data_path))?;
            done += n as u64;
            progress(done);
        }
        let manifest = builder.finish().map_err(changed(path))?;
        if size == 0 {
            progress(0);
        }
        let after = src
            .metadata()
            .map_err(io_err("reading metadata of", path))?;
        if !same_version(&before, &after) {
            return Err(StoreError::Changed {
                path: path.to_path_buf(),
                source: None,
            });
        }
        data.sync_all().map_err(io_err("syncing", &data_path))?;
        drop(data);

        let pieces = manifest.layout().piece_count();
        self.finish_staging(&staging, &manifest, name, &Bitfield::full(pieces))?;
        let slot = self.shared.reserve(manifest.id())?;
        self.install(staging, slot, true)
    }
}

/// Maps a [`ManifestBuilder`] length error to [`StoreError::Changed`].
fn changed(path: &Path) -> impl FnOnce(BuildError) -> StoreError + '_ {
    move |e| StoreError::Changed {
        path: path.to_path_buf(),
        source: Some(e),
    }
}

/// Whether two stats of a file show the same length and modification time. A filesystem
/// without modification times can only be checked by length.
fn same_version(before: &Metadata, after: &Metadata) -> bool {
    before.len() == after.len() && before.modified().ok() == after.modified().ok()
}
