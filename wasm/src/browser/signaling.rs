//! The signaling socket: opening it, its callbacks, reconnecting with backoff, the timer
//! that drives the driver, and what the server says.

use pollen_core::signal::FromServer;
use web_sys::MessageEvent;

use super::*;

/// Resolves when the socket opens; rejects if it fails first.
pub(super) async fn wait_open(ws: &WebSocket, url: &str) -> Result<(), JsValue> {
    let url = url.to_string();
    let opened = Promise::new(&mut |resolve, reject| {
        ws.set_onopen(Some(&resolve));
        let url = url.clone();
        let on_error = Closure::once_into_js(move |_: JsValue| {
            let _ = reject.call1(
                &JsValue::NULL,
                &JsValue::from_str(&format!("cannot reach the signaling server at {url}")),
            );
        });
        ws.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(opened).await?;
    ws.set_onopen(None);
    ws.set_onerror(None);
    Ok(())
}

/// The socket's message and close handlers, and the timer.
pub(super) fn install_callbacks(state: &State) -> Result<(), JsValue> {
    let ws = state.borrow().ws.clone();
    attach_socket(state, &ws, false);
    let tick = {
        let state = state.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| on_tick(&state))
    };
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let timer = window.set_interval_with_callback_and_timeout_and_arguments_0(
        tick.as_ref().unchecked_ref(),
        TICK_MS,
    )?;
    let mut s = state.borrow_mut();
    s.timer = timer;
    s._callbacks.push(tick);
    Ok(())
}

/// Wires a signaling socket's messages and closing to the peer; a reopened socket (`reopened`)
/// also introduces the peer again and rejoins its swarms once it opens.
fn attach_socket(state: &State, ws: &WebSocket, reopened: bool) {
    let on_message = {
        let state = state.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            let Some(ev) = ev.dyn_ref::<MessageEvent>() else {
                return;
            };
            let data = Uint8Array::new(&ev.data()).to_vec();
            match signal::decode_from_server(&data) {
                Ok(msg) => on_signal(&state, msg),
                Err(err) => web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "pollen: bad signaling message: {err}"
                ))),
            }
        })
    };
    let on_close = {
        let state = state.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            {
                let mut s = state.borrow_mut();
                if s.closed {
                    return;
                }
                let wait = s.backoff;
                s.reconnect_at = Some(now() + wait);
                s.backoff = (wait * 2).min(RECONNECT_MAX);
            }
            let notes = vec![event("signaling-closed", vec![])];
            run_notifications(&state, notes);
        })
    };
    let on_open = {
        let state = state.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            {
                let mut s = state.borrow_mut();
                s.backoff = RECONNECT_MIN;
                let me = s.driver.peer_id();
                s.signal(&ToServer::Hello {
                    peer: me,
                    kind: PeerKind::Browser,
                });
                let swarms: Vec<ContentId> = s.joined.iter().copied().collect();
                for swarm in swarms {
                    s.signal(&ToServer::Join { swarm });
                }
            }
            let notes = vec![event("signaling-open", vec![])];
            run_notifications(&state, notes);
        })
    };
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    if reopened {
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    }
    let mut s = state.borrow_mut();
    // The old socket's callbacks may be running: drop them on the next tick.
    let old = core::mem::replace(&mut s.socket_callbacks, vec![on_message, on_close, on_open]);
    s.graveyard.extend(old);
}

/// Opens a new signaling socket if the last one closed and its wait is over.
fn reconnect_if_due(state: &State) {
    let url = {
        let mut s = state.borrow_mut();
        match s.reconnect_at {
            Some(at) if !s.closed && now() >= at => {
                s.reconnect_at = None;
                s.url.clone()
            }
            _ => return,
        }
    };
    match WebSocket::new(&url) {
        Ok(ws) => {
            ws.set_binary_type(BinaryType::Arraybuffer);
            attach_socket(state, &ws, true);
            state.borrow_mut().ws = ws;
        }
        Err(_) => {
            let mut s = state.borrow_mut();
            let wait = s.backoff;
            s.reconnect_at = Some(now() + wait);
            s.backoff = (wait * 2).min(RECONNECT_MAX);
        }
    }
}

fn on_tick(state: &State) {
    reconnect_if_due(state);
    let notes = {
        let mut s = state.borrow_mut();
        s.graveyard.clear();
        s.driver.handle_timeout(now());
        let t = now();
        if t.saturating_since(s.last_ping) >= REJOIN_EVERY {
            s.last_ping = t;
            s.expire_members(t);
            // Fetches with few peers ask for a fresh sample; the server's answer dials them.
            let wanting: Vec<ContentId> = s
                .joined
                .iter()
                .filter(|id| !s.driver.is_complete(id))
                .filter(|id| s.conns.keys().filter(|k| k.0 == **id).count() < MAX_DIALS_PER_SWARM)
                .copied()
                .collect();
            for id in wanting {
                s.signal(&ToServer::Join { swarm: id });
            }
            s.signal(&ToServer::Ping);
        }
        s.flush()
    };
    run_notifications(state, notes);
}

fn on_signal(state: &State, msg: FromServer) {
    match msg {
        FromServer::Welcome { .. } | FromServer::Pong => {}
        FromServer::Members { swarm, members } => {
            let mut s = state.borrow_mut();
            for m in &members {
                s.note_member(swarm, m.peer, m.kind);
            }
            if s.driver.is_complete(&swarm) || s.driver.progress(&swarm).is_none() {
                return;
            }
            let mut open = s.conns.keys().filter(|k| k.0 == swarm).count();
            for m in members {
                if open >= MAX_DIALS_PER_SWARM {
                    break;
                }
                if s.conns.contains_key(&(swarm, m.peer)) {
                    continue;
                }
                open += 1;
                // A peer we share another swarm with gets this one on the same connection;
                // one still opening gets it once it is ready (`share_with`).
                if let Some(link) = s.driver.link_to(&m.peer) {
                    s.driver.share_link(now(), link, swarm);
                    continue;
                }
                if s.conns.keys().any(|k| k.1 == m.peer) {
                    continue;
                }
                rtc::dial(state, &mut s, swarm, m.peer);
            }
        }
        FromServer::Relay {
            swarm,
            from,
            kind,
            signal,
        } => {
            state.borrow_mut().note_member(swarm, from, kind);
            rtc::on_relay(state, swarm, from, signal);
        }
        FromServer::Error { code, text } => {
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "pollen: signaling refused: {code:?}: {text}"
            )));
            let notes = vec![event(
                "signaling-error",
                vec![
                    ("code", JsValue::from_str(&format!("{code:?}"))),
                    ("text", JsValue::from_str(&text)),
                ],
            )];
            run_notifications(state, notes);
        }
    }
}
