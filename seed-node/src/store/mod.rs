//! The node's crash-safe disk store: artifact data, manifests and the set of verified pieces.
//!
//! Synchronous and std-only. The async node calls it from blocking tasks.
//!
//! # Layout of the data directory
//!
//! ```text
//! DIR/lock                          held with an exclusive `flock` while a `Store` is open
//! DIR/artifacts/<id hex>/data       the artifact's bytes, each piece at its offset, sized up front
//! DIR/artifacts/<id hex>/manifest   id, size, optional name, piece chaining values (immutable)
//! DIR/artifacts/<id hex>/have       the pieces that are durable on disk (replaced atomically)
//! DIR/tmp/                          staging for creates and imports, and trash; cleared on open
//! ```
//!
//! An artifact directory appears under `artifacts/` only through an atomic rename of a
//! directory that was completely written and fsync'ed in `tmp/`. A visible artifact therefore
//! always has a complete manifest. Removal is a rename back into `tmp/` followed by a delete.
//! A crash in the middle of either leaves only `tmp/` debris, which the next [`Store::open`]
//! deletes. The lock file keeps a second process from clearing `tmp/` under a running node or
//! interleaving writes to the same `have` file.
//!
//! # File formats (all integers little-endian)
//!
//! ```text
//! manifest: "POLLNMAN" | version:u32 = 1 | id:[32] | size:u64 | pieces:u32
//!           | name_len:u16 | name:[name_len] (UTF-8, 0 = no name) | chaining values:[32 * pieces]
//!           | checksum:[8]
//! have:     "POLLNHAV" | version:u32 = 1 | id:[32] | pieces:u32 | bits:[ceil(pieces / 8)]
//!           | checksum:[8]
//! ```
//!
//! `checksum` is the first 8 bytes of the BLAKE3 hash of everything before it, so a torn or
//! corrupt file is detected. On load, the manifest is also checked with
//! [`Manifest::from_untrusted`], which merges the chaining values back into the id. That is
//! cheap: about one compression per piece. `bits` is the wire's [`Bitfield`]
//! packing. Both files name their artifact, so a file copied into another artifact's directory
//! is refused.
//!
//! # Crash safety
//!
//! The invariant is that the persisted `have` file only lists pieces that were verified before
//! they were written and whose bytes were `fdatasync`ed before the file was written. With that
//! invariant, a node killed at any moment (SIGKILL or power loss) never reports an unverified
//! piece after restarting. The ordering that keeps it true:
//!
//! 1. [`Artifact::write_piece`] verifies the bytes again with [`Manifest::verify_piece`] (the
//!    store does not rely on its callers to do this), writes them at their offset with
//!    `pwrite`, and adds the piece to the in-memory set [`Artifact::have`] only.
//! 2. [`Artifact::flush`] calls `fdatasync` on `data`. Then it writes the whole set to
//!    `have.tmp`, fsyncs it, renames it over `have` and fsyncs the directory. A crash leaves
//!    either the old set or the new one, and both are valid. A torn file is caught by its
//!    checksum and means "no pieces held".
//! 3. Flushes are batched: automatically once [`FLUSH_BYTES`] of unflushed piece data
//!    accumulate, when the artifact becomes complete, and in `Drop` (best effort). The node
//!    should also call `flush` on a timer. A crash loses at most the unflushed pieces, and
//!    those are fetched again.
//!
//! [`Artifact::have`] includes pieces that are written but not yet flushed. The node does not
//! tell peers about a piece until it has flushed it (its disk worker group-commits), so what
//! peers and `pollen status` see is always durable.
//!
//! If `fdatasync` fails, the kernel may already have dropped the dirty pages and marked them
//! clean, and a retry could then succeed without the data ever reaching the disk ("fsyncgate").
//! So a failed sync removes every unflushed piece from the in-memory set, and those pieces are
//! fetched again.
//!
//! Reads verify too. [`Artifact::read_piece`] hashes what it read. If the piece no longer
//! matches, it is removed from both sets, the `have` file is rewritten at once, and
//! [`StoreError::Corrupt`] is returned. So bit rot costs one refetch and is never served.
//! Pieces are not re-verified on open, because a 16 TiB artifact would take hours.
//! [`Artifact::verify_all`] does it when asked.
//!
//! On open, a missing, torn or foreign `have` file, or a `data` file of the wrong length,
//! means "no pieces held". The empty set is persisted before `data` is repaired, and the
//! reason is kept in [`Artifact::reset_reason`]. A missing or invalid manifest makes that one
//! artifact unusable: [`Store::open_artifact`] returns [`StoreError::BadManifest`], and
//! [`Store::scan`] reports it and skips it. The store still opens.
//!
//! Imports stream the source file in 1 MiB chunks into a staging directory while feeding a
//! [`ManifestBuilder`](pollen_core::ManifestBuilder). The artifact becomes visible (renamed into
//! `artifacts/`) only after the builder accepts exactly the declared size, the file's length and
//! modification time are unchanged, and every file has been fsync'ed. Exports write a temporary
//! file next to the destination, hash it while copying, fsync it and rename it into place. See
//! [`Artifact::export`].

