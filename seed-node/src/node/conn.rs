//! TCP links: a reader task that splits frames and a writer task that sends what the actor
//! queues. Frames travel to the actor as whole bodies; the actor never touches a socket.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use pollen_core::wire::{self, LEN_PREFIX};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc::{UnboundedSender, unbounded_channel},
    task::AbortHandle,
};

use super::{Input, buffers::BufferPool};

/// A connection number, unique within the node's lifetime (the endpoint's).
pub(crate) use pollen_core::endpoint::ConnId;

/// Most bytes queued for a peer and not yet written; a peer that reads slower than this lets
/// us get ahead is dropped (see [`ConnHandle::send`]).
pub(crate) const MAX_UNSENT: usize = 64 << 20;
/// How long one write may block before the link is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closed link's writer may go on sending what was queued.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long a frame's body may take to arrive once its length has: a peer that sends a
/// length and then trickles the body is dropped.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of frame bodies all links may be receiving at once; a link waits for room before it
/// starts a body, so slow peers cannot make the node hold a buffer each.
const RECEIVING_BYTES: usize = 64 << 20;
/// The unit of [`ReceiveBudget`]'s permits.
const PERMIT_BYTES: usize = 1024;
/// Largest first frame of a connection (its handshake is a few dozen bytes): a peer that has
/// not said who it is cannot make us reserve a block-sized buffer.
const MAX_FIRST_FRAME: usize = 4 * 1024;

/// The node-wide budget of frame bodies being received ([`RECEIVING_BYTES`]).
#[derive(Debug, Clone)]
pub(crate) struct ReceiveBudget(Arc<tokio::sync::Semaphore>);

impl ReceiveBudget {
    /// The whole budget, free.
    pub(crate) fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(
            RECEIVING_BYTES / PERMIT_BYTES,
        )))
    }

    /// Room for a body of `len` bytes, held until the permit is dropped.
    async fn reserve(&self, len: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permits = u32::try_from(len.div_ceil(PERMIT_BYTES).max(1)).ok()?;
        self.0.clone().acquire_many_owned(permits).await.ok()
    }
}

/// Why [`ConnHandle::send`] refused bytes; either way the caller drops the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// More than [`MAX_UNSENT`] bytes wait: the peer is not reading them.
    #[error("the peer is not reading what we send")]
    Backlog,
    /// The link's writer has stopped.
    #[error("the link's writer has stopped")]
    Closed,
}

/// The actor's handle on a running link.
pub(crate) struct ConnHandle {
    tx: UnboundedSender<Vec<Bytes>>,
    /// Bytes handed to the writer and not yet written.
    unsent: Arc<AtomicUsize>,
    reader: AbortHandle,
    writer: AbortHandle,
    /// Extra work when the link closes (a WebRTC link closes its peer connection).
    on_close: Option<Box<dyn FnOnce() + Send>>,
}

impl ConnHandle {
    /// A handle on link tasks started elsewhere (a WebRTC data channel's).
    pub(crate) fn from_parts(
        tx: UnboundedSender<Vec<Bytes>>,
        unsent: Arc<AtomicUsize>,
        reader: AbortHandle,
        writer: AbortHandle,
        on_close: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        Self {
            tx,
            unsent,
            reader,
            writer,
            on_close,
        }
    }

    /// Queues bytes for the peer; fails if the peer is not reading them (more than
    /// [`MAX_UNSENT`] waiting: [`SendError::Backlog`]) or the writer has stopped
    /// ([`SendError::Closed`]). The caller then drops the link.
    pub(crate) fn send(&self, segments: Vec<Bytes>) -> Result<(), SendError> {
        let len: usize = segments.iter().map(Bytes::len).sum();
        if self.unsent.fetch_add(len, Ordering::Relaxed) + len > MAX_UNSENT {
            return Err(SendError::Backlog);
        }
        self.tx.send(segments).map_err(|_| SendError::Closed)
    }

    /// Stops reading at once; the writer may send what is queued for a moment, then stops.
    pub(crate) fn close(self) {
        self.reader.abort();
        let writer = self.writer;
        let on_close = self.on_close;
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_GRACE).await;
            writer.abort();
            if let Some(f) = on_close {
                f();
            }
        });
    }
}

/// A node-wide cap on upload bandwidth, shared by every link's writer.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Bytes per second.
    rate: f64,
    /// When the bytes already granted will have been sent at `rate`.
    busy_until: std::time::Instant,
}

impl Limiter {
    /// A cap of `rate` bytes per second.
    pub(crate) fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1) as f64,
            busy_until: std::time::Instant::now(),
        }
    }

    /// Grants `len` bytes; returns how long to wait before sending them.
    pub(crate) fn reserve(&mut self, len: usize) -> std::time::Duration {
        let now = std::time::Instant::now();
        let start = self.busy_until.max(now);
        self.busy_until = start + std::time::Duration::from_secs_f64(len as f64 / self.rate);
        start - now
    }
}

