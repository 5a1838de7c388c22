//! Bounded disk: `--max-storage` evicts the least recently used complete artifacts once the
//! node holds more, `--evict-after` drops those unused for that long, and pinned artifacts,
//! fetches and artifacts being served (sending to peers in the last seconds) are never
//! evicted. Pins persist in the data directory.

use std::{collections::BTreeSet, path::Path};

use super::*;

/// The share of `--max-storage` eviction brings the node down to, so it does not evict on
/// every new fetch.
const LOW_WATER: f64 = 0.9;

/// The file listing pinned artifacts (one content id a line).
fn pins_file(data: &Path) -> std::path::PathBuf {
    data.join("pins")
}

/// The pinned artifacts saved in `data` (an unreadable file pins nothing, with a warning).
pub(crate) fn load_pins(data: &Path) -> BTreeSet<ContentId> {
    let Ok(text) = std::fs::read_to_string(pins_file(data)) else {
        return BTreeSet::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match l.trim().parse() {
            Ok(id) => Some(id),
            Err(_) => {
                tracing::warn!("ignoring an unreadable line of the pins file: {l}");
                None
            }
        })
        .collect()
}

/// Saves the pins durably (a temporary file, synced, renamed).
pub(super) fn save_pins(data: &Path, pins: &BTreeSet<ContentId>) -> std::io::Result<()> {
    use std::io::Write;
    let path = pins_file(data);
    let tmp = data.join(".pins.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for id in pins {
        writeln!(f, "{id}")?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data)?.sync_all()
}

impl Actor {
    /// Bytes the node's artifacts take (a fetch counts whole: its file is sized up front).
    pub(super) fn storage_used(&self) -> u64 {
        self.entries.values().map(|e| e.ticket.size()).sum()
    }

    /// Marks an artifact as just used (fetched, shared, written out, served).
    pub(super) fn touch(&mut self, id: &ContentId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.last_used = TokioInstant::now();
        }
    }

    /// Pins or unpins an artifact, durably.
    pub(super) fn set_pinned(&mut self, id: ContentId, pinned: bool) -> Result<(), ApiError> {
        if !self.entries.contains_key(&id) {
            return Err(ApiError::NotHeld);
        }
        let mut pins = self.pins.clone();
        if pinned {
            pins.insert(id);
        } else {
            pins.remove(&id);
        }
        save_pins(self.store.dir(), &pins).map_err(|e| ApiError::Pins(e.to_string()))?;
        self.pins = pins;
        Ok(())
    }

    /// The complete, unpinned artifacts not being served, least recently used first.
    fn evictable(&self, at: TokioInstant) -> Vec<(ContentId, TokioInstant, u64)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .filter(|(id, e)| self.is_complete(id) && !self.pins.contains(id) && !e.serving_at(at))
            .map(|(id, e)| (*id, e.last_used, e.ticket.size()))
            .collect();
        out.sort_by_key(|&(_, used, _)| used);
        out
    }

    /// Evicts least recently used artifacts until `need` more bytes fit under
    /// `--max-storage` (down to its low water mark when `need` is 0), and those unused for
    /// `--evict-after`. Returns whether `need` bytes fit.
    pub(super) fn enforce_quota(&mut self, need: u64) -> bool {
        let at = TokioInstant::now();
        let mut evict = Vec::new();
        if let Some(ttl) = self.settings.evict_after {
            evict.extend(
                self.evictable(at)
                    .into_iter()
                    .filter(|&(_, used, _)| used.checked_add(ttl).is_some_and(|t| t <= at))
                    .map(|(id, _, _)| id),
            );
        }
        let mut fits = true;
        if let Some(max) = self.settings.max_storage {
            let mut used: u64 = self.storage_used()
                - evict
                    .iter()
                    .filter_map(|id| self.entries.get(id))
                    .map(|e| e.ticket.size())
                    .sum::<u64>();
            let over = used.saturating_add(need) > max;
            let target = if need == 0 {
                (max as f64 * LOW_WATER) as u64
            } else {
                max.saturating_sub(need)
            };
            if over {
                for (id, _, size) in self.evictable(at) {
                    if used <= target {
                        break;
                    }
                    if !evict.contains(&id) {
                        evict.push(id);
                        used -= size;
                    }
                }
            }
            fits = used.saturating_add(need) <= max;
        }
        for id in evict {
            tracing::info!(%id, "evicting to keep within the storage limit");
            self.settings.metrics.evictions.inc();
            let (reply, _) = tokio::sync::oneshot::channel();
            self.remove_artifact(id, reply);
        }
        fits
    }
}
