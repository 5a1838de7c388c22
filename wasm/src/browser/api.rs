//! The JavaScript API: `Peer` and the free functions a page calls.

use super::signaling::{install_callbacks, wait_open};
use super::*;

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
