//! pollen-web: the Leptos dashboard (issue "The dashboard").
//!
//! Not implemented yet. This crate exists so the workspace has its final shape; it exports
//! nothing, and nothing in Pollen depends on it yet.
