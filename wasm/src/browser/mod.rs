//! The browser glue: binds a [`Driver`] to a signaling WebSocket, RTCPeerConnections with one
//! ordered, reliable data channel each, and the browser's clock; exposes [`Peer`] to
//! JavaScript.

mod channel;
mod rtc;

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap},
    rc::Rc,
};

use js_sys::{Array, Function, Promise, Uint8Array};
use pollen_core::{
    ContentId, Hint, Instant, ManifestBuilder, PeerId, Ticket,
    signal::{self, FromServer, PeerKind, ToServer},
    swarm::LinkId,
};
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::{BinaryType, MessageEvent, RtcDataChannel, WebSocket};

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
                    let failed = match self.links.get_mut(&link) {
                        Some(l) => l
                            .outbox
                            .push(messages)
                            .and_then(|()| l.outbox.pump(&l.dc))
                            .is_err(),
                        None => false,
                    };
                    if failed {
                        self.close_link(link);
                        self.driver.handle_closed(now(), link);
                    }
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
        let failed = self
            .links
            .get_mut(&link)
            .is_some_and(|l| l.outbox.pump(&l.dc).is_err());
        if failed {
            self.close_link(link);
            self.driver.handle_closed(now(), link);
        }
    }
}

/// A Pollen peer in this page.
#[wasm_bindgen]
pub struct Peer {
    state: State,
}

#[wasm_bindgen]
impl Peer {
    /// Connects to the signaling server at `url` (`ws://…/signal`). `ice_servers` is an
    /// optional array of RTCIceServer objects (STUN/TURN); none are needed on a LAN.
    pub fn connect(url: String, ice_servers: JsValue) -> Promise {
        future_to_promise(async move { Ok(Peer::open(url, ice_servers).await?.into()) })
    }

    /// This peer's id (hex of its first 8 bytes).
    #[wasm_bindgen(getter, js_name = peerId)]
    pub fn peer_id(&self) -> String {
        self.state.borrow().driver.peer_id().to_string()
    }

