//! One WebSocket connection: reads the peer's messages within the limits, answers it, and
//! writes what other peers relay to it.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use pollen_core::{
    PeerId,
    signal::{self, ErrorCode, FromServer, Limits, ToServer},
};
use tokio::sync::mpsc;

use crate::{
    Signaling,
    rate::{Throttle, TokenBucket},
    registry::OUTBOX,
};

/// Why a session ends, for the close frame.
struct Close {
    code: u16,
    reason: &'static str,
}

/// How a session ends.
enum End {
    /// The peer closed, or its connection broke or stopped taking writes: nothing more to say.
    Gone,
    /// The server closes it: an error saying why (unless already sent), then a close frame.
    Close(Option<FromServer>, Close),
}

/// The state of one connection.
struct Session {
    server: Signaling,
    conn: u64,
    me: Option<PeerId>,
    bucket: TokenBucket,
    rate_reports: Throttle,
    outbox: Option<mpsc::Sender<Vec<u8>>>,
    /// Since when the connection has been in no swarm (from its start, or from leaving its
    /// last); `None` while it is in one.
    unjoined_since: Option<Instant>,
}

/// Serves one connection until it closes, breaks, idles out, stays out of every swarm too
/// long, stops reading, or is closed for abuse. Every wait is bounded: reads by the idle and
/// unjoined deadlines, each write by [`Config::write_timeout`](crate::Config::write_timeout).
pub(crate) async fn run(mut ws: WebSocket, server: Signaling, conn: u64) {
    let config = *server.config();
    let limits = config.limits;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUTBOX);
    let now = Instant::now();
    let mut session = Session {
        bucket: TokenBucket::new(limits.rate_per_second, limits.burst, now),
        rate_reports: Throttle::new(Duration::from_secs(1)),
        server,
        conn,
        me: None,
        outbox: Some(tx),
        unjoined_since: Some(now),
    };
    let idle = Duration::from_secs(u64::from(limits.idle_timeout_secs.max(1)));
    let mut heard = now;
    let end = loop {
        let idle_at = heard + idle;
        let unjoined_at = session
            .unjoined_since
            .and_then(|since| since.checked_add(config.unjoined_timeout));
        let deadline = unjoined_at.map_or(idle_at, |at| at.min(idle_at));
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {
                let text = if unjoined_at.is_some_and(|at| at <= idle_at) {
                    format!(
                        "in no swarm for {}s; closing (pings alone do not keep a connection)",
                        config.unjoined_timeout.as_secs()
                    )
                } else {
                    format!("no message for {}s; closing", idle.as_secs())
                };
                let close = Close { code: close_code::NORMAL, reason: "idle" };
                break End::Close(Some(error(ErrorCode::Idle, text)), close);
            }
            incoming = ws.recv() => {
                heard = Instant::now();
                let replies = match incoming {
                    None => break End::Gone,
                    Some(Err(err)) => {
                        // The one read error worth explaining: a message beyond even the hard
                        // cap (which tungstenite refuses before we see it).
                        let text = format!("message refused: {err}");
                        let close = Close { code: close_code::SIZE, reason: "message too large" };
                        break End::Close(Some(error(ErrorCode::TooLarge, text)), close);
                    }
                    Some(Ok(msg)) => session.on_message(msg, &limits),
                };
                let mut failed = false;
                for reply in &replies.messages {
                    if !write(&mut ws, encode(reply), config.write_timeout).await {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break End::Gone;
                }
                if let Some(close) = replies.close {
                    break End::Close(None, close);
                }
            }
            Some(bytes) = rx.recv() => {
                if !write(&mut ws, Some(bytes), config.write_timeout).await {
                    break End::Gone;
                }
            }
        }
    };
    if let End::Close(reason, close) = end {
        // One write timeout for the whole goodbye.
        let _ = tokio::time::timeout(config.write_timeout, async {
            if let Some(bytes) = reason.as_ref().and_then(encode) {
                ws.send(Message::Binary(bytes.into())).await?;
            }
            let frame = CloseFrame {
                code: close.code,
                reason: close.reason.into(),
            };
            ws.send(Message::Close(Some(frame))).await
        })
        .await;
    }
    if let Some(me) = session.me {
        session.server.disconnect(conn, me);
    }
}

/// What a message makes the session send, and whether it then closes.
#[derive(Default)]
struct Replies {
    messages: Vec<FromServer>,
    close: Option<Close>,
}

impl Replies {
    fn one(msg: FromServer) -> Self {
        Self {
            messages: vec![msg],
            close: None,
        }
    }
}

