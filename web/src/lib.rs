//! pollen-web: the Leptos dashboard of Pollen, served by `pollen node` at its HTTP address.
//!
//! A client-side rendered page: it runs a browser peer (pollen-wasm) to share dropped files
//! and fetch tickets over WebRTC, shows each transfer's progress, piece map and peers, and
//! reads the node's status from its API. [`format`] holds the pure helpers behind the views
//! (tested natively); the views themselves exist only on wasm32.

pub mod format;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod model;

/// Mounts the dashboard when the module loads.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