/// Shared handle on a [`Limiter`], if the node has one.
pub(crate) type SharedLimiter = Option<std::sync::Arc<std::sync::Mutex<Limiter>>>;

/// Most bytes a TCP socket holds that it has not sent yet.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Starts the tasks of a connected stream.
pub(crate) fn spawn(
    conn: ConnId,
    stream: TcpStream,
    inputs: UnboundedSender<Input>,
    limiter: SharedLimiter,
    buffers: BufferPool,
    budget: ReceiveBudget,
) -> ConnHandle {
    let _ = stream.set_nodelay(true);
    // A peer that vanished without closing is noticed within about a minute.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    // Unsent bytes beyond this wait in our queue, not the kernel's, so a request queued later
    // is not stuck behind megabytes of blocks in the socket (the swarm's send window).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = unbounded_channel::<Vec<Bytes>>();
    let unsent = Arc::new(AtomicUsize::new(0));
    let written = unsent.clone();
    let sent = inputs.clone();
    let writer = tokio::spawn(async move {
        while let Some(segments) = rx.recv().await {
            if let Some(limiter) = &limiter {
                let len = segments.iter().map(Bytes::len).sum();
                let wait = limiter
                    .lock()
                    .map(|mut l| l.reserve(len))
                    .unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let len = segments.iter().map(Bytes::len).sum();
            match tokio::time::timeout(WRITE_TIMEOUT, write_segments(&mut wr, segments)).await {
                Ok(Ok(())) => {
                    written.fetch_sub(len, Ordering::Relaxed);
                    let _ = sent.send(Input::Sent(conn, len as u64));
                }
                _ => break,
            }
        }
        let _ = wr.shutdown().await;
    });
    let reader = tokio::spawn(async move {
        let reason = read_frames(conn, &mut rd, &inputs, &buffers, &budget).await;
        let _ = inputs.send(Input::Closed(conn, reason));
    });
    ConnHandle {
        tx,
        unsent,
        reader: reader.abort_handle(),
        writer: writer.abort_handle(),
        on_close: None,
    }
}

/// Writes every segment, in order, with vectored writes (block data is never joined).
async fn write_segments(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    mut segments: Vec<Bytes>,
) -> std::io::Result<()> {
    use bytes::Buf;
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<std::io::IoSlice<'_>> = segments[first..]
            .iter()
            .take(64)
            .map(|s| std::io::IoSlice::new(s))
            .collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let seg = &mut segments[first];
            let n = written.min(seg.len());
            seg.advance(n);
            written -= n;
            if seg.is_empty() {
                first += 1;
            }
        }
        while first < segments.len() && segments[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}

/// Reads frames until the stream ends or breaks the framing; returns why it stopped.
///
/// Each frame's body is read straight into its own buffer (a recycled one for blocks), which
/// travels to the actor as is.
async fn read_frames(
    conn: ConnId,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    inputs: &UnboundedSender<Input>,
    buffers: &BufferPool,
    budget: &ReceiveBudget,
) -> String {
    // Small frames come through the buffer; a block body mostly bypasses it.
    let mut rd = tokio::io::BufReader::with_capacity(16 * 1024, rd);
    let mut first = true;
    loop {
        let mut prefix = [0u8; LEN_PREFIX];
        if let Err(err) = rd.read_exact(&mut prefix).await {
            return match err.kind() {
                std::io::ErrorKind::UnexpectedEof => "closed by peer".into(),
                _ => format!("read error: {err}"),
            };
        }
        let body_len = match wire::split_frame(&prefix) {
            Err(err) => return format!("bad framing: {err}"),
            // A prefix alone is never a whole frame, unless the body is empty.
            Ok(_) => u32::from_le_bytes(prefix) as usize,
        };
        if first && body_len > MAX_FIRST_FRAME {
            return format!("a first frame of {body_len} bytes is no handshake");
        }
        first = false;
        // Room first, then the buffer; the body's deadline runs from when there is room, so
        // waiting behind slow peers does not cost an honest one its link.
        let _room = budget.reserve(body_len).await;
        let mut body = buffers.take_frame(body_len);
        let read = tokio::time::timeout(
            BODY_TIMEOUT,
            (&mut rd).take(body_len as u64).read_to_end(body.vec()),
        )
        .await;
        let Ok(read) = read else {
            return "a frame's body did not arrive in time".into();
        };
        match read {
            Ok(n) if n == body_len => {}
            Ok(_) => return "closed by peer mid-frame".into(),
            Err(err) => return format!("read error: {err}"),
        }
        if inputs.send(Input::Frame(conn, body.freeze())).is_err() {
            return "node stopping".into();
        }
    }
}
