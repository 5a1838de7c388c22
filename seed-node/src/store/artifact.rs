//! One stored artifact: verified reads, batched durable writes, export.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use pollen_core::{Bitfield, ContentId, Manifest, PieceError};

use super::{
    COPY_BUF, DATA_FILE, FLUSH_BYTES, FormatError, HAVE_TMP_FILE, Slot, StoreError, files,
    fsutil::{StagingPath, fsync_dir, io_err},
};

/// An open artifact. There is at most one handle per artifact. It keeps the store locked.
///
/// Dropping it flushes, but errors are lost then: call [`Artifact::flush`] to see them.
#[derive(Debug)]
pub(crate) struct Artifact {
    /// Exclusive use of this id; also keeps the data directory locked.
    slot: Slot,
    dir: PathBuf,
    data_path: PathBuf,
    data: File,
    manifest: Manifest,
    name: Option<String>,
    /// Verified pieces written to `data`: what peers are told. A superset of `durable`.
    have: Bitfield,
    /// Pieces whose bytes were fsync'ed before this set was last persisted to `have`.
    durable: Bitfield,
    /// Bytes of the pieces in `have` but not in `durable`.
    unflushed_bytes: u64,
    /// The persisted `have` file may list a piece no longer in `durable`; persist on next flush.
    stale: bool,
    /// Auto-flush threshold; [`FLUSH_BYTES`] except in tests.
    flush_bytes: u64,
    /// Why the persisted held set was discarded when this artifact was opened.
    reset: Option<FormatError>,
    /// Pieces found intact in `data` when the held set was rebuilt on open (after a `reset`
    /// with `data` of the right length).
    rebuilt: Option<u32>,
    /// False only to simulate a crash in tests.
    flush_on_drop: bool,
}

