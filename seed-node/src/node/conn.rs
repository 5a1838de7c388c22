//! TCP links: a reader task that splits frames and a writer task that sends what the actor
//! queues. Frames travel to the actor as whole bodies; the actor never touches a socket.

use pollen_core::wire::{self, LEN_PREFIX};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc::{UnboundedSender, unbounded_channel},
    task::AbortHandle,
};

use super::Input;

/// A connection number, unique within the node's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(pub(crate) u64);

/// The actor's handle on a running link.
pub(crate) struct ConnHandle {
    /// Queue of bytes to send.
    pub(crate) tx: UnboundedSender<Vec<u8>>,
    reader: AbortHandle,
}

impl ConnHandle {
    /// Stops reading at once; the writer sends what is queued, then closes.
    pub(crate) fn close(self) {
        self.reader.abort();
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
    fn reserve(&mut self, len: usize) -> std::time::Duration {
        let now = std::time::Instant::now();
        let start = self.busy_until.max(now);
        self.busy_until = start + std::time::Duration::from_secs_f64(len as f64 / self.rate);
        start - now
    }
}

/// Shared handle on a [`Limiter`], if the node has one.
pub(crate) type SharedLimiter = Option<std::sync::Arc<std::sync::Mutex<Limiter>>>;

/// Starts the tasks of a connected stream.
pub(crate) fn spawn(
    conn: ConnId,
    stream: TcpStream,
    inputs: UnboundedSender<Input>,
    limiter: SharedLimiter,
) -> ConnHandle {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if let Some(limiter) = &limiter {
                let wait = limiter
                    .lock()
                    .map(|mut l| l.reserve(buf.len()))
                    .unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let reader = tokio::spawn(async move {
        let reason = read_frames(conn, &mut rd, &inputs).await;
        let _ = inputs.send(Input::Closed(conn, reason));
    });
    ConnHandle {
        tx,
        reader: reader.abort_handle(),
    }
}

/// Reads frames until the stream ends or breaks the framing; returns why it stopped.
///
/// Each frame's body is read straight into its own buffer, which travels to the actor as is.
async fn read_frames(
    conn: ConnId,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    inputs: &UnboundedSender<Input>,
) -> String {
    // Small frames come through the buffer; a block body mostly bypasses it.
    let mut rd = tokio::io::BufReader::with_capacity(16 * 1024, rd);
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
        let mut body = Vec::with_capacity(body_len);
        match (&mut rd).take(body_len as u64).read_to_end(&mut body).await {
            Ok(n) if n == body_len => {}
            Ok(_) => return "closed by peer mid-frame".into(),
            Err(err) => return format!("read error: {err}"),
        }
        if inputs.send(Input::Frame(conn, body)).is_err() {
            return "node stopping".into();
        }
    }
}
