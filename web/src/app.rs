//! The dashboard's views: share, fetch, transfers with their piece maps and peers, and the
//! node this page is served by.

use std::{collections::HashMap, rc::Rc, time::Duration};

use leptos::{ev, prelude::*, task::spawn_local};
use pollen_core::Ticket;
use pollen_wasm::Peer;
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::JsFuture;

use crate::{
    format, js,
    model::{self, Extra, NodeView, Role, Transfer},
};

/// How often the page reads its peer's state (ms).
const POLL_MS: u64 = 500;
/// How often the page reads the node's status (ms).
const NODE_POLL_MS: u64 = 1_000;

/// The page's connection to the swarm.
#[derive(Debug, Clone, PartialEq)]
enum Conn {
    Connecting,
    Connected {
        peer: String,
        signal: String,
    },
    /// Signaling is gone for now; links already open keep working, and the page reconnects.
    Reconnecting {
        peer: String,
        signal: String,
    },
    Failed(String),
}

/// A share being hashed.
#[derive(Debug, Clone, PartialEq)]
struct Hashing {
    name: String,
    done: u64,
    size: u64,
}

/// Everything the views share; every field is a `Copy` handle.
#[derive(Clone, Copy)]
struct Ctx {
    peer: StoredValue<Option<Rc<Peer>>, LocalStorage>,
    conn: RwSignal<Conn>,
    extras: StoredValue<HashMap<String, Extra>, LocalStorage>,
    transfers: RwSignal<Vec<Transfer>>,
    hashing: RwSignal<Option<Hashing>>,
    share_error: RwSignal<Option<String>>,
    fetch_error: RwSignal<Option<String>>,
    node: RwSignal<Option<NodeView>>,
    node_error: RwSignal<Option<String>>,
    /// A ticket to fetch once connected (from the address bar).
    pending: StoredValue<Option<String>, LocalStorage>,
}

/// The whole dashboard.
#[allow(unreachable_pub)] // what #[component] generates
#[component]
pub(crate) fn App() -> impl IntoView {
    let ctx = Ctx {
        peer: StoredValue::new_local(None),
        conn: RwSignal::new(Conn::Connecting),
        extras: StoredValue::new_local(HashMap::new()),
        transfers: RwSignal::new(Vec::new()),
        hashing: RwSignal::new(None),
        share_error: RwSignal::new(None),
        fetch_error: RwSignal::new(None),
        node: RwSignal::new(None),
        node_error: RwSignal::new(None),
        pending: StoredValue::new_local(None),
    };
    provide_context(ctx);
    if let Some(ticket) = hash_ticket() {
        ctx.pending.set_value(Some(ticket));
    }
    spawn_local(connect(ctx));
    spawn_local(poll_node(ctx));
    let _ = set_interval_with_handle(move || refresh(ctx), Duration::from_millis(POLL_MS));
    let listener = window_event_listener(ev::hashchange, move |_| {
        if let Some(ticket) = hash_ticket() {
            start_fetch(ctx, ticket);
        }
    });
    // A file dropped anywhere on the page is shared (the browser would otherwise open it in
    // place of the page, and every artifact held in the page would be lost).
    let drag = window_event_listener(ev::dragover, |e: web_sys::DragEvent| e.prevent_default());
    let drop = window_event_listener(ev::drop, move |e: web_sys::DragEvent| {
        e.prevent_default();
        if let Some(file) = e
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            share_file(ctx, file);
        }
    });
    on_cleanup(move || {
        listener.remove();
        drag.remove();
        drop.remove();
    });
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-ready", "1");
    }

    view! {
        <Header/>
        <main>
            <div class="columns">
                <ShareCard/>
                <FetchCard/>
            </div>
            <Transfers/>
            <NodeCard/>
        </main>
        <footer>"Pollen · every piece verified with BLAKE3 before it is kept or served"</footer>
    }
}

fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