mod artifact;
mod files;
mod format;
mod fsutil;
mod import;
#[cfg(test)]
mod tests;

use std::{
    collections::HashSet,
    fs::{self, File, OpenOptions, TryLockError},
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use pollen_core::{
    Bitfield, BuildError, ContentId, LayoutError, Manifest, PieceError, TicketError, ticket,
};

pub(crate) use artifact::Artifact;
pub(crate) use format::FormatError;
use fsutil::{StagingPath, fsync_dir, io_err, write_new_file};

/// Unflushed piece data (bytes) after which [`Artifact::write_piece`] flushes on its own.
///
/// The threshold is in bytes, not pieces, because pieces range from 16 KiB to 16 MiB. With a
/// fixed count of 64, small pieces would mean an fsync for every MiB, and large pieces would
/// leave a GiB at risk.
pub(crate) const FLUSH_BYTES: u64 = 64 << 20;

/// Buffer size for imports and exports: large enough to keep BLAKE3's SIMD paths busy.
const COPY_BUF: usize = 1 << 20;

const ARTIFACTS_DIR: &str = "artifacts";
const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "lock";
const DATA_FILE: &str = "data";
const MANIFEST_FILE: &str = "manifest";
const HAVE_FILE: &str = "have";
const HAVE_TMP_FILE: &str = "have.tmp";

/// Why a store operation failed. Every variant that involves a file names its path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A filesystem operation failed (disk full, IO error, permissions...).
    #[error("{action} {}", .path.display())]
    Io {
        /// What was being done, e.g. "writing".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another `Store` (in this process or another) holds the data directory.
    #[error("data directory {} is in use by another pollen process", .path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The artifact is already open (or being created or removed) through this store.
    #[error("artifact {0} is already open")]
    InUse(ContentId),
    /// [`Store::create`] found the artifact already in the store.
    #[error("artifact {0} is already in the store")]
    Exists(ContentId),
    /// The artifact's manifest file is missing or invalid, so the artifact is unusable.
    #[error("artifact directory {} is unusable", .path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: FormatError,
    },
    /// A held piece no longer matched its hash on disk; it has been dropped from the held set.
    #[error(
        "piece {index} of {id} is corrupt on disk in {}; it is no longer held",
        .path.display()
    )]
    Corrupt {
        /// The artifact.
        id: ContentId,
        /// The piece.
        index: u32,
        /// The data file.
        path: PathBuf,
    },
    /// A piece that is not held was asked for.
    #[error("piece {index} of {id} is not held")]
    NotHeld {
        /// The artifact.
        id: ContentId,
        /// The piece.
        index: u32,
    },
    /// Bytes offered as a piece do not verify (or the index is out of range).
    #[error("refusing piece for {id}")]
    Piece {
        /// The artifact.
        id: ContentId,
        /// Why the piece was refused.
        #[source]
        source: PieceError,
    },
    /// Export needs every piece.
    #[error("artifact {id} is incomplete: {held} of {pieces} pieces held")]
    Incomplete {
        /// The artifact.
        id: ContentId,
        /// Pieces held.
        held: u32,
        /// Pieces in the artifact.
        pieces: u32,
    },
    /// While exporting, the data did not hash to the content id. The corrupt pieces were dropped.
    #[error(
        "data of {id} in {} does not hash to its id; {dropped} corrupt pieces dropped",
        .path.display()
    )]
    DataMismatch {
        /// The artifact.
        id: ContentId,
        /// The data file.
        path: PathBuf,
        /// How many pieces failed verification and are no longer held.
        dropped: usize,
    },
    /// The file being imported changed (size or modification time) while it was read.
    #[error("{} changed while it was being imported", .path.display())]
    Changed {
        /// The source file.
        path: PathBuf,
        /// The size mismatch the manifest builder saw, if that is how it showed.
        #[source]
        source: Option<BuildError>,
    },
    /// Only regular files can be imported.
    #[error("{} is not a regular file", .path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The file is larger than Pollen's artifact limit.
    #[error("{} cannot be shared", .path.display())]
    TooLarge {
        /// The source file.
        path: PathBuf,
        /// The limit exceeded.
        #[source]
        source: LayoutError,
    },
    /// The artifact name is not a plain file name.
    #[error("invalid artifact name {name:?}")]
    Name {
        /// The name given.
        name: String,
        /// Why it was refused.
        #[source]
        source: TicketError,
    },
    /// The export destination does not end in a file name.
    #[error("export destination {} is not a file path", .path.display())]
    BadDestination {
        /// The path given.
        path: PathBuf,
    },
    /// The export destination exists and was not to be replaced.
    #[error("{} exists; pass --force to replace it, or -o another path", .path.display())]
    DestinationExists {
        /// The path given.
        path: PathBuf,
    },
}

