//! One thread per artifact that owns its store handle and carries out disk work in order.
//!
//! The actor must not block on disk, and the order matters (a downloaded artifact is created
//! from its manifest before its first piece is written), so each artifact gets a worker thread
//! fed by a channel. Results go back to the actor as [`Input::Disk`].
//!
//! Writes are group-committed: the worker writes every piece waiting in its queue, syncs the
//! data and the held-pieces file once, and only then reports the pieces stored. So the swarm
//! (and every peer it tells) only ever counts pieces that survive a crash.
//!
//! Verifying downloaded pieces needs no disk and no order, so it runs on a second thread per
//! artifact: hashing the next pieces then overlaps with the writer waiting for a sync, which
//! otherwise holds up the whole download.

use std::{path::PathBuf, sync::mpsc, thread, time::Duration};

use bytes::Bytes;
use pollen_core::{
    ContentId, Manifest, PieceData,
    swarm::{CheckedPiece, PieceCheck},
};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::{
    Input,
    buffers::{BufferPool, PooledBuf},
    errors::{ApiError, DiskError},
};
use crate::error_chain::chain;
use crate::store::{Artifact, Store, StoreError};

/// Most bytes written before they are synced and reported, when pieces keep arriving.
const MAX_BATCH: usize = 64 << 20;
/// Most bytes of read buffers an artifact keeps for reuse.
const MAX_POOLED_READS: usize = 32 << 20;
/// How often an idle worker frees its pooled read buffers.
const TRIM_EVERY: Duration = Duration::from_secs(2);

/// Work for a disk worker.
pub(crate) enum DiskOp {
    /// Create the artifact from a verified manifest (downloads only).
    Create(Manifest, Option<String>),
    /// Read and verify a piece.
    Read(u32),
    /// Write a verified piece.
    Write(u32, PieceData),
    /// Write the complete artifact to a path (`true`: replacing what is there).
    Export(PathBuf, bool, oneshot::Sender<Result<(), ApiError>>),
    /// Fill in missing pieces from a file that holds the artifact (a share of the same file
    /// again): each piece that verifies is written; answers how many were.
    Repair(PathBuf, oneshot::Sender<Result<u32, ApiError>>),
}

/// A finished piece of disk work.
pub(crate) enum DiskResult {
    /// A piece was read: its bytes, or `None` if it is gone or failed verification.
    Read(u32, Option<Bytes>),
    /// Reading a piece failed for a reason that may pass (an I/O error); it is still held.
    ReadFailed(u32),
    /// A downloaded piece was verified.
    Checked(CheckedPiece),
    /// A piece was written (`Ok`) or not.
    Written(u32, Result<(), DiskError>),
    /// Creating the artifact failed; the download cannot go on.
    CreateFailed(DiskError),
}

/// The actor's handle on a disk worker and its checker; dropping it flushes the artifact and
/// waits for both threads.
pub(crate) struct DiskHandle {
    tx: Option<mpsc::Sender<DiskOp>>,
    thread: Option<thread::JoinHandle<()>>,
    check_tx: Option<mpsc::Sender<PieceCheck>>,
    check_thread: Option<thread::JoinHandle<()>>,
}

impl DiskHandle {
    /// Queues work; lost only if the worker died ([`DiskError::WorkerStopped`]), which the
    /// actor learns from missing results.
    pub(crate) fn send(&self, op: DiskOp) -> Result<(), DiskError> {
        self.tx
            .as_ref()
            .ok_or(DiskError::WorkerStopped)?
            .send(op)
            .map_err(|_| DiskError::WorkerStopped)
    }

    /// Queues a downloaded piece for verification, off the actor's thread and the writer's.
    pub(crate) fn check(&self, check: PieceCheck) -> Result<(), DiskError> {
        self.check_tx
            .as_ref()
            .ok_or(DiskError::WorkerStopped)?
            .send(check)
            .map_err(|_| DiskError::WorkerStopped)
    }
}