/// The ticket in the address bar's fragment, if any.
fn hash_ticket() -> Option<String> {
    let hash = window().location().hash().ok()?;
    let t = hash.trim_start_matches('#').trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Connects the page's peer to the node's signaling server.
async fn connect(ctx: Ctx) {
    let url = match js::get_json("/api/status").await {
        Ok(v) => v["signal_url"].as_str().map(str::to_string),
        Err(_) => None,
    }
    .unwrap_or_else(|| {
        let location = window().location();
        let host = location.host().unwrap_or_default();
        let scheme = if location.protocol().as_deref() == Ok("https:") {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{host}/signal")
    });
    match Peer::open(url.clone(), JsValue::NULL).await {
        Ok(peer) => {
            let id = peer.peer_id();
            let on_event = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| on_event(ctx, &e));
            peer.on_event(Some(on_event.into_js_value().unchecked_into()));
            ctx.peer.set_value(Some(Rc::new(peer)));
            ctx.conn.set(Conn::Connected {
                peer: id,
                signal: url,
            });
            if let Some(ticket) = ctx.pending.try_update_value(Option::take).flatten() {
                start_fetch(ctx, ticket);
            }
        }
        Err(err) => ctx.conn.set(Conn::Failed(format!(
            "{}. Without it this page finds no peers; reload to try again.",
            js::error_text(&err)
        ))),
    }
}

/// Notes banned peers on their artifact.
fn on_event(ctx: Ctx, e: &JsValue) {
    match js::text(e, "type").as_deref() {
        Some("banned") => {
            let id = js::text(e, "id").unwrap_or_default();
            let peer = js::text(e, "peer").unwrap_or_default();
            ctx.extras.update_value(|x| {
                x.entry(id).or_default().notices.push(format!(
                    "Peer {} sent data that failed BLAKE3 verification; it was banned and \
                     its pieces are fetched from others.",
                    format::short(&peer)
                ));
            });
        }
        Some("signaling-closed") => ctx.conn.update(|c| {
            if let Conn::Connected { peer, signal } = c {
                *c = Conn::Reconnecting {
                    peer: core::mem::take(peer),
                    signal: core::mem::take(signal),
                };
            }
        }),
        Some("signaling-open") => ctx.conn.update(|c| {
            if let Conn::Reconnecting { peer, signal } = c {
                *c = Conn::Connected {
                    peer: core::mem::take(peer),
                    signal: core::mem::take(signal),
                };
            }
        }),
        _ => {}
    }
}

/// Reads the peer's state into the transfer list.
fn refresh(ctx: Ctx) {
    let Some(peer) = ctx.peer.get_value() else {
        return;
    };
    let list = ctx
        .extras
        .try_update_value(|x| model::transfers(&peer, x, js::now_ms()))
        .unwrap_or_default();
    if ctx.transfers.with_untracked(|t| *t != list) {
        ctx.transfers.set(list);
    }
}

/// Reads the node's status every second.
async fn poll_node(ctx: Ctx) {
    loop {
        match js::get_json("/api/status").await {
            Ok(v) => {
                let view = model::node_view(&v);
                if ctx.node.with_untracked(|n| n.as_ref() != Some(&view)) {
                    ctx.node.set(Some(view));
                }
                if ctx.node_error.with_untracked(Option::is_some) {
                    ctx.node_error.set(None);
                }
            }
            Err(err) => {
                let msg = format!(
                    "The node's API does not answer ({err}); the page's own transfers go on."
                );
                if ctx
                    .node_error
                    .with_untracked(|e| e.as_deref() != Some(msg.as_str()))
                {
                    ctx.node_error.set(Some(msg));
                }
            }
        }
        sleep(NODE_POLL_MS).await;
    }
}

async fn sleep(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                i32::try_from(ms).unwrap_or(i32::MAX),
            );
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Shares a file from the page: hashes it with progress, seeds it, shows its link.
fn share_file(ctx: Ctx, file: web_sys::File) {
    let Some(peer) = ctx.peer.get_value() else {
        ctx.share_error.set(Some(
            "Not connected yet: wait for the swarm connection.".into(),
        ));
        return;
    };
    if let Some(h) = ctx.hashing.get_untracked() {
        ctx.share_error.set(Some(format!(
            "Still hashing {}: share the next file once it is done.",
            h.name
        )));
        return;
    }
    let name = file.name();
    ctx.share_error.set(None);
    ctx.hashing.set(Some(Hashing {
        name: name.clone(),
        done: 0,
        size: file.size() as u64,
    }));
    spawn_local(async move {
        let hashing = ctx.hashing;
        let on_progress = Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
            hashing.update(|h| {
                if let Some(h) = h {
                    h.done = js::num(&p, "hashedBytes") as u64;
                }
            });
        });
        let callback: js_sys::Function = on_progress
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone();
        let result = JsFuture::from(peer.share(file.into(), Some(name), Some(callback))).await;
        drop(on_progress);
        ctx.hashing.set(None);
        match result {
            Ok(ticket) => {
                let ticket = ticket.as_string().unwrap_or_default();
                if let Ok(t) = ticket.parse::<Ticket>() {
                    let id = t.id().to_string();
                    ctx.extras.update_value(|x| {
                        x.entry(id).or_default().role = Some(Role::Sharing);
                    });
                }
                refresh(ctx);
            }
            Err(err) => ctx.share_error.set(Some(format!(
                "Cannot share this file: {}",
                js::error_text(&err)
            ))),
        }
    });
}

