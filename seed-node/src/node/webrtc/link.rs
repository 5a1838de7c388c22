//! A data channel as a link: a reader task that reassembles frames from messages, and a writer
//! task that packs queued frames into messages, each send waiting while the channel's buffer
//! is full.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::{Bytes, BytesMut};
use pollen_core::wire::{FrameBuffer, pack_messages};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use webrtc::{
    data_channel::{DataChannel, DataChannelEvent},
    peer_connection::PeerConnection,
};

use super::super::{
    Input,
    conn::{ConnHandle, ConnId, SharedLimiter},
};

/// Largest message we send (Chromium and webrtc-rs both take 64 KiB without negotiation).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// Starts the tasks of an open data channel; closing the handle closes the connection.
pub(crate) fn spawn(
    conn: ConnId,
    dc: Arc<dyn DataChannel>,
    pc: Arc<dyn PeerConnection>,
    inputs: UnboundedSender<Input>,
    limiter: SharedLimiter,
) -> ConnHandle {
    let (tx, mut rx) = unbounded_channel::<Vec<Bytes>>();
    let unsent = Arc::new(AtomicUsize::new(0));
    let written = unsent.clone();
    let out = dc.clone();
    let sent = inputs.clone();
    let writer = tokio::spawn(async move {
        while let Some(segments) = rx.recv().await {
            let len: usize = segments.iter().map(Bytes::len).sum();
            if let Some(limiter) = &limiter {
                let wait = limiter
                    .lock()
                    .map(|mut l| l.reserve(len))
                    .unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            for message in pack_messages(&segments, MAX_MESSAGE) {
                if out.send(BytesMut::from(&message[..])).await.is_err() {
                    return;
                }
            }
            written.fetch_sub(len, Ordering::Relaxed);
            let _ = sent.send(Input::Sent(conn, len as u64));
        }
    });
    let reader = tokio::spawn(async move {
        let mut frames = FrameBuffer::new();
        let reason = loop {
            match dc.poll().await {
                Some(DataChannelEvent::OnMessage(msg)) => {
                    frames.push(&msg.data);
                    loop {
                        match frames.next_frame() {
                            Ok(Some(body)) => {
                                if inputs.send(Input::Frame(conn, body)).is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(err) => {
                                let _ =
                                    inputs.send(Input::Closed(conn, format!("bad framing: {err}")));
                                return;
                            }
                        }
                    }
                }
                Some(DataChannelEvent::OnClose) | None => break "data channel closed".to_string(),
                Some(_) => {}
            }
        };
        let _ = inputs.send(Input::Closed(conn, reason));
    });
    let closer: Box<dyn FnOnce() + Send> = Box::new(move || {
        tokio::spawn(async move {
            let _ = pc.close().await;
        });
    });
    ConnHandle::from_parts(
        tx,
        unsent,
        reader.abort_handle(),
        writer.abort_handle(),
        Some(closer),
    )
}