impl Drop for DiskHandle {
    fn drop(&mut self) {
        self.tx = None;
        self.check_tx = None;
        for thread in [self.thread.take(), self.check_thread.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

/// Starts the worker for artifact `id`; `artifact` is `None` until a download's manifest
/// arrives.
pub(crate) fn spawn(
    store: Store,
    id: ContentId,
    generation: u64,
    artifact: Option<Artifact>,
    results: UnboundedSender<Input>,
) -> DiskHandle {
    let (tx, rx) = mpsc::channel();
    let name = format!("disk-{}", &id.to_string()[..8]);
    let check_results = results.clone();
    let worker = Worker {
        store,
        id,
        artifact,
        results,
        generation,
        pending: Vec::new(),
        reads: None,
    };
    let thread = start_thread(name, id, move || worker.run(rx));

    let (check_tx, check_rx) = mpsc::channel::<PieceCheck>();
    let check_name = format!("check-{}", &id.to_string()[..8]);
    let check_thread = start_thread(check_name, id, move || {
        while let Ok(check) = check_rx.recv() {
            let checked = Input::Disk(id, generation, DiskResult::Checked(check.run()));
            if check_results.send(checked).is_err() {
                // The actor is gone: the node is shutting down.
                break;
            }
        }
    });
    DiskHandle {
        tx: Some(tx),
        thread,
        check_tx: Some(check_tx),
        check_thread,
    }
}

/// Starts a named thread; the artifact's work waits forever if that fails, which is logged.
fn start_thread(
    name: String,
    id: ContentId,
    f: impl FnOnce() + Send + 'static,
) -> Option<thread::JoinHandle<()>> {
    match thread::Builder::new().name(name.clone()).spawn(f) {
        Ok(t) => Some(t),
        Err(err) => {
            tracing::error!(%id, "cannot start thread {name}: {err}");
            None
        }
    }
}

struct Worker {
    store: Store,
    id: ContentId,
    artifact: Option<Artifact>,
    results: UnboundedSender<Input>,
    /// Which worker of this artifact this is (a re-shared artifact gets a new one).
    generation: u64,
    /// Pieces written but not yet synced, with their write result.
    pending: Vec<(u32, usize, Result<(), DiskError>)>,
    /// Buffers for pieces read to be served, made when the first is read.
    reads: Option<BufferPool>,
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<DiskOp>) {
        loop {
            let op = match rx.recv_timeout(TRIM_EVERY) {
                Ok(op) => op,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(reads) = &self.reads {
                        reads.trim_if_idle();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            self.handle(op);
            // Take whatever else is already queued into the same commit.
            while self.pending_bytes() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => self.handle(op),
                    Err(_) => break,
                }
            }
            self.commit();
        }
        self.commit();
    }

    fn pending_bytes(&self) -> usize {
        self.pending.iter().map(|(_, len, _)| len).sum()
    }

    /// Syncs the pieces written since the last commit, then reports them.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let flushed = match &mut self.artifact {
            Some(a) => a.flush().map_err(DiskError::from),
            None => Err(DiskError::NotCreated),
        };
        for (piece, _, written) in std::mem::take(&mut self.pending) {
            // A failed sync (even an automatic one inside a write) drops pieces from the
            // store: report only what is really durable.
            let durable = self
                .artifact
                .as_ref()
                .is_some_and(|a| a.durable().contains(piece));
            let kept = if durable {
                Ok(())
            } else {
                Err(DiskError::NotDurable)
            };
            let result = written.and_then(|()| flushed.clone()).and(kept);
            self.send(DiskResult::Written(piece, result));
        }
    }

    fn send(&self, result: DiskResult) {
        // The actor is gone only when the node is shutting down.
        let _ = self
            .results
            .send(Input::Disk(self.id, self.generation, result));
    }