/// Starts fetching a ticket (or a ticket link) typed or opened.
fn start_fetch(ctx: Ctx, text: String) {
    let text = text.trim().to_string();
    if text.is_empty() {
        ctx.fetch_error
            .set(Some("Paste a ticket or a ticket link first.".into()));
        return;
    }
    let bare = text.rsplit('#').next().unwrap_or_default().to_string();
    let ticket = match bare.parse::<Ticket>() {
        Ok(t) => t,
        Err(err) => {
            ctx.fetch_error
                .set(Some(format!("This is not a valid Pollen ticket: {err}.")));
            return;
        }
    };
    let Some(peer) = ctx.peer.get_value() else {
        ctx.fetch_error.set(Some(match ctx.conn.get_untracked() {
            Conn::Failed(_) => "This page is not connected to the swarm, so it cannot fetch: \
                                reload it to try again."
                .into(),
            _ => "The fetch starts as soon as this page joins the swarm.".into(),
        }));
        ctx.pending.set_value(Some(bare));
        return;
    };
    ctx.fetch_error.set(None);
    let id = ticket.id().to_string();
    let name = ticket.name().unwrap_or("artifact").to_string();
    let busy = ctx.extras.with_value(|x| {
        x.get(&id)
            .is_some_and(|e| e.in_flight || e.save_url.is_some())
    });
    if busy {
        // Already fetching or fetched: the card is on the page.
        return;
    }
    ctx.extras.update_value(|x| {
        let e = x.entry(id.clone()).or_default();
        e.role.get_or_insert(Role::Fetching);
        e.started_ms = js::now_ms();
        e.error = None;
        e.in_flight = true;
    });
    let promise = peer.fetch(bare, None);
    refresh(ctx);
    spawn_local(async move {
        let result = JsFuture::from(promise).await;
        let mut refused = None;
        ctx.extras.update_value(|x| {
            let e = x.entry(id).or_default();
            e.in_flight = false;
            match result {
                Ok(bytes) => match js::blob_url(&bytes) {
                    Ok(url) => {
                        if let Some(old) = e.save_url.replace(url) {
                            let _ = web_sys::Url::revoke_object_url(&old);
                        }
                    }
                    Err(err) => {
                        e.error = Some(format!("Cannot save {name}: {}", js::error_text(&err)));
                    }
                },
                Err(err) => {
                    let msg = js::error_text(&err);
                    refused = Some(format!("Cannot fetch {name}: {msg}"));
                    e.error = Some(msg);
                }
            }
        });
        refresh(ctx);
        // A fetch refused before it started has no card to show its error on.
        if let Some(msg) = refused {
            ctx.fetch_error.set(Some(msg));
        }
    });
}

#[component]
fn Header() -> impl IntoView {
    let ctx = ctx();
    let status = move || match ctx.conn.get() {
        Conn::Connecting => view! { <span class="pill wait">"connecting…"</span> }.into_any(),
        Conn::Connected { peer, signal } => view! {
            <span class="pill ok" title=signal>"in the swarm"</span>
            <span class="muted">" peer "</span>
            <code id="peer-id">{peer}</code>
        }
        .into_any(),
        Conn::Reconnecting { peer, signal } => view! {
            <span class="pill wait" title=signal>"reconnecting…"</span>
            <span class="muted">" open links keep working · peer "</span>
            <code id="peer-id">{peer}</code>
        }
        .into_any(),
        Conn::Failed(msg) => {
            view! { <span class="pill bad">"offline"</span> <span class="error">{msg}</span> }
                .into_any()
        }
    };
    view! {
        <header>
            <h1><span class="logo">"✿"</span>" Pollen"</h1>
            <div class="status">{status}</div>
        </header>
    }
}