/// The artifacts found by [`Store::scan`].
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Artifacts whose manifest loads, in id order.
    pub(crate) usable: Vec<ContentId>,
    /// Artifact directories that cannot be used (mostly [`StoreError::BadManifest`]); skipped.
    pub(crate) unusable: Vec<StoreError>,
}

/// An open data directory. One per directory at a time, enforced with a lock file.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    shared: Arc<Shared>,
}

/// State shared by the store and its open artifacts, which keep the directory locked.
#[derive(Debug)]
struct Shared {
    root: PathBuf,
    artifacts: PathBuf,
    tmp: PathBuf,
    /// Ids with an open [`Artifact`] or an operation in progress: one handle per artifact.
    busy: Mutex<HashSet<ContentId>>,
    /// Names staging directories in `tmp/`, which is ours alone while the lock is held.
    next_tmp: AtomicU64,
    /// Holds the exclusive lock while open; the OS releases it when the process dies.
    _lock: File,
}

/// Exclusive use of one content id within the store; released on drop.
#[derive(Debug)]
struct Slot {
    shared: Arc<Shared>,
    id: ContentId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = self.shared.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
    }
}

impl Shared {
    /// Claims `id` for one handle or operation; [`StoreError::InUse`] if it is already claimed.
    fn reserve(self: &Arc<Self>, id: ContentId) -> Result<Slot, StoreError> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(id) {
            return Err(StoreError::InUse(id));
        }
        Ok(Slot {
            shared: Arc::clone(self),
            id,
        })
    }

    /// Where artifact `id` lives.
    fn artifact_dir(&self, id: ContentId) -> PathBuf {
        self.artifacts.join(id.to_string())
    }

    /// A fresh, unused path in `tmp/`.
    fn tmp_path(&self, kind: &str) -> PathBuf {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{kind}-{n}"))
    }
}