impl Artifact {
    /// Opens the artifact directory `dir`, whose manifest must be valid.
    pub(super) fn load(slot: Slot, dir: PathBuf) -> Result<Self, StoreError> {
        let id = slot.id;
        let (manifest, name) = files::load_manifest(&dir, id)?;
        let size = manifest.layout().size();
        let pieces = manifest.layout().piece_count();

        // A leftover from a flush that was interrupted before its rename; never read.
        let stale_tmp = dir.join(HAVE_TMP_FILE);
        match fs::remove_file(&stale_tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &stale_tmp)(e)),
        }

        let (mut have, mut reset) = match files::load_have(&dir, id, pieces)? {
            Ok(have) => (have, None),
            Err(reason) => (Bitfield::new(pieces), Some(reason)),
        };

        let data_path = dir.join(DATA_FILE);
        let data = match OpenOptions::new().read(true).write(true).open(&data_path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("opening", &data_path)(e)),
        };
        let data_ok = match &data {
            Some(f) => {
                let len = f
                    .metadata()
                    .map_err(io_err("reading metadata of", &data_path))?
                    .len();
                len == size
            }
            None => false,
        };
        if !data_ok {
            // Something outside the store changed `data`. Its held pieces cannot be trusted.
            have = Bitfield::new(pieces);
            reset.get_or_insert(FormatError::DataFile);
        }
        let mut rebuilt = None;
        if let (Some(_), true, Some(file)) = (&reset, data_ok, &data) {
            // The held set is lost but `data` may be intact: keep every piece that verifies,
            // once synced (what was read may have come from the page cache).
            have = verified_pieces(file, &manifest, &data_path)?;
            file.sync_data().map_err(io_err("syncing", &data_path))?;
            rebuilt = Some(have.count());
        }
        if reset.is_some() {
            // Persist the new set (nothing held, or what verified and was synced) before
            // repairing `data`, so the old set cannot come back.
            files::store_have(&dir, id, &have)?;
        }
        let data = match data {
            Some(f) => f,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&data_path)
                .map_err(io_err("creating", &data_path))?,
        };
        if !data_ok {
            data.set_len(size).map_err(io_err("sizing", &data_path))?;
            data.sync_all().map_err(io_err("syncing", &data_path))?;
        }

        Ok(Self {
            slot,
            dir,
            data_path,
            data,
            manifest,
            name,
            durable: have.clone(),
            have,
            unflushed_bytes: 0,
            stale: false,
            flush_bytes: FLUSH_BYTES,
            reset,
            rebuilt,
            flush_on_drop: true,
        })
    }

    /// How many pieces were found intact when the held set was rebuilt on open, if it was.
    pub(crate) fn rebuilt(&self) -> Option<u32> {
        self.rebuilt
    }

    /// The content id.
    pub(crate) fn id(&self) -> ContentId {
        self.slot.id
    }

    /// The verified manifest.
    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The name the artifact was created or imported with, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The pieces held: verified and written, though maybe not yet flushed. Tell peers this.
    pub(crate) fn have(&self) -> &Bitfield {
        &self.have
    }

    /// The pieces recorded as held on disk: what a restart after a crash right now would find.
    pub(crate) fn durable(&self) -> &Bitfield {
        &self.durable
    }

    /// Whether every piece is held.
    #[cfg_attr(not(test), expect(dead_code, reason = "not used by the node yet"))]
    pub(crate) fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// Why the persisted held set was discarded when this artifact was opened, if it was.
    pub(crate) fn reset_reason(&self) -> Option<&FormatError> {
        self.reset.as_ref()
    }

    /// The path of the data file.
    #[cfg_attr(not(test), expect(dead_code, reason = "not used by the node yet"))]
    pub(crate) fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Reads held piece `index` and verifies it.
    ///
    /// If the bytes no longer verify (or the data file is too short), the piece is dropped from
    /// the held set, that is persisted at once, and [`StoreError::Corrupt`] is returned. If the
    /// persisting fails, it is retried by the next flush. Other read errors are returned as
    /// [`StoreError::Io`] and leave the piece held, because they may be transient.
    pub(crate) fn read_piece(&mut self, index: u32) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::new();
        self.read_piece_into(index, &mut buf)?;
        Ok(buf)
    }

    /// Like [`Artifact::read_piece`], into `buf`, which is resized to the piece's length: a
    /// buffer of that length already is reused as it is, without clearing it first.
    pub(crate) fn read_piece_into(
        &mut self,
        index: u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let id = self.id();
        let layout = *self.manifest.layout();
        let range = layout.piece_range(index).ok_or(StoreError::Piece {
            id,
            source: PieceError::OutOfRange {
                index,
                count: layout.piece_count(),
            },
        })?;
        if !self.have.contains(index) {
            return Err(StoreError::NotHeld { id, index });
        }
        // A piece is at most MAX_PIECE_SIZE (16 MiB), so this fits in memory and in usize.
        buf.resize((range.end - range.start) as usize, 0);
        match self.data.read_exact_at(buf, range.start) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.drop_corrupt(index));
            }
            Err(e) => return Err(io_err("reading", &self.data_path)(e)),
        }
        match self.manifest.verify_piece(index, buf) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.drop_corrupt(index)),
        }
    }

    /// Stores piece `index`. Returns `Ok(false)` if it was already held (nothing is written).
    ///
    /// The caller should already have verified the bytes. They are verified again here, which
    /// costs one hash of the piece, because unverified bytes in the store would be served to
    /// every peer. A piece that fails is refused with [`StoreError::Piece`]. The piece is held
    /// at once (see [`Artifact::have`]) and becomes durable at the next flush. That flush
    /// happens here once [`FLUSH_BYTES`] are unflushed, or when the artifact becomes complete.
    /// On an error, [`Artifact::have`] tells whether the piece is held.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the node writes pieces the swarm verified")
    )]
    pub(crate) fn write_piece(&mut self, index: u32, bytes: &[u8]) -> Result<bool, StoreError> {
        let id = self.id();
        self.manifest
            .verify_piece(index, bytes)
            .map_err(|source| StoreError::Piece { id, source })?;
        self.write_verified_piece(index, &[bytes])
    }

    /// Like [`Artifact::write_piece`], for bytes the caller has just verified against this
    /// artifact's manifest (the swarm does, before it asks for a store): only the length is
    /// checked again, which saves hashing every piece twice.
    ///
    /// The bytes come in `parts`, written one after the other (blocks as they arrived).
    pub(crate) fn write_verified_piece<B: AsRef<[u8]>>(
        &mut self,
        index: u32,
        parts: &[B],
    ) -> Result<bool, StoreError> {
        let id = self.id();
        let len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
        let expected = self.manifest.layout().piece_len(index);
        if expected != Some(len as u64) {
            let source = match expected {
                None => PieceError::OutOfRange {
                    index,
                    count: self.manifest.layout().piece_count(),
                },
                Some(expected) => PieceError::Length {
                    index,
                    expected,
                    got: len,
                },
            };
            return Err(StoreError::Piece { id, source });
        }
        if self.have.contains(index) {
            return Ok(false);
        }
        let mut offset = u64::from(index) * self.manifest.layout().piece_size();
        for part in parts {
            let part = part.as_ref();
            self.data
                .write_all_at(part, offset)
                .map_err(io_err("writing", &self.data_path))?;
            offset += part.len() as u64;
        }
        self.have.insert(index);
        self.unflushed_bytes += len as u64;
        if self.unflushed_bytes >= self.flush_bytes || self.have.is_complete() {
            self.flush()?;
        }
        Ok(true)
    }

    /// Makes every held piece durable: fsyncs `data`, then atomically rewrites `have`.
    ///
    /// If the fsync fails, the kernel may have dropped the unflushed bytes, so those pieces are
    /// no longer held (they will be fetched again) and the error is returned.
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        // `durable` is a subset of `have`, so equal counts mean equal sets.
        let unflushed = self.have.count() != self.durable.count();
        if !unflushed && !self.stale {
            return Ok(());
        }
        if unflushed && let Err(e) = self.data.sync_data() {
            self.have = self.durable.clone();
            self.unflushed_bytes = 0;
            return Err(io_err("syncing", &self.data_path)(e));
        }
        files::store_have(&self.dir, self.id(), &self.have)?;
        self.durable = self.have.clone();
        self.unflushed_bytes = 0;
        self.stale = false;
        Ok(())
    }

    /// Reads and verifies every held piece. Returns the pieces that failed, which are dropped.
    pub(crate) fn verify_all(&mut self) -> Result<Vec<u32>, StoreError> {
        let held: Vec<u32> = self.have.iter().collect();
        let mut dropped = Vec::new();
        for index in held {
            match self.read_piece(index) {
                Ok(_) => {}
                Err(StoreError::Corrupt { .. }) => dropped.push(index),
                Err(e) => return Err(e),
            }
        }
        Ok(dropped)
    }

    /// Writes the complete artifact to `dest`, atomically replacing any file already there.
    ///
    /// The bytes go to a temporary file `.pollen-export-*.tmp` in the destination's directory
    /// (so that the rename stays within one filesystem). They are hashed while they are copied,
    /// and the file is fsync'ed and renamed into place only if the hash equals the content id.
    /// On any error the temporary file is removed and `dest` is untouched. A SIGKILL during the
    /// copy can leave the temporary file behind, but never a partial file at `dest`. If the
    /// hash does not match, every piece is verified to find the corrupt ones and drop them
    /// (they will be fetched again), and [`StoreError::DataMismatch`] is returned.
    pub(crate) fn export(&mut self, dest: &Path) -> Result<(), StoreError> {
        self.export_to(dest, true)
    }

    /// As [`Artifact::export`], but fails with [`StoreError::DestinationExists`] instead of replacing
    /// a file at `dest`, even one that appears while the artifact is being copied.
    pub(crate) fn export_new(&mut self, dest: &Path) -> Result<(), StoreError> {
        self.export_to(dest, false)
    }

    fn export_to(&mut self, dest: &Path, replace: bool) -> Result<(), StoreError> {
        let id = self.id();
        if !self.have.is_complete() {
            return Err(StoreError::Incomplete {
                id,
                held: self.have.count(),
                pieces: self.have.len(),
            });
        }
        if dest.file_name().is_none() {
            return Err(StoreError::BadDestination {
                path: dest.to_path_buf(),
            });
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let (mut out, temp) = create_temp_in(parent)?;

        let size = self.manifest.layout().size();
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0; COPY_BUF];
        let mut offset = 0;
        let mut short = false;
        while offset < size {
            // At most COPY_BUF, so the cast is lossless.
            let n = (size - offset).min(COPY_BUF as u64) as usize;
            let chunk = &mut buf[..n];
            match self.data.read_exact_at(chunk, offset) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    short = true;
                    break;
                }
                Err(e) => return Err(io_err("reading", &self.data_path)(e)),
            }
            hasher.update(chunk);
            out.write_all(chunk)
                .map_err(io_err("writing", temp.path()))?;
            offset += n as u64;
        }
        if short || ContentId::from(hasher.finalize()) != id {
            let dropped = self.verify_all()?.len();
            return Err(StoreError::DataMismatch {
                id,
                path: self.data_path.clone(),
                dropped,
            });
        }
        out.sync_all().map_err(io_err("syncing", temp.path()))?;
        drop(out);
        if replace {
            fs::rename(temp.path(), dest).map_err(io_err("renaming into", dest))?;
            temp.keep();
        } else {
            // A hard link never replaces what is there; the temp file goes with its guard.
            match fs::hard_link(temp.path(), dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::DestinationExists {
                        path: dest.to_path_buf(),
                    });
                }
                Err(e) => return Err(io_err("linking into", dest)(e)),
            }
        }
        fsync_dir(parent)
    }

    /// Drops a piece that failed verification from both sets, persisting at once if needed.
    fn drop_corrupt(&mut self, index: u32) -> StoreError {
        self.have.remove(index);
        if self.durable.remove(index) {
            // The persisted set lists the piece: rewrite it now (no data sync needed, as the
            // remaining durable pieces are already synced), or at the next flush if this fails.
            if files::store_have(&self.dir, self.id(), &self.durable).is_err() {
                self.stale = true;
            }
        } else if let Some(len) = self.manifest.layout().piece_len(index) {
            self.unflushed_bytes = self.unflushed_bytes.saturating_sub(len);
        }
        StoreError::Corrupt {
            id: self.id(),
            index,
            path: self.data_path.clone(),
        }
    }

    /// Tests only: lowers the auto-flush threshold.
    #[cfg(test)]
    pub(super) fn set_flush_bytes(&mut self, bytes: u64) {
        self.flush_bytes = bytes;
    }

    /// Tests only: swaps the data file handle, e.g. for `/dev/full` to simulate a full disk.
    #[cfg(test)]
    pub(super) fn replace_data_file(&mut self, file: File) {
        self.data = file;
    }

    /// Tests only: drops the handle the way a killed process would, without flushing.
    #[cfg(test)]
    pub(super) fn crash(mut self) {
        self.flush_on_drop = false;
    }
}