#[component]
fn ShareCard() -> impl IntoView {
    let ctx = ctx();
    let over = RwSignal::new(false);
    let take = move |files: Option<web_sys::FileList>| {
        if let Some(file) = files.and_then(|f| f.get(0)) {
            share_file(ctx, file);
        }
    };
    view! {
        <section class="card">
            <h2>"Share a file"</h2>
            <label
                class="drop"
                class:over=move || over.get()
                on:dragenter=move |e: web_sys::DragEvent| { e.prevent_default(); over.set(true); }
                on:dragover=move |e: web_sys::DragEvent| { e.prevent_default(); over.set(true); }
                on:dragleave=move |_| over.set(false)
                on:drop=move |_| over.set(false)
            >
                <input
                    type="file"
                    id="share-file"
                    on:change=move |e| {
                        let input = event_target::<web_sys::HtmlInputElement>(&e);
                        take(input.files());
                        input.set_value("");
                    }
                />
                <span>"Drop a file here, or click to pick one"</span>
                <small class="muted">"It is hashed here, then seeded from this page while it stays open."</small>
            </label>
            {move || ctx.hashing.get().map(|h| view! {
                <div class="hashing">
                    <div>"Hashing " <b>{h.name.clone()}</b> " · " {format::percent(h.done, h.size)}</div>
                    <progress max=h.size.max(1).to_string() value=h.done.to_string()></progress>
                </div>
            })}
            {move || ctx.share_error.get().map(|e| view! { <p class="error">{e}</p> })}
        </section>
    }
}

#[component]
fn FetchCard() -> impl IntoView {
    let ctx = ctx();
    let input = RwSignal::new(String::new());
    let go = move || start_fetch(ctx, input.get_untracked());
    view! {
        <section class="card">
            <h2>"Fetch by ticket"</h2>
            <form class="fetch" on:submit=move |e: web_sys::SubmitEvent| { e.prevent_default(); go(); }>
                <input
                    id="fetch-ticket"
                    placeholder="pollen… ticket or link"
                    autocomplete="off"
                    spellcheck="false"
                    bind:value=input
                />
                <button type="submit">"Fetch"</button>
            </form>
            <small class="muted">"Opening a ticket link starts the download here."</small>
            {move || ctx.fetch_error.get().map(|e| view! { <p class="error" id="fetch-error">{e}</p> })}
        </section>
    }
}

#[component]
fn Transfers() -> impl IntoView {
    let ctx = ctx();
    view! {
        <section class="transfers">
            <Show when=move || ctx.transfers.with(|t| !t.is_empty())>
                <h2>"Transfers"</h2>
            </Show>
            <For
                each=move || ctx.transfers.get()
                key=|t| t.id.clone()
                children=move |t: Transfer| view! { <TransferCard id=t.id/> }
            />
        </section>
    }
}

