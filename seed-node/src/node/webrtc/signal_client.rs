//! A connection to one signaling server: says Hello, sends what the manager queues, passes on
//! what the server says, and reconnects (re-joining its swarms) when the connection drops.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pollen_core::{
    ContentId, PeerId,
    signal::{self, FromServer, PeerKind, ToServer},
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_tungstenite::tungstenite::Message;

use super::Internal;

/// Keeps an idle connection open (the server's idle timeout is a minute by default).
const PING_EVERY: Duration = Duration::from_secs(20);
/// Waits between reconnection attempts: doubled after each failure, at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs the connection to `url` until the manager drops its sender.
pub(super) async fn run(
    url: String,
    me: PeerId,
    mut outbox: UnboundedReceiver<ToServer>,
    internal: UnboundedSender<Internal>,
    mut joined: Vec<ContentId>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((mut ws, _)) => {
                backoff = Duration::from_millis(500);
                let mut hello = vec![ToServer::Hello {
                    peer: me,
                    kind: PeerKind::Native,
                }];
                hello.extend(joined.iter().map(|&swarm| ToServer::Join { swarm }));
                let mut ok = true;
                for msg in hello {
                    ok &= send(&mut ws, &msg).await;
                }
                let mut ping = tokio::time::interval(PING_EVERY);
                while ok {
                    tokio::select! {
                        msg = outbox.recv() => match msg {
                            None => return,
                            Some(msg) => {
                                match &msg {
                                    ToServer::Join { swarm } if !joined.contains(swarm) => joined.push(*swarm),
                                    ToServer::Leave { swarm } => joined.retain(|s| s != swarm),
                                    _ => {}
                                }
                                ok = send(&mut ws, &msg).await;
                            }
                        },
                        incoming = ws.next() => match incoming {
                            Some(Ok(Message::Binary(bytes))) => match signal::decode_from_server(&bytes) {
                                Ok(FromServer::Error { code, text }) => {
                                    tracing::debug!(%url, "signaling refused something: {code:?}: {text}");
                                }
                                Ok(msg) => {
                                    if internal.send(Internal::Signal(url.clone(), msg)).is_err() {
                                        return;
                                    }
                                }
                                Err(err) => tracing::debug!(%url, "bad signaling message: {err}"),
                            },
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => ok = false,
                        },
                        _ = ping.tick() => ok = send(&mut ws, &ToServer::Ping).await,
                    }
                }
                tracing::debug!(%url, "signaling connection dropped; reconnecting");
            }
            Err(err) => tracing::debug!(%url, "cannot reach the signaling server: {err}"),
        }
        // Keep track of joins and leaves queued meanwhile.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                msg = outbox.recv() => match msg {
                    None => return,
                    Some(ToServer::Join { swarm }) if !joined.contains(&swarm) => joined.push(swarm),
                    Some(ToServer::Leave { swarm }) => joined.retain(|s| *s != swarm),
                    Some(_) => {}
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn send<S>(ws: &mut S, msg: &ToServer) -> bool
where
    S: SinkExt<Message> + Unpin,
{
    match signal::encode_to_server(msg) {
        Ok(bytes) => ws.send(Message::Binary(bytes.into())).await.is_ok(),
        Err(err) => {
            tracing::warn!("cannot encode a signaling message: {err}");
            true
        }
    }
}