impl Session {
    fn on_message(&mut self, msg: Message, limits: &Limits) -> Replies {
        let bytes = match msg {
            Message::Binary(bytes) => bytes,
            Message::Text(_) => {
                return Replies::one(error(
                    ErrorCode::Malformed,
                    "text message refused: signaling messages are binary".into(),
                ));
            }
            // Pings are answered by the WebSocket layer; a close ends the loop on the next read.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Replies::default(),
        };
        if !self.bucket.take(Instant::now()) {
            if self.rate_reports.ready(Instant::now()) {
                let text = format!(
                    "more than {} messages per second (burst {}); messages are being dropped",
                    limits.rate_per_second, limits.burst
                );
                return Replies::one(error(ErrorCode::RateLimited, text));
            }
            return Replies::default();
        }
        if bytes.len() > limits.max_message as usize {
            let text = format!(
                "message of {} bytes refused; the limit is {}",
                bytes.len(),
                limits.max_message
            );
            return Replies::one(error(ErrorCode::TooLarge, text));
        }
        match signal::decode_to_server(&bytes) {
            Ok(msg) => self.on_request(msg, limits),
            Err(err) => Replies::one(error(ErrorCode::Malformed, err.to_string())),
        }
    }

    fn on_request(&mut self, msg: ToServer, limits: &Limits) -> Replies {
        let me = match (&msg, self.me) {
            (ToServer::Ping, _) => return Replies::one(FromServer::Pong),
            (ToServer::Hello { peer, kind }, None) => {
                let Some(outbox) = self.outbox.take() else {
                    return Replies::default();
                };
                return match self.server.hello(self.conn, *peer, *kind, outbox) {
                    Ok(()) => {
                        self.me = Some(*peer);
                        Replies::one(FromServer::Welcome { limits: *limits })
                    }
                    Err(code) => Replies {
                        messages: vec![error(code, format!("peer id {peer} is already connected"))],
                        close: Some(Close {
                            code: close_code::POLICY,
                            reason: "duplicate peer id",
                        }),
                    },
                };
            }
            (ToServer::Hello { .. }, Some(_)) | (_, None) => {
                return Replies::one(error(
                    ErrorCode::HelloFirst,
                    "send Hello once, before anything else".into(),
                ));
            }
            (_, Some(me)) => me,
        };
        let result = match msg {
            ToServer::Join { swarm } => {
                let joined = self.server.join(me, swarm, limits);
                if joined.is_ok() {
                    self.unjoined_since = None;
                }
                joined.map(|members| Some(FromServer::Members { swarm, members }))
            }
            ToServer::Leave { swarm } => {
                if self.server.leave(me, swarm) == 0 && self.unjoined_since.is_none() {
                    self.unjoined_since = Some(Instant::now());
                }
                Ok(None)
            }
            ToServer::Relay { swarm, to, signal } => {
                self.server.relay(me, to, swarm, signal).map(|()| None)
            }
            ToServer::Hello { .. } | ToServer::Ping => Ok(None),
        };
        match result {
            Ok(Some(reply)) => Replies::one(reply),
            Ok(None) => Replies::default(),
            Err(code) => Replies::one(error(code, explain(code, limits))),
        }
    }
}

/// A human-readable text for a refusal.
fn explain(code: ErrorCode, limits: &Limits) -> String {
    match code {
        ErrorCode::TooManySwarms => {
            format!("a connection may join at most {} swarms", limits.max_swarms)
        }
        ErrorCode::NotJoined => "join the swarm before signaling in it".into(),
        ErrorCode::UnknownPeer => "that peer is not a member of the swarm".into(),
        ErrorCode::PeerBusy => "that peer is not reading its messages; signal dropped".into(),
        ErrorCode::HelloFirst => "send Hello once, before anything else".into(),
        other => format!("{other:?}"),
    }
}

fn error(code: ErrorCode, text: String) -> FromServer {
    let mut text = text;
    if text.len() > signal::MAX_ERROR_TEXT {
        let mut cut = signal::MAX_ERROR_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    FromServer::Error { code, text }
}

fn encode(msg: &FromServer) -> Option<Vec<u8>> {
    signal::encode_from_server(msg)
        .inspect_err(|err| tracing::error!("cannot encode a reply: {err}"))
        .ok()
}

/// Writes one message (nothing if it could not be encoded) within `timeout`; false if the
/// connection broke or did not take it in time.
async fn write(ws: &mut WebSocket, bytes: Option<Vec<u8>>, timeout: Duration) -> bool {
    let Some(bytes) = bytes else {
        return true;
    };
    match tokio::time::timeout(timeout, ws.send(Message::Binary(bytes.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::debug!("a signaling peer took no write for {timeout:?}; dropping it");
            false
        }
    }
}