/// One transfer. Its parts re-render only when what they show changes, so a link being
/// selected or a button being clicked survives the page's updates.
#[component]
fn TransferCard(id: String) -> impl IntoView {
    let ctx = ctx();
    let key = id.clone();
    let t = Memo::new(move |_| {
        ctx.transfers
            .with(|all| all.iter().find(|x| x.id == key).cloned())
    });
    let part = move |f: fn(&Transfer) -> String| {
        Memo::new(move |_| t.with(|t| t.as_ref().map(f).unwrap_or_default()))
    };
    let name = part(|t| t.name.clone());
    let state = part(|t| {
        if t.error.is_some() {
            "failed"
        } else if !t.complete {
            "downloading"
        } else if t.role == Role::Sharing {
            "seeding"
        } else {
            "complete"
        }
        .into()
    });
    let summary = part(|t| {
        let role = match t.role {
            Role::Sharing => "sharing",
            Role::Fetching => "fetching",
        };
        format!(
            "{role} · {} · {}",
            format::bytes(t.size),
            format::count(t.pieces, "piece")
        )
    });
    let complete = part(|t| t.complete.to_string());
    let size = part(|t| t.size.max(1).to_string());
    let have = part(|t| t.have_bytes.to_string());
    let held = part(|t| {
        format!(
            "{} of {} ({})",
            format::bytes(t.have_bytes),
            format::bytes(t.size),
            format::percent(t.have_bytes, t.size)
        )
    });
    let down = part(|t| format!("↓ {}", t.down_rate));
    let up = part(|t| format!("↑ {} ({} sent)", t.up_rate, format::bytes(t.uploaded)));
    let eta = part(|t| format!("ETA {}", t.eta));
    let peers = part(|t| format::count(t.peers, "peer"));
    let svg = part(|t| t.map_svg.clone());
    let link = part(|t| t.link.clone());
    let save = Memo::new(move |_| t.with(|t| t.as_ref().and_then(|t| t.save_url.clone())));
    let sharing =
        Memo::new(move |_| t.with(|t| t.as_ref().is_some_and(|t| t.role == Role::Sharing)));
    let legend = Memo::new(move |_| {
        t.with(|t| {
            t.as_ref().map_or_else(Vec::new, |t| {
                t.peer_rows
                    .iter()
                    .filter_map(|r| r.color.map(|c| (c, r.peer.clone())))
                    .collect::<Vec<_>>()
            })
        })
    });
    let notes = Memo::new(move |_| {
        t.with(|t| {
            t.as_ref().map_or_else(Vec::new, |t| {
                let mut out = Vec::new();
                if t.lonely {
                    out.push((
                        "warn",
                        "No peers yet: nobody reachable through this node's signaling holds \
                         this artifact right now. This page keeps looking."
                            .to_string(),
                    ));
                }
                if let Some(e) = &t.error {
                    out.push(("error", e.clone()));
                }
                out.extend(t.notices.iter().map(|n| ("warn", n.clone())));
                out
            })
        })
    });
    let rows =
        Memo::new(move |_| t.with(|t| t.as_ref().map(|t| t.peer_rows.clone()).unwrap_or_default()));

    let copied = RwSignal::new(None::<bool>);
    let link_input = NodeRef::<leptos::html::Input>::new();
    let copy = move |_| {
        let text = link.get_untracked();
        spawn_local(async move {
            let ok = js::copy(&text).await.is_ok();
            if !ok && let Some(input) = link_input.get_untracked() {
                // No clipboard (plain http on a LAN address): select it for Ctrl+C.
                let _ = input.focus();
                input.select();
            }
            copied.set(Some(ok));
            set_timeout(move || copied.set(None), Duration::from_secs(3));
        });
    };
    let copy_label = move || match copied.get() {
        None => "Copy link",
        Some(true) => "Copied",
        Some(false) => "Press Ctrl+C",
    };

    view! {
        <article class="card transfer" data-id=id data-complete=move || complete.get()>
            <div class="title">
                <h3>{move || name.get()}</h3>
                <span class=move || format!("pill {}", state.get())>{move || state.get()}</span>
                <span class="muted">{move || summary.get()}</span>
            </div>
            <progress max=move || size.get() value=move || have.get()></progress>
            <div class="stats">
                <span>{move || held.get()}</span>
                <span>{move || down.get()}</span>
                <span>{move || up.get()}</span>
                <span>{move || eta.get()}</span>
                <span class="peers-count">{move || peers.get()}</span>
            </div>
            <div class="map" inner_html=move || svg.get()></div>
            <div class="legend">
                <span><span class="swatch" style:background=format::MISSING_COLOR></span>" not yet"</span>
                <Show when=move || sharing.get()>
                    <span><span class="swatch" style:background=format::LOCAL_COLOR></span>" shared from this page"</span>
                </Show>
                {move || legend.get().into_iter().map(|(c, p)| view! {
                    <span><span class="swatch" style:background=c></span>" from " <code>{format::short(&p).to_string()}</code></span>
                }).collect_view()}
            </div>
            {move || notes.get().into_iter().map(|(class, text)| view! { <p class=class>{text}</p> }).collect_view()}
            <div class="actions">
                <input class="link" readonly node_ref=link_input prop:value=move || link.get() on:focus=move |e| {
                    event_target::<web_sys::HtmlInputElement>(&e).select();
                }/>
                <a class="ticket-link button" href=move || link.get() target="_blank">"Open link"</a>
                <button on:click=copy>{copy_label}</button>
                {move || save.get().map(|u| view! {
                    <a class="save button primary" href=u download=move || name.get()>"Save file"</a>
                })}
            </div>
            {move || view! { <PeerTable rows=rows.get()/> }}
        </article>
    }
}

