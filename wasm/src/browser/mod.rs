//! The browser glue: binds a [`Driver`] to a signaling WebSocket, RTCPeerConnections with one
//! ordered, reliable data channel each, and the browser's clock; exposes [`Peer`] to
//! JavaScript. This module holds the state the callbacks share and carries out the driver's
//! outputs; `api` is the JavaScript API, `signaling` the socket and the timer, `rtc` the peer
//! connections and `channel` their send pacing. Only `api` is public, and nothing below it
//! imports it.

mod api;
mod channel;
mod rtc;
mod signaling;

pub use api::{Peer, content_id, verify_throughput};

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap},
    rc::Rc,
};

use js_sys::{Array, Function, Promise, Uint8Array};
use pollen_core::{
    ContentId, Hint, Instant, ManifestBuilder, PeerId, Ticket,
    signal::{self, PeerKind, ToServer},
    swarm::LinkId,
};
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::{BinaryType, RtcDataChannel, WebSocket};

use crate::driver::{Driver, MAX_BROWSER_ARTIFACT, Output, Progress};
use channel::Outbox;
use rtc::Conn;

/// Most peer connections opened per swarm while fetching.
const MAX_DIALS_PER_SWARM: usize = 8;
/// How often the timer runs the swarms' timeouts (ms).
const TICK_MS: i32 = 20;
/// Time between asking signaling for a fresh sample while a fetch lacks peers, and between
/// pings that keep the signaling connection alive (well under the server's idle timeout).
/// Counted in time, not ticks: browsers run a hidden tab's timers as rarely as once a second.
const REJOIN_EVERY: core::time::Duration = core::time::Duration::from_secs(3);
/// First and longest wait before reopening a closed signaling socket.
const RECONNECT_MIN: core::time::Duration = core::time::Duration::from_secs(1);
const RECONNECT_MAX: core::time::Duration = core::time::Duration::from_secs(30);
/// How long a member stays listed after signaling last named it.
const MEMBER_TTL: core::time::Duration = core::time::Duration::from_secs(60);
/// Most members remembered per swarm (for display).
const MAX_KNOWN_MEMBERS: usize = 64;
/// Bytes of a shared file read (and hashed) at a time.
const READ_CHUNK: f64 = (4 << 20) as f64;

/// A fetch waiting for its artifact.
struct Waiter {
    resolve: Function,
    reject: Function,
    on_progress: Option<Function>,
}

/// An open data channel carrying a link.
struct Link {
    key: (ContentId, PeerId),
    dc: RtcDataChannel,
    outbox: Outbox,
}

/// Everything the callbacks share.
pub(crate) struct Shared {
    driver: Driver,
    ws: WebSocket,
    /// The signaling server's URL, put in the tickets we make.
    url: String,
    ice_servers: JsValue,
    conns: HashMap<(ContentId, PeerId), Conn>,
    links: HashMap<LinkId, Link>,
    joined: BTreeSet<ContentId>,
    /// Members each swarm's signaling samples and offers named, and their kind.
    members: HashMap<ContentId, BTreeMap<PeerId, (PeerKind, Instant)>>,
    waiters: HashMap<ContentId, Vec<Waiter>>,
    on_event: Option<Function>,
    /// When the last rejoin and ping went out.
    last_ping: Instant,
    /// When to open a new signaling socket after the last one closed.
    reconnect_at: Option<Instant>,
    /// The wait before the next reconnection attempt.
    backoff: core::time::Duration,
    /// The page closed this peer: no more reconnecting.
    closed: bool,
    /// The current socket's callbacks.
    socket_callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    /// Keeps the socket's and the timer's callbacks alive.
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    /// Callbacks of closed connections, dropped on the next tick (one may be running now).
    graveyard: Vec<Closure<dyn FnMut(JsValue)>>,
    /// Peer events raised while the state was borrowed, delivered by the next `flush`.
    events: Vec<Notify>,
    timer: i32,
    /// Peer connections ever made (offered or answered).
    conns_made: u64,
}

/// A callback to run once the shared state is no longer borrowed.
enum Notify {
    Call(Function, JsValue),
    Event(JsValue),
}

pub(crate) type State = Rc<RefCell<Shared>>;

