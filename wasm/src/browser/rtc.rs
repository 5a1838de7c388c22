//! Peer connections: offers to members found through signaling, answers to offers relayed to
//! us, trickled ICE candidates, and the data channel each connection carries.

use std::{cell::Cell, rc::Rc};

use js_sys::Uint8Array;
use pollen_core::{
    ContentId, PeerId,
    signal::{Signal, ToServer},
    swarm::LinkId,
};
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelInit,
    RtcDataChannelType, RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent,
    RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};

use super::{Shared, State, after, channel::LOW_WATER};

type Callback = Closure<dyn FnMut(JsValue)>;

/// One peer connection and what it needs until it closes.
pub(crate) struct Conn {
    pc: RtcPeerConnection,
    dc: Option<RtcDataChannel>,
    /// The driver's link, once the channel opened.
    pub(crate) link: Option<LinkId>,
    remote_set: bool,
    pending: Vec<RtcIceCandidateInit>,
    callbacks: Vec<Callback>,
}

impl Conn {
    /// Closes the channel and the connection. Their callbacks are dropped on the next tick,
    /// not here: one of them may be running.
    pub(crate) fn close(self, graveyard: &mut Vec<Callback>) {
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_ondatachannel(None);
        if let Some(dc) = &self.dc {
            dc.set_onopen(None);
            dc.set_onmessage(None);
            dc.set_onclose(None);
            dc.set_onbufferedamountlow(None);
            dc.close();
        }
        self.pc.close();
        graveyard.extend(self.callbacks);
    }
}

/// A peer connection to `peer` for `swarm`, its ICE candidates trickled through signaling.
fn new_conn(
    state: &State,
    s: &mut Shared,
    swarm: ContentId,
    peer: PeerId,
) -> Result<Conn, JsValue> {
    s.conns_made += 1;
    let config = RtcConfiguration::new();
    if s.ice_servers.is_object() {
        config.set_ice_servers(&s.ice_servers);
    }
    let pc = RtcPeerConnection::new_with_configuration(&config)?;
    let on_candidate = {
        let state = state.clone();
        Callback::new(move |ev: JsValue| {
            let Some(ev) = ev.dyn_ref::<RtcPeerConnectionIceEvent>() else {
                return;
            };
            let Some(c) = ev.candidate() else { return };
            let signal = Signal::Candidate {
                candidate: c.candidate(),
                mid: c.sdp_mid(),
                mline_index: c.sdp_m_line_index(),
            };
            state.borrow().signal(&ToServer::Relay {
                swarm,
                to: peer,
                signal,
            });
        })
    };
    let on_state = {
        let state = state.clone();
        let pc = pc.clone();
        Callback::new(move |_: JsValue| {
            if matches!(
                pc.connection_state(),
                RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed
            ) {
                state.borrow_mut().conn_closed((swarm, peer));
                after(&state);
            }
        })
    };
    pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
    pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
    Ok(Conn {
        pc,
        dc: None,
        link: None,
        remote_set: false,
        pending: Vec::new(),
        callbacks: vec![on_candidate, on_state],
    })
}