    /// Calls `callback(event)` for peers, progress and completion events.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, callback: Option<Function>) {
        self.state.borrow_mut().on_event = callback;
    }

    /// Shares a `File`, `Blob` or `Uint8Array`; resolves to its ticket string.
    /// `on_progress({ hashedBytes, size })` is called as the bytes are read and hashed.
    pub fn share(
        &self,
        data: JsValue,
        name: Option<String>,
        on_progress: Option<Function>,
    ) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let name = name
                .or_else(|| data.dyn_ref::<web_sys::File>().map(web_sys::File::name))
                .and_then(|n| crate::driver::fit_name(&n));
            let (manifest, bytes) = read_and_hash(&data, on_progress.as_ref()).await?;
            let ticket = {
                let mut s = state.borrow_mut();
                let ticket = s
                    .driver
                    .share_hashed(now(), manifest, bytes, name.as_deref())
                    .map_err(|e| JsValue::from_str(&e.to_string()))?;
                s.join(ticket.id());
                s.with_our_hint(ticket)
            };
            Ok(JsValue::from_str(&ticket.to_string()))
        })
    }

    /// The artifacts this page holds or fetches: progress objects with `name` and `ticket`.
    pub fn artifacts(&self) -> Array {
        let s = self.state.borrow();
        s.driver
            .artifacts()
            .filter_map(|(id, ticket)| {
                let p = s.driver.progress(id)?;
                let js = progress_js(id, &p);
                let name = ticket.name().map_or(JsValue::NULL, JsValue::from_str);
                let _ = js_sys::Reflect::set(&js, &"name".into(), &name);
                let link = s.with_our_hint(ticket.clone()).to_string();
                let _ = js_sys::Reflect::set(&js, &"ticket".into(), &link.into());
                Some(js)
            })
            .collect()
    }

    /// Which pieces of an artifact are verified and who sent each: `{ peers, pieces }`, where
    /// `pieces` holds a byte per piece: 0 missing, 1 held from the start, 2 + i sent by
    /// `peers[i]`, 255 sent by a peer beyond those; `undefined` for an unknown artifact.
    #[wasm_bindgen(js_name = pieceMap)]
    pub fn piece_map(&self, id: String) -> JsValue {
        let s = self.state.borrow();
        let Some(map) = parse_id(&id).and_then(|id| s.driver.piece_map(&id)) else {
            return JsValue::UNDEFINED;
        };
        let peers: Array = map
            .peers
            .iter()
            .map(|p| JsValue::from_str(&p.to_string()))
            .collect();
        obj(&[
            ("peers", peers.into()),
            ("pieces", Uint8Array::from(&map.pieces[..]).into()),
        ])
    }

    /// The peers of an artifact: members signaling named and peers linked to us, each
    /// `{ peer, kind, connected, pieces, downloaded, uploaded }` (`kind` "browser", "native"
    /// or null when unknown).
    pub fn peers(&self, id: String) -> Array {
        let s = self.state.borrow();
        let Some(id) = parse_id(&id) else {
            return Array::new();
        };
        let mut rows: BTreeMap<PeerId, (Option<PeerKind>, Option<crate::driver::LinkInfo>)> =
            BTreeMap::new();
        for (peer, (kind, _)) in s.members.get(&id).into_iter().flatten() {
            rows.entry(*peer).or_default().0 = Some(*kind);
        }
        for link in s.driver.links(&id) {
            if let Some(peer) = link.peer {
                rows.entry(peer).or_default().1 = Some(link);
            }
        }
        rows.into_iter()
            .map(|(peer, (kind, link))| {
                let kind = match kind {
                    Some(PeerKind::Browser) => JsValue::from_str("browser"),
                    Some(PeerKind::Native) => JsValue::from_str("native"),
                    None => JsValue::NULL,
                };
                let num = |f: fn(&crate::driver::LinkInfo) -> u64| {
                    JsValue::from_f64(link.as_ref().map_or(0, f) as f64)
                };
                obj(&[
                    ("peer", JsValue::from_str(&peer.to_string())),
                    ("kind", kind),
                    ("connected", JsValue::from_bool(link.is_some())),
                    ("pieces", num(|l| u64::from(l.peer_pieces))),
                    ("downloaded", num(|l| l.downloaded)),
                    ("uploaded", num(|l| l.uploaded)),
                ])
            })
            .collect()
    }

    /// The signaling server this peer uses.
    #[wasm_bindgen(getter, js_name = signalUrl)]
    pub fn signal_url(&self) -> String {
        self.state.borrow().url.clone()
    }

    /// Fetches the artifact a ticket names; resolves to its bytes (a `Uint8Array`) once every
    /// piece is verified. `on_progress(progress)` is called as pieces arrive.
    pub fn fetch(&self, ticket: String, on_progress: Option<Function>) -> Promise {
        let state = self.state.clone();
        let parsed = ticket
            .trim()
            .rsplit('#')
            .next()
            .unwrap_or_default()
            .parse::<Ticket>();
        Promise::new(&mut |resolve, reject| {
            let ticket = match &parsed {
                Ok(t) => t.clone(),
                Err(err) => {
                    let _ = reject.call1(
                        &JsValue::NULL,
                        &JsValue::from_str(&format!("bad ticket: {err}")),
                    );
                    return;
                }
            };
            let id = ticket.id();
            let notes = {
                let mut s = state.borrow_mut();
                if let Err(err) = s.driver.fetch(now(), &ticket) {
                    let _ = reject.call1(&JsValue::NULL, &JsValue::from_str(&err.to_string()));
                    return;
                }
                s.waiters.entry(id).or_default().push(Waiter {
                    resolve,
                    reject,
                    on_progress: on_progress.clone(),
                });
                s.join(id);
                let mut notes = s.flush();
                // Already held: resolve at once.
                if let Some(bytes) = s.driver.bytes(&id) {
                    let data: JsValue = Uint8Array::from(bytes).into();
                    for w in s.waiters.remove(&id).unwrap_or_default() {
                        notes.push(Notify::Call(w.resolve, data.clone()));
                    }
                }
                notes
            };
            run_notifications(&state, notes);
        })
    }

    /// Progress of an artifact (by content id or ticket), or `undefined`.
    pub fn progress(&self, id: String) -> JsValue {
        let id = parse_id(&id);
        let s = self.state.borrow();
        id.and_then(|id| s.driver.progress(&id).map(|p| progress_js(&id, &p)))
            .unwrap_or(JsValue::UNDEFINED)
    }

    /// Open peer connections (each carries every artifact shared with its peer).
    pub fn connections(&self) -> usize {
        self.state.borrow().conns.len()
    }

    /// Peer connections made since the page connected, offered or answered.
    #[wasm_bindgen(js_name = connectionsMade)]
    pub fn connections_made(&self) -> f64 {
        self.state.borrow().conns_made as f64
    }

    /// Closes every connection and the signaling socket.
    pub fn close(&self) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        let keys: Vec<_> = s.conns.keys().copied().collect();
        for key in keys {
            s.conn_closed(key);
        }
        let err = JsValue::from_str("the peer was closed");
        for (_, ws) in s.waiters.drain() {
            for w in ws {
                let _ = w.reject.call1(&JsValue::NULL, &err);
            }
        }
        if let Some(w) = web_sys::window() {
            w.clear_interval_with_handle(s.timer);
        }
        let _ = s.ws.close();
    }
}