/// Milliseconds since the page loaded, as the core's clock.
fn now() -> Instant {
    let ms = web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now());
    Instant::from_micros((ms * 1000.0) as u64)
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in pairs {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn progress_js(id: &ContentId, p: &Progress) -> JsValue {
    obj(&[
        ("id", JsValue::from_str(&id.to_string())),
        ("haveBytes", JsValue::from_f64(p.have_bytes as f64)),
        ("size", JsValue::from_f64(p.size as f64)),
        ("havePieces", JsValue::from_f64(f64::from(p.have_pieces))),
        ("pieces", JsValue::from_f64(f64::from(p.pieces))),
        ("peers", JsValue::from_f64(p.peers as f64)),
        ("downloaded", JsValue::from_f64(p.downloaded as f64)),
        ("uploaded", JsValue::from_f64(p.uploaded as f64)),
        ("complete", JsValue::from_bool(p.complete)),
    ])
}

fn event(kind: &str, mut fields: Vec<(&str, JsValue)>) -> Notify {
    fields.push(("type", JsValue::from_str(kind)));
    Notify::Event(obj(&fields))
}

/// A `peer-open` or `peer-closed` event: `{ type, id, peer }`.
fn peer_event(kind: &str, (id, peer): (ContentId, PeerId)) -> Notify {
    event(
        kind,
        vec![
            ("id", JsValue::from_str(&id.to_string())),
            ("peer", JsValue::from_str(&peer.to_string())),
        ],
    )
}

fn run_notifications(state: &State, notes: Vec<Notify>) {
    let on_event = state.borrow().on_event.clone();
    for n in notes {
        match n {
            Notify::Call(f, arg) => {
                let _ = f.call1(&JsValue::NULL, &arg);
            }
            Notify::Event(ev) => {
                if let Some(f) = &on_event {
                    let _ = f.call1(&JsValue::NULL, &ev);
                }
            }
        }
    }
}

impl Shared {
    /// Sends a message to the signaling server (dropped if the socket is not open).
    fn signal(&self, msg: &ToServer) {
        if let Ok(bytes) = signal::encode_to_server(msg) {
            let _ = self.ws.send_with_u8_array(&bytes);
        }
    }

    /// Remembers that `peer` (of `kind`) is a member of `swarm`, seen now. When the list is
    /// full, the member heard of longest ago makes room.
    fn note_member(&mut self, swarm: ContentId, peer: PeerId, kind: PeerKind) {
        let known = self.members.entry(swarm).or_default();
        if known.len() >= MAX_KNOWN_MEMBERS
            && !known.contains_key(&peer)
            && let Some(oldest) = known
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(p, _)| *p)
        {
            known.remove(&oldest);
        }
        known.insert(peer, (kind, now()));
    }

    /// Forgets members that no sample or offer named for [`MEMBER_TTL`] and that we have no
    /// connection with.
    fn expire_members(&mut self, t: Instant) {
        let conns = &self.conns;
        for (swarm, known) in &mut self.members {
            known.retain(|peer, (_, seen)| {
                conns.contains_key(&(*swarm, *peer)) || t.saturating_since(*seen) < MEMBER_TTL
            });
        }
        self.members.retain(|_, known| !known.is_empty());
    }

    /// `ticket` with this peer's signaling server as a hint, so whoever gets it finds us.
    fn with_our_hint(&self, ticket: Ticket) -> Ticket {
        if ticket
            .hints()
            .iter()
            .any(|h| matches!(h, Hint::Signal(u) if *u == self.url))
        {
            return ticket;
        }
        ticket
            .clone()
            .with_hint(Hint::Signal(self.url.clone()))
            .unwrap_or(ticket)
    }

    fn join(&mut self, swarm: ContentId) {
        self.joined.insert(swarm);
        self.signal(&ToServer::Join { swarm });
    }

    /// Carries out the driver's outputs; returns callbacks to run afterwards.
    fn flush(&mut self) -> Vec<Notify> {
        let mut notes = core::mem::take(&mut self.events);
        while let Some(out) = self.driver.poll_output() {
            match out {
                Output::Send(link, messages) => {
                    let pumped = self
                        .links
                        .get_mut(&link)
                        .map(|l| l.outbox.push(messages).and_then(|()| l.outbox.pump(&l.dc)));
                    self.pumped(link, pumped);
                }
                Output::Close(link) => self.close_link(link),
                Output::Ready(link, peer) => self.share_with(link, peer),
                Output::Progress(id) => self.progress(&id, &mut notes),
                Output::Complete(id) => {
                    self.progress(&id, &mut notes);
                    notes.push(event(
                        "complete",
                        vec![("id", JsValue::from_str(&id.to_string()))],
                    ));
                    let waiters = self.waiters.remove(&id).unwrap_or_default();
                    if let (Some(bytes), false) = (self.driver.bytes(&id), waiters.is_empty()) {
                        // One copy for every waiter.
                        let data: JsValue = Uint8Array::from(bytes).into();
                        for w in waiters {
                            notes.push(Notify::Call(w.resolve, data.clone()));
                        }
                    }
                }
                Output::Banned(id, peer) => notes.push(event(
                    "banned",
                    vec![
                        ("id", JsValue::from_str(&id.to_string())),
                        ("peer", JsValue::from_str(&peer.to_string())),
                    ],
                )),
            }
        }
        notes
    }

    /// A link to `peer` is ready: every swarm we fetch that signaling says `peer` is in goes
    /// on it too, instead of a peer connection of its own.
    fn share_with(&mut self, link: LinkId, peer: PeerId) {
        let swarms: Vec<ContentId> = self
            .joined
            .iter()
            .filter(|id| !self.driver.is_complete(id))
            .filter(|id| self.members.get(id).is_some_and(|m| m.contains_key(&peer)))
            .copied()
            .collect();
        for id in swarms {
            self.driver.share_link(now(), link, id);
        }
    }

    fn progress(&self, id: &ContentId, notes: &mut Vec<Notify>) {
        if let Some(p) = self.driver.progress(id) {
            let js = progress_js(id, &p);
            for w in self.waiters.get(id).into_iter().flatten() {
                if let Some(f) = &w.on_progress {
                    notes.push(Notify::Call(f.clone(), js.clone()));
                }
            }
            notes.push(Notify::Event(obj(&[
                ("type", JsValue::from_str("progress")),
                ("progress", js),
            ])));
        }
    }

    /// Closes a link's channel and its peer connection.
    fn close_link(&mut self, link: LinkId) {
        if let Some(l) = self.links.remove(&link) {
            self.events.push(peer_event("peer-closed", l.key));
            if let Some(conn) = self.conns.remove(&l.key) {
                conn.close(&mut self.graveyard);
            }
        }
    }

    /// A peer connection failed or closed: forget it and its link.
    pub(crate) fn conn_closed(&mut self, key: (ContentId, PeerId)) {
        if let Some(conn) = self.conns.remove(&key) {
            if let Some(link) = conn.link {
                self.links.remove(&link);
                self.driver.handle_closed(now(), link);
                self.events.push(peer_event("peer-closed", key));
            }
            conn.close(&mut self.graveyard);
        }
    }

    /// A data channel opened: it becomes a link of the swarm.
    pub(crate) fn channel_open(
        &mut self,
        key: (ContentId, PeerId),
        dc: RtcDataChannel,
        dialed: bool,
    ) -> Option<LinkId> {
        let link = self.driver.open_link(now(), key.0, dialed)?;
        self.events.push(peer_event("peer-open", key));
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.link = Some(link);
        }
        self.links.insert(
            link,
            Link {
                key,
                dc,
                outbox: Outbox::new(),
            },
        );
        Some(link)
    }

    pub(crate) fn channel_message(&mut self, link: LinkId, data: &[u8]) {
        self.driver.handle_message(now(), link, data);
    }

    pub(crate) fn channel_low(&mut self, link: LinkId) {
        let pumped = self.links.get_mut(&link).map(|l| l.outbox.pump(&l.dc));
        self.pumped(link, pumped);
    }

    /// Tells the driver what a link's pump handed to its channel, or closes the link if the
    /// channel refused.
    fn pumped(&mut self, link: LinkId, pumped: Option<Result<u64, ()>>) {
        match pumped {
            Some(Ok(0)) | None => {}
            Some(Ok(sent)) => self.driver.handle_sent(now(), link, sent),
            Some(Err(())) => {
                self.close_link(link);
                self.driver.handle_closed(now(), link);
            }
        }
    }
}

/// Runs the driver's outputs after a callback changed something.
pub(crate) fn after(state: &State) {
    let notes = state.borrow_mut().flush();
    run_notifications(state, notes);
}