impl Store {
    /// Opens (creating if needed) the data directory `dir`, locks it and clears `dir/tmp`.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let root = dir.to_path_buf();
        fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path: lock_path }),
            Err(TryLockError::Error(e)) => return Err(io_err("locking", &lock_path)(e)),
        }
        let artifacts = root.join(ARTIFACTS_DIR);
        fs::create_dir_all(&artifacts).map_err(io_err("creating", &artifacts))?;
        let tmp = root.join(TMP_DIR);
        match fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("clearing", &tmp)(e)),
        }
        fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
        fsync_dir(&root)?;
        Ok(Self {
            shared: Arc::new(Shared {
                root,
                artifacts,
                tmp,
                busy: Mutex::new(HashSet::new()),
                next_tmp: AtomicU64::new(0),
                _lock: lock,
            }),
        })
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.shared.root
    }

    /// The usable artifacts, in id order (unusable ones are skipped; see [`Store::scan`]).
    #[cfg_attr(not(test), expect(dead_code, reason = "not used by the node yet"))]
    pub(crate) fn list(&self) -> Result<Vec<ContentId>, StoreError> {
        Ok(self.scan()?.usable)
    }

    /// Finds every artifact and checks its manifest, reporting unusable ones instead of failing.
    ///
    /// Entries of `artifacts/` that are not lowercase hex content ids are ignored.
    pub(crate) fn scan(&self) -> Result<Scan, StoreError> {
        let dir = &self.shared.artifacts;
        let mut scan = Scan::default();
        for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
            let entry = entry.map_err(io_err("listing", dir))?;
            let Some(id) = entry.file_name().to_str().and_then(parse_dir_name) else {
                continue;
            };
            match files::load_manifest(&entry.path(), id) {
                Ok(_) => scan.usable.push(id),
                Err(e) => scan.unusable.push(e),
            }
        }
        scan.usable.sort_unstable();
        Ok(scan)
    }

    /// Opens a stored artifact; `Ok(None)` if the store does not have it.
    pub(crate) fn open_artifact(&self, id: ContentId) -> Result<Option<Artifact>, StoreError> {
        let slot = self.shared.reserve(id)?;
        let dir = self.shared.artifact_dir(id);
        if !exists(&dir)? {
            return Ok(None);
        }
        Artifact::load(slot, dir).map(Some)
    }

    /// Adds an empty artifact (no pieces held) for `manifest`, its data file sized up front.
    pub(crate) fn create(
        &self,
        manifest: &Manifest,
        name: Option<&str>,
    ) -> Result<Artifact, StoreError> {
        if let Some(name) = name {
            ticket::check_name(name).map_err(|source| StoreError::Name {
                name: name.to_owned(),
                source,
            })?;
        }
        let id = manifest.id();
        let slot = self.shared.reserve(id)?;
        if exists(&self.shared.artifact_dir(id))? {
            return Err(StoreError::Exists(id));
        }
        let staging = self.stage()?;
        let data_path = staging.path().join(DATA_FILE);
        let data = File::create_new(&data_path).map_err(io_err("creating", &data_path))?;
        data.set_len(manifest.layout().size())
            .map_err(io_err("sizing", &data_path))?;
        data.sync_all().map_err(io_err("syncing", &data_path))?;
        let pieces = manifest.layout().piece_count();
        self.finish_staging(&staging, manifest, name, &Bitfield::new(pieces))?;
        self.install(staging, slot, false)
    }

    /// Deletes an artifact; returns whether it was there. Fails if it is open.
    pub(crate) fn remove(&self, id: ContentId) -> Result<bool, StoreError> {
        let _slot = self.shared.reserve(id)?;
        let dir = self.shared.artifact_dir(id);
        let trash = self.shared.tmp_path("trash");
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("removing", &dir)(e)),
        }
        fsync_dir(&self.shared.artifacts)?;
        // The artifact is gone once the rename is durable. If deleting the trash fails, the
        // space is reclaimed when the store is next opened.
        let _ = fs::remove_dir_all(&trash);
        Ok(true)
    }

    /// A new, empty staging directory in `tmp/`, deleted on drop unless installed.
    fn stage(&self) -> Result<StagingPath, StoreError> {
        let path = self.shared.tmp_path("staging");
        fs::create_dir(&path).map_err(io_err("creating", &path))?;
        Ok(StagingPath::dir(path))
    }

    /// Writes `manifest` and `have` into a staging directory whose `data` is already synced,
    /// then fsyncs the directory.
    fn finish_staging(
        &self,
        staging: &StagingPath,
        manifest: &Manifest,
        name: Option<&str>,
        have: &Bitfield,
    ) -> Result<(), StoreError> {
        let dir = staging.path();
        write_new_file(
            &dir.join(MANIFEST_FILE),
            &format::encode_manifest(manifest, name),
        )?;
        write_new_file(
            &dir.join(HAVE_FILE),
            &format::encode_have(manifest.id(), have),
        )?;
        fsync_dir(dir)
    }

    /// Renames a complete staging directory into `artifacts/`, replacing an existing artifact
    /// directory only if `replace`, and opens the result.
    fn install(
        &self,
        staging: StagingPath,
        slot: Slot,
        replace: bool,
    ) -> Result<Artifact, StoreError> {
        let id = slot.id;
        let target = self.shared.artifact_dir(id);
        let mut old = None;
        if exists(&target)? {
            if !replace {
                return Err(StoreError::Exists(id));
            }
            let trash = self.shared.tmp_path("trash");
            fs::rename(&target, &trash).map_err(io_err("replacing", &target))?;
            old = Some(StagingPath::dir(trash));
        }
        if let Err(e) = fs::rename(staging.path(), &target) {
            if let Some(old) = old {
                // Best effort: put the previous artifact back where it was.
                if fs::rename(old.path(), &target).is_ok() {
                    old.keep();
                }
            }
            return Err(io_err("installing", &target)(e));
        }
        staging.keep();
        fsync_dir(&self.shared.artifacts)?;
        drop(old);
        Artifact::load(slot, target)
    }
}

/// Parses an artifact directory name: exactly the lowercase hex that `ContentId` displays.
fn parse_dir_name(name: &str) -> Option<ContentId> {
    let id: ContentId = name.parse().ok()?;
    (id.to_string() == name).then_some(id)
}

/// Whether anything exists at `path` (without following a final symlink).
fn exists(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("checking", path)(e)),
    }
}