/// A content id, or the id of a ticket or ticket link.
fn parse_id(text: &str) -> Option<ContentId> {
    let text = text.trim();
    text.parse::<ContentId>().ok().or_else(|| {
        text.rsplit('#')
            .next()
            .and_then(|t| t.parse::<Ticket>().ok())
            .map(|t| t.id())
    })
}

/// Reads a `File`, `Blob` or `Uint8Array` and builds its manifest on the way, reporting
/// `{ hashedBytes, size }` to `on_progress`.
async fn read_and_hash(
    data: &JsValue,
    on_progress: Option<&Function>,
) -> Result<(pollen_core::Manifest, Vec<u8>), JsValue> {
    let err = |e: &dyn core::fmt::Display| JsValue::from_str(&e.to_string());
    let report = |done: usize, size: usize| {
        if let Some(f) = on_progress {
            let p = obj(&[
                ("hashedBytes", JsValue::from_f64(done as f64)),
                ("size", JsValue::from_f64(size as f64)),
            ]);
            let _ = f.call1(&JsValue::NULL, &p);
        }
    };
    let too_large = |size: f64| {
        JsValue::from_str(&format!(
            "{size} bytes is more than a browser peer holds ({MAX_BROWSER_ARTIFACT} bytes)"
        ))
    };
    if let Some(blob) = data.dyn_ref::<web_sys::Blob>() {
        let size = blob.size();
        if size > MAX_BROWSER_ARTIFACT as f64 {
            return Err(too_large(size));
        }
        let size = size as usize;
        let mut builder = ManifestBuilder::new(size as u64).map_err(|e| err(&e))?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(size)
            .map_err(|_| JsValue::from_str("not enough memory for the file"))?;
        report(0, size);
        let mut at = 0.0;
        while (at as usize) < size {
            let end = (at + READ_CHUNK).min(size as f64);
            let part = blob.slice_with_f64_and_f64(at, end)?;
            let buf = JsFuture::from(part.array_buffer()).await?;
            let chunk = Uint8Array::new(&buf).to_vec();
            if chunk.is_empty() {
                return Err(JsValue::from_str("the file changed or could not be read"));
            }
            builder.update(&chunk).map_err(|e| err(&e))?;
            bytes.extend_from_slice(&chunk);
            at += chunk.len() as f64;
            report(bytes.len(), size);
        }
        if bytes.len() != size {
            return Err(JsValue::from_str("the file changed while it was read"));
        }
        Ok((builder.finish().map_err(|e| err(&e))?, bytes))
    } else if let Some(arr) = data.dyn_ref::<Uint8Array>() {
        if f64::from(arr.length()) > MAX_BROWSER_ARTIFACT as f64 {
            return Err(too_large(f64::from(arr.length())));
        }
        let bytes = arr.to_vec();
        let manifest = pollen_core::Manifest::of(&bytes).map_err(|e| err(&e))?;
        report(bytes.len(), bytes.len());
        Ok((manifest, bytes))
    } else {
        Err(JsValue::from_str(
            "share takes a File, a Blob or a Uint8Array",
        ))
    }
}