#[component]
fn PeerTable(rows: Vec<model::PeerRow>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="muted">"No peers known yet."</p> }.into_any();
    }
    view! {
        <table class="peers">
            <thead><tr><th></th><th>"peer"</th><th>"kind"</th><th>"state"</th><th>"pieces"</th><th>"received"</th><th>"sent"</th><th>"↓"</th><th>"↑"</th></tr></thead>
            <tbody>
                {rows.into_iter().map(|r| view! {
                    <tr data-peer=r.peer.clone()>
                        <td><span class="swatch" style:background=r.color.unwrap_or("transparent")></span></td>
                        <td><code title=r.peer.clone()>{format::short(&r.peer).to_string()}</code></td>
                        <td class="kind">{r.kind.clone()}</td>
                        <td>{if r.connected { "connected" } else { "known" }}</td>
                        <td>{r.pieces}</td>
                        <td>{format::bytes(r.downloaded)}</td>
                        <td>{format::bytes(r.uploaded)}</td>
                        <td>{r.down_rate.clone()}</td>
                        <td>{r.up_rate.clone()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn NodeCard() -> impl IntoView {
    let ctx = ctx();
    move || {
        if let Some(err) = ctx.node_error.get() {
            return view! { <section class="card node"><h2>"Node"</h2><p class="error">{err}</p></section> }.into_any();
        }
        let Some(node) = ctx.node.get() else {
            return view! { <section class="card node"><h2>"Node"</h2><p class="muted">"Reading the node's status…"</p></section> }.into_any();
        };
        view! {
            <section class="card node" id="node">
                <h2>"Node " <code>{node.peer.clone()}</code></h2>
                <p class="muted">"peers on " {node.listen.clone()} {(!node.zone.is_empty()).then(|| format!(" · zone {}", node.zone))}</p>
                <h3>"Artifacts"</h3>
                {if node.artifacts.is_empty() {
                    view! { <p class="muted">"The node holds nothing yet: pollen share FILE adds one."</p> }.into_any()
                } else {
                    view! {
                        <table class="artifacts">
                            <thead><tr><th>"name"</th><th>"size"</th><th>"held"</th><th>"↓"</th><th>"↑"</th><th>"peers"</th><th></th></tr></thead>
                            <tbody>
                                {node.artifacts.iter().map(|a| view! {
                                    <tr data-id=a.id.clone()>
                                        <td>{a.name.clone()} {a.error.clone().map(|e| view! { <span class="error">" " {e}</span> })}</td>
                                        <td>{format::bytes(a.size)}</td>
                                        <td>{if a.complete { "complete".to_string() } else { format::percent(a.have_bytes, a.size) }}</td>
                                        <td>{a.down_rate.clone()}</td>
                                        <td>{a.up_rate.clone()}</td>
                                        <td>{a.peers}</td>
                                        <td>{
                                            let link = a.link.clone();
                                            view! {
                                                <a class="node-link" href=a.link.clone() on:click=move |_| start_fetch(ctx, link.clone())>"fetch here"</a>
                                            }
                                        }</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
                <h3>"Cluster members (gossip)"</h3>
                {if node.members.is_empty() {
                    view! { <p class="muted">"No other members: the node runs alone (pollen node --join ADDR joins a cluster)."</p> }.into_any()
                } else {
                    view! {
                        <table class="members">
                            <thead><tr><th>"peer"</th><th>"kind"</th><th>"state"</th><th>"zone"</th><th>"address"</th><th>"artifacts"</th></tr></thead>
                            <tbody>
                                {node.members.iter().map(|m| view! {
                                    <tr data-peer=m.peer.clone()>
                                        <td><code>{m.peer.clone()}</code></td>
                                        <td>"native"</td>
                                        <td class=format!("state {}", m.status)>{m.status.clone()}</td>
                                        <td>{if m.zone.is_empty() { "—".to_string() } else { m.zone.clone() }}</td>
                                        <td>{m.addr.clone()}</td>
                                        <td>{m.holds}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            </section>
        }
        .into_any()
    }
}