    fn handle(&mut self, op: DiskOp) {
        match op {
            DiskOp::Create(manifest, name) => {
                if self.artifact.is_some() {
                    return;
                }
                match self.store.create(&manifest, name.as_deref()) {
                    Ok(a) => self.artifact = Some(a),
                    Err(StoreError::Exists(_)) => match self.store.open_artifact(self.id) {
                        Ok(Some(a)) => self.artifact = Some(a),
                        Ok(None) => self.send(DiskResult::CreateFailed(DiskError::Vanished)),
                        Err(e) => self.send(DiskResult::CreateFailed(e.into())),
                    },
                    Err(e) => self.send(DiskResult::CreateFailed(e.into())),
                }
            }
            DiskOp::Read(piece) => {
                let result = match &mut self.artifact {
                    Some(a) => match read_pooled(a, &mut self.reads, piece) {
                        Ok(bytes) => DiskResult::Read(piece, Some(bytes)),
                        Err(err @ (StoreError::Corrupt { .. } | StoreError::NotHeld { .. })) => {
                            let err = chain(&err);
                            tracing::warn!(id = %self.id, piece, "piece lost, fetching it again: {err}");
                            DiskResult::Read(piece, None)
                        }
                        Err(err) => {
                            let err = chain(&err);
                            tracing::warn!(id = %self.id, piece, "reading: {err}");
                            DiskResult::ReadFailed(piece)
                        }
                    },
                    None => DiskResult::Read(piece, None),
                };
                self.send(result);
            }
            DiskOp::Write(piece, data) => {
                let result = match &mut self.artifact {
                    Some(a) => a
                        .write_verified_piece(piece, data.segments())
                        .map(|_| ())
                        .map_err(DiskError::from),
                    None => Err(DiskError::NotCreated),
                };
                self.pending.push((piece, data.len(), result));
            }
            DiskOp::Repair(path, reply) => {
                let result = self.repair_from(&path);
                // Durable, and reported to the actor, before the caller hears of it.
                self.commit();
                let _ = reply.send(result);
            }
            DiskOp::Export(path, replace, reply) => {
                self.commit();
                let Some(a) = &mut self.artifact else {
                    let _ = reply.send(Err(ApiError::NotCreated));
                    return;
                };
                let before = a.have().clone();
                let result = if replace {
                    a.export(&path)
                } else {
                    a.export_new(&path)
                };
                let result = result.map_err(ApiError::ExportFailed);
                // Pieces the export found corrupt were dropped: fetch them again.
                let lost: Vec<u32> = before.iter().filter(|&p| !a.have().contains(p)).collect();
                for piece in lost {
                    self.send(DiskResult::Read(piece, None));
                }
                let _ = reply.send(result);
            }
        }
    }
}

impl Worker {
    /// Writes every missing piece of the artifact that `path` holds intact; returns how many.
    fn repair_from(&mut self, path: &std::path::Path) -> Result<u32, ApiError> {
        use std::os::unix::fs::FileExt;
        let Some(a) = &mut self.artifact else {
            return Err(ApiError::NotCreated);
        };
        let fail = |e: std::io::Error| ApiError::Repair(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(fail)?;
        let layout = *a.manifest().layout();
        let len = file.metadata().map_err(fail)?.len();
        if len != layout.size() {
            return Err(ApiError::Repair(format!(
                "{} is {len} bytes, the artifact {}",
                path.display(),
                layout.size()
            )));
        }
        let missing: Vec<u32> = (0..layout.piece_count())
            .filter(|&p| !a.have().contains(p))
            .collect();
        let mut restored = 0;
        let mut buf = Vec::new();
        for piece in missing {
            let Some(range) = layout.piece_range(piece) else {
                continue;
            };
            buf.resize((range.end - range.start) as usize, 0);
            file.read_exact_at(&mut buf, range.start).map_err(fail)?;
            // Bytes that do not verify are refused by the store and left to peers.
            let written = a.write_verified_piece(piece, &[&buf[..]]);
            if written.is_ok() {
                restored += 1;
                self.pending.push((
                    piece,
                    buf.len(),
                    written.map(|_| ()).map_err(DiskError::from),
                ));
            }
        }
        Ok(restored)
    }
}

/// Reads and verifies a piece into a recycled buffer of `pool`, made for the artifact's piece
/// size on first use.
fn read_pooled(
    artifact: &mut Artifact,
    pool: &mut Option<BufferPool>,
    piece: u32,
) -> Result<Bytes, StoreError> {
    let pool = pool.get_or_insert_with(|| {
        // A piece is at most 16 MiB, so its size fits in usize.
        let piece_size = artifact.manifest().layout().piece_size() as usize;
        BufferPool::new(piece_size, MAX_POOLED_READS)
    });
    let mut buf: PooledBuf = pool.take();
    artifact.read_piece_into(piece, buf.vec())?;
    Ok(buf.freeze())
}