impl Peer {
    /// [`Peer::connect`] for Rust callers (the dashboard).
    pub async fn open(url: String, ice_servers: JsValue) -> Result<Peer, JsValue> {
        let mut id = [0u8; 32];
        let crypto = web_sys::window()
            .ok_or_else(|| JsValue::from_str("no window"))?
            .crypto()?;
        crypto.get_random_values_with_u8_array(&mut id)?;
        let me = PeerId::from_bytes(id);
        let seed = u64::from_le_bytes(id[..8].try_into().unwrap_or_default());
        let ws = WebSocket::new(&url)
            .map_err(|_| JsValue::from_str(&format!("cannot open a WebSocket to {url}")))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        wait_open(&ws, &url).await?;
        let state: State = Rc::new(RefCell::new(Shared {
            driver: Driver::new(me, seed),
            ws: ws.clone(),
            url: url.clone(),
            ice_servers,
            conns: HashMap::new(),
            links: HashMap::new(),
            joined: BTreeSet::new(),
            members: HashMap::new(),
            waiters: HashMap::new(),
            on_event: None,
            last_ping: now(),
            reconnect_at: None,
            backoff: RECONNECT_MIN,
            closed: false,
            socket_callbacks: Vec::new(),
            _callbacks: Vec::new(),
            graveyard: Vec::new(),
            events: Vec::new(),
            timer: 0,
            conns_made: 0,
        }));
        install_callbacks(&state)?;
        state.borrow().signal(&ToServer::Hello {
            peer: me,
            kind: PeerKind::Browser,
        });
        Ok(Peer { state })
    }
}

/// Resolves when the socket opens; rejects if it fails first.
async fn wait_open(ws: &WebSocket, url: &str) -> Result<(), JsValue> {
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
fn install_callbacks(state: &State) -> Result<(), JsValue> {
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

/// Runs the driver's outputs after a callback changed something.
pub(crate) fn after(state: &State) {
    let notes = state.borrow_mut().flush();
    run_notifications(state, notes);
}

/// The content id (BLAKE3, as `b3sum` prints it) of some bytes.
#[wasm_bindgen(js_name = contentId)]
pub fn content_id(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Measures piece verification against plain BLAKE3 hashing of the same `mib` MiB in this
/// build: `{ bytes, verifyMs, hashMs }`, each the best of three rounds (a benchmark aid).
#[wasm_bindgen(js_name = verifyThroughput)]
pub fn verify_throughput(mib: u32) -> Result<JsValue, JsValue> {
    const ROUNDS: usize = 3;
    let ms = |a: Instant, b: Instant| b.saturating_since(a).as_secs_f64() * 1000.0;
    let len = (mib.clamp(1, 512) as usize) << 20;
    let mut x = 0x9E37_79B9_u32;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let manifest =
        pollen_core::Manifest::of(&data).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let layout = *manifest.layout();
    let verify = || -> Result<f64, JsValue> {
        let t0 = now();
        for piece in 0..layout.piece_count() {
            let Some(r) = layout.piece_range(piece) else {
                continue;
            };
            manifest
                .verify_piece(piece, &data[r.start as usize..r.end as usize])
                .map_err(|e| JsValue::from_str(&e.to_string()))?;
        }
        Ok(ms(t0, now()))
    };
    let hash = || -> Result<f64, JsValue> {
        let t0 = now();
        let hash = blake3::hash(&data);
        let t = ms(t0, now());
        if hash.as_bytes() != manifest.id().as_bytes() {
            return Err(JsValue::from_str("the manifest disagrees with BLAKE3"));
        }
        Ok(t)
    };
    // Alternate the two and keep each one's best round, so that warm-up and tier-up of the
    // wasm code count against neither.
    let (mut verify_ms, mut hash_ms) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..ROUNDS {
        verify_ms = verify_ms.min(verify()?);
        hash_ms = hash_ms.min(hash()?);
    }
    Ok(obj(&[
        ("bytes", JsValue::from_f64(len as f64)),
        ("verifyMs", JsValue::from_f64(verify_ms)),
        ("hashMs", JsValue::from_f64(hash_ms)),
    ]))
}