impl Drop for Artifact {
    fn drop(&mut self) {
        if self.flush_on_drop {
            // Best effort: nothing can be reported from here. Callers who care call flush().
            let _ = self.flush();
        }
    }
}

/// Creates a new temporary file in `dir`, removed on drop unless kept.
fn create_temp_in(dir: &Path) -> Result<(File, StagingPath), StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".pollen-export-{pid}-{n}.tmp"));
        match File::create_new(&path) {
            Ok(file) => return Ok((file, StagingPath::file(path))),
            // A leftover of an earlier process with the same pid: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating", &path)(e)),
        }
    }
}

/// The pieces of `data` that verify against the manifest (a full read of the file).
fn verified_pieces(data: &File, manifest: &Manifest, path: &Path) -> Result<Bitfield, StoreError> {
    let layout = manifest.layout();
    let mut have = Bitfield::new(layout.piece_count());
    let mut buf = Vec::new();
    for index in 0..layout.piece_count() {
        let Some(range) = layout.piece_range(index) else {
            continue;
        };
        buf.resize((range.end - range.start) as usize, 0);
        match data.read_exact_at(&mut buf, range.start) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_err("reading", path)(e)),
        }
        if manifest.verify_piece(index, &buf).is_ok() {
            have.insert(index);
        }
    }
    Ok(have)
}