/// Wires a data channel to the driver: open makes a link, messages feed it, low water sends
/// more, close ends it.
/// `dialed`: we offered (and made the channel).
fn attach_channel(
    state: &State,
    key: (ContentId, PeerId),
    dc: &RtcDataChannel,
    dialed: bool,
) -> Vec<Callback> {
    dc.set_binary_type(RtcDataChannelType::Arraybuffer);
    dc.set_buffered_amount_low_threshold(LOW_WATER);
    let link: Rc<Cell<Option<LinkId>>> = Rc::new(Cell::new(None));
    let on_open = {
        let (state, link, dc) = (state.clone(), link.clone(), dc.clone());
        Callback::new(move |_: JsValue| {
            let opened = state.borrow_mut().channel_open(key, dc.clone(), dialed);
            link.set(opened);
            if opened.is_none() {
                // We no longer hold the artifact.
                state.borrow_mut().conn_closed(key);
            }
            after(&state);
        })
    };
    let on_message = {
        let (state, link) = (state.clone(), link.clone());
        Callback::new(move |ev: JsValue| {
            let (Some(ev), Some(l)) = (ev.dyn_ref::<MessageEvent>(), link.get()) else {
                return;
            };
            let data = Uint8Array::new(&ev.data()).to_vec();
            state.borrow_mut().channel_message(l, &data);
            after(&state);
        })
    };
    let on_low = {
        let (state, link) = (state.clone(), link.clone());
        Callback::new(move |_: JsValue| {
            if let Some(l) = link.get() {
                state.borrow_mut().channel_low(l);
                after(&state);
            }
        })
    };
    let on_close = {
        let state = state.clone();
        Callback::new(move |_: JsValue| {
            state.borrow_mut().conn_closed(key);
            after(&state);
        })
    };
    dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    dc.set_onbufferedamountlow(Some(on_low.as_ref().unchecked_ref()));
    dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    vec![on_open, on_message, on_low, on_close]
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

fn sdp_of(desc: &JsValue) -> String {
    js_sys::Reflect::get(desc, &JsValue::from_str("sdp"))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

fn warn(what: &str, err: &JsValue) {
    web_sys::console::warn_2(&JsValue::from_str(&format!("pollen: {what}:")), err);
}

/// Opens a connection to `peer` for `swarm` and sends it our offer.
pub(crate) fn dial(state: &State, s: &mut Shared, swarm: ContentId, peer: PeerId) {
    let key = (swarm, peer);
    let mut conn = match new_conn(state, s, swarm, peer) {
        Ok(c) => c,
        Err(err) => return warn("cannot create a peer connection", &err),
    };
    let init = RtcDataChannelInit::new();
    init.set_ordered(true);
    let dc = conn
        .pc
        .create_data_channel_with_data_channel_dict(&swarm.to_string(), &init);
    conn.callbacks.extend(attach_channel(state, key, &dc, true));
    conn.dc = Some(dc);
    let pc = conn.pc.clone();
    s.conns.insert(key, conn);
    let state = state.clone();
    spawn_local(async move {
        let offer = match JsFuture::from(pc.create_offer()).await {
            Ok(o) => o,
            Err(err) => return warn("cannot create an offer", &err),
        };
        let sdp = sdp_of(&offer);
        if let Err(err) =
            JsFuture::from(pc.set_local_description(&description(RtcSdpType::Offer, &sdp))).await
        {
            return warn("cannot set the local offer", &err);
        }
        state.borrow().signal(&ToServer::Relay {
            swarm,
            to: peer,
            signal: Signal::Offer(sdp),
        });
    });
}

/// A signal relayed from `from` for `swarm`.
pub(crate) fn on_relay(state: &State, swarm: ContentId, from: PeerId, signal: Signal) {
    let key = (swarm, from);
    match signal {
        Signal::Offer(sdp) => answer(state, key, sdp),
        Signal::Answer(sdp) => {
            let Some(pc) = state.borrow().conns.get(&key).map(|c| c.pc.clone()) else {
                return;
            };
            let state = state.clone();
            spawn_local(async move {
                let desc = description(RtcSdpType::Answer, &sdp);
                if let Err(err) = JsFuture::from(pc.set_remote_description(&desc)).await {
                    return warn("cannot set the remote answer", &err);
                }
                remote_set(&state, key);
            });
        }
        Signal::Candidate {
            candidate,
            mid,
            mline_index,
        } => {
            let init = RtcIceCandidateInit::new(&candidate);
            init.set_sdp_mid(mid.as_deref());
            init.set_sdp_m_line_index(mline_index);
            let mut s = state.borrow_mut();
            let Some(conn) = s.conns.get_mut(&key) else {
                return;
            };
            if conn.remote_set {
                let _ = conn
                    .pc
                    .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
            } else {
                conn.pending.push(init);
            }
        }
    }
}

/// The remote description is set: candidates that came early can be added now.
fn remote_set(state: &State, key: (ContentId, PeerId)) {
    let mut s = state.borrow_mut();
    if let Some(conn) = s.conns.get_mut(&key) {
        conn.remote_set = true;
        for init in conn.pending.drain(..) {
            let _ = conn
                .pc
                .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
        }
    }
}

/// Answers an offer for an artifact we hold.
fn answer(state: &State, key: (ContentId, PeerId), sdp: String) {
    let pc = {
        let mut s = state.borrow_mut();
        if s.driver.progress(&key.0).is_none() {
            return;
        }
        if let Some(ours) = s.conns.get(&key) {
            // Both sides offered at once: the core's rule says whose offer stands.
            if pollen_core::policy::offer_wins(&s.driver.peer_id(), &key.1, ours.link.is_some()) {
                return;
            }
            s.conn_closed(key);
        }
        let mut conn = match new_conn(state, &mut s, key.0, key.1) {
            Ok(c) => c,
            Err(err) => return warn("cannot create a peer connection", &err),
        };
        let on_channel = {
            let state = state.clone();
            Callback::new(move |ev: JsValue| {
                let Some(ev) = ev.dyn_ref::<RtcDataChannelEvent>() else {
                    return;
                };
                let dc = ev.channel();
                let callbacks = attach_channel(&state, key, &dc, false);
                if let Some(conn) = state.borrow_mut().conns.get_mut(&key) {
                    conn.callbacks.extend(callbacks);
                    conn.dc = Some(dc);
                }
            })
        };
        conn.pc
            .set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
        conn.callbacks.push(on_channel);
        let pc = conn.pc.clone();
        s.conns.insert(key, conn);
        pc
    };
    let state = state.clone();
    spawn_local(async move {
        let desc = description(RtcSdpType::Offer, &sdp);
        if let Err(err) = JsFuture::from(pc.set_remote_description(&desc)).await {
            return warn("cannot set the remote offer", &err);
        }
        remote_set(&state, key);
        let answer = match JsFuture::from(pc.create_answer()).await {
            Ok(a) => a,
            Err(err) => return warn("cannot create an answer", &err),
        };
        let sdp = sdp_of(&answer);
        if let Err(err) =
            JsFuture::from(pc.set_local_description(&description(RtcSdpType::Answer, &sdp))).await
        {
            return warn("cannot set the local answer", &err);
        }
        state.borrow().signal(&ToServer::Relay {
            swarm: key.0,
            to: key.1,
            signal: Signal::Answer(sdp),
        });
    });
}
