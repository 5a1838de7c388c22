//! TCP links: a reader task that splits frames and a writer task that sends what the actor
//! queues. Frames travel to the actor as whole bodies; the actor never touches a socket.

use pollen_core::wire::{self, MAX_FRAME_LEN};
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

/// Starts the tasks of a connected stream.
pub(crate) fn spawn(conn: ConnId, stream: TcpStream, inputs: UnboundedSender<Input>) -> ConnHandle {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
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
async fn read_frames(
    conn: ConnId,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    inputs: &UnboundedSender<Input>,
) -> String {
    let mut buf = vec![0u8; 2 * MAX_FRAME_LEN];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        // Hand over every whole frame in the buffer.
        loop {
            match wire::split_frame(&buf[start..end]) {
                Ok(Some((body, used))) => {
                    if inputs.send(Input::Frame(conn, body.to_vec())).is_err() {
                        return "node stopping".into();
                    }
                    start += used;
                }
                Ok(None) => break,
                Err(err) => return format!("bad framing: {err}"),
            }
        }
        // Keep the partial frame at the front so a whole frame always fits.
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match rd.read(&mut buf[end..]).await {
            Ok(0) => return "closed by peer".into(),
            Ok(n) => end += n,
            Err(err) => return format!("read error: {err}"),
        }
    }
}
