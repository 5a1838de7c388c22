//! The manifest: serving it to peers (or refusing it under `spread_first`), and fetching it
//! from a peer that has it, asking another when one times out or refuses.

use alloc::vec::Vec;

use rand_core::Rng;

use super::{
    Action, DisconnectReason, Event, LinkId, Swarm, encode_to_vec,
    link::{Link, ManifestAnswer},
};
use crate::{
    Instant, Manifest,
    wire::{MAX_MANIFEST_PART, Message},
};

/// The manifest being fetched from one link.
#[derive(Debug)]
pub(super) struct ManifestFetch {
    /// The link asked.
    pub(super) link: LinkId,
    /// The piece hashes received so far, in order.
    hashes: Vec<u8>,
    /// When the fetch is given up unless another part arrives.
    pub(super) deadline: Instant,
}

impl Swarm {
    /// A peer asks for `count` piece hashes of the manifest from `first`.
    pub(super) fn on_manifest_request(&mut self, link: LinkId, first: u32, count: u32) {
        let Some(m) = &self.manifest else {
            // We cannot help; peers only ask those that announced the manifest or hold pieces.
            return;
        };
        let pieces = u64::from(m.layout().piece_count());
        let refuse = self.refuses_manifest(pieces);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if first == 0 {
            if refuse && l.manifest_answer == ManifestAnswer::NotAsked {
                // Peers we sent it to pass it on; one that finds none asks us again.
                l.manifest_answer = ManifestAnswer::Refused;
                self.send(link, &Message::ManifestRefused);
                return;
            }
            l.manifest_answer = ManifestAnswer::Served;
        } else if l.manifest_answer == ManifestAnswer::Refused {
            // The rest of a refused request.
            return;
        }
        l.manifest_served += u64::from(count);
        if l.manifest_served > 2 * pieces + MAX_MANIFEST_PART as u64 {
            // A peer needs the manifest once (twice, if a fetch timed out); more is abuse.
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        let Some(m) = &self.manifest else {
            return;
        };
        let end = first.checked_add(count);
        if end.is_none_or(|end| end > m.layout().piece_count()) {
            self.disconnect(link, DisconnectReason::Protocol);
            return;
        }
        self.spread.count_manifest_sent(count);
        let bytes = &m.piece_cv_bytes()[first as usize * 32..(first + count) as usize * 32];
        let frame = encode_to_vec(&Message::ManifestPart {
            first,
            hashes: bytes,
        });
        self.push_frame(link, &frame);
    }

    /// A part of the manifest we fetch arrived; once whole it is verified.
    pub(super) fn on_manifest_part(
        &mut self,
        now: Instant,
        link: LinkId,
        first: u32,
        hashes: &[u8],
    ) {
        let Some(fetch) = self.fetch.as_mut().filter(|f| f.link == link) else {
            return;
        };
        if u64::from(first) * 32 != fetch.hashes.len() as u64 {
            // A late part of an earlier round, or out of order: ignore it.
            return;
        }
        fetch.hashes.extend_from_slice(hashes);
        fetch.deadline = now + self.cfg.request_timeout;
        let whole = fetch.hashes.len() >= self.layout.piece_count() as usize * 32;
        self.note_useful(now, link);
        if !whole {
            return;
        }
        let Some(fetch) = self.fetch.take() else {
            return;
        };
        match Manifest::from_untrusted_bytes(self.id, self.layout.size(), &fetch.hashes) {
            Ok(m) => {
                self.actions.push_back(Action::StoreManifest(m.clone()));
                self.set_manifest(m);
                self.events.push_back(Event::ManifestVerified);
                let links: Vec<LinkId> = self.links.keys().copied().collect();
                for link in links {
                    self.send(link, &Message::HaveManifest);
                }
                self.fill_all(now);
            }
            Err(_) => self.ban(link, None),
        }
    }

    /// Adopts the verified manifest.
    pub(super) fn set_manifest(&mut self, m: Manifest) {
        self.idle_changed();
        self.manifest = Some(m);
    }

    /// The peer says it has the manifest: fetch it, if we wait for one.
    pub(super) fn on_have_manifest(&mut self, now: Instant, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link)
            && !core::mem::replace(&mut l.has_manifest, true)
        {
            self.start_manifest_fetch(now);
        }
    }

    /// The peer refused our manifest request: ask another that has it.
    pub(super) fn on_manifest_refused(&mut self, now: Instant, link: LinkId) {
        if self.fetch.as_ref().is_none_or(|f| f.link != link) {
            return;
        }
        self.fetch = None;
        if let Some(l) = self.links.get_mut(&link) {
            l.manifest_refused_at = Some(now);
        }
        self.start_manifest_fetch(now);
    }

    /// Whether `l` has the manifest for us: it said so or holds pieces, and a fetch from it
    /// did not time out.
    fn has_manifest_for_us(l: &Link) -> bool {
        l.ready() && (l.has_manifest || l.remote_have.count() > 0) && !l.fetch_failed
    }

    /// Whether we may ask `l` for the manifest now: it has it for us, and it did not refuse
    /// us in the last `stall_timeout`.
    fn manifest_source(&self, now: Instant, l: &Link) -> bool {
        Self::has_manifest_for_us(l)
            && l.manifest_refused_at
                .is_none_or(|at| now >= at + self.cfg.stall_timeout)
    }

    /// When a peer that has the manifest but refused it to us may be asked again, if we wait
    /// for that (it walks the links, only while we wait for a manifest).
    pub(super) fn manifest_retry_at(&self) -> Option<Instant> {
        if self.manifest.is_some() || self.fetch.is_some() {
            return None;
        }
        self.links
            .values()
            .filter(|l| Self::has_manifest_for_us(l))
            .filter_map(|l| l.manifest_refused_at)
            .map(|at| at + self.cfg.stall_timeout)
            .min()
    }

    /// Asks a random peer that has the manifest for all of it.
    pub(super) fn start_manifest_fetch(&mut self, now: Instant) {
        if self.manifest.is_some() || self.fetch.is_some() {
            return;
        }
        let sources: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| self.manifest_source(now, l))
            .map(|(&id, _)| id)
            .collect();
        if sources.is_empty() {
            return;
        }
        let link = sources[(self.rng.next_u64() % sources.len() as u64) as usize];
        let pieces = self.layout.piece_count();
        let mut first = 0;
        while first < pieces {
            let count = (pieces - first).min(MAX_MANIFEST_PART as u32);
            self.send(link, &Message::ManifestRequest { first, count });
            first += count;
        }
        self.idle_changed();
        self.fetch = Some(ManifestFetch {
            link,
            hashes: Vec::with_capacity(pieces as usize * 32),
            deadline: now + self.cfg.request_timeout,
        });
    }

    /// Gives up a manifest fetch past its deadline, so that another peer is asked.
    pub(super) fn expire_manifest_fetch(&mut self, now: Instant) {
        if let Some(fetch) = self.fetch.take_if(|f| f.deadline <= now) {
            // Ask someone else next time.
            if let Some(l) = self.links.get_mut(&fetch.link) {
                l.fetch_failed = true;
            }
        }
    }
}
