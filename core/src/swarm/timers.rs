//! Timers: expiring handshakes, requests and the manifest fetch, the rechoke, and the
//! request-deadline index that lets `poll_timeout` skip walking the links.

use alloc::vec::Vec;

use super::{DisconnectReason, LinkId, Swarm, link::Link};
use crate::Instant;

impl Swarm {
    /// Time has passed: expire requests, handshakes and the manifest fetch; rotate slots.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let late_handshakes: Vec<LinkId> = self
            .handshakes
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, id)| id)
            .collect();
        for link in late_handshakes {
            self.disconnect(link, DisconnectReason::HandshakeTimeout);
        }
        self.expire_requests(now);
        self.drop_idle_links(now);
        self.expire_manifest_fetch(now);
        if now >= self.next_rechoke {
            self.next_rechoke = now + self.cfg.rechoke_interval;
            self.rechoke(now);
        }
        self.start_manifest_fetch(now);
        self.fill_all(now);
        self.refresh_all_deadlines();
    }

    /// When [`Swarm::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.deadlines.first().map(|&(at, _)| at);
        debug_assert!(
            self.links
                .values()
                .filter_map(|l| self.request_deadline(l))
                .min()
                .is_none_or(|due| requests.is_some_and(|r| r <= due)),
            "a request deadline is missing from `deadlines`"
        );
        debug_assert_eq!(
            self.handshakes.len(),
            self.links.values().filter(|l| !l.ready()).count(),
            "a handshake deadline per link not ready"
        );
        let handshakes = self.handshakes.first().map(|&(at, _)| at);
        let fetch = self.fetch.as_ref().map(|f| f.deadline);
        requests
            .into_iter()
            .chain(handshakes)
            .chain(fetch)
            .chain(self.manifest_retry_at())
            .chain(self.idle_deadline())
            .chain(Some(self.next_rechoke))
            .min()
    }

    /// When a link may next be dropped as idle ([`SwarmConfig::idle_link_timeout`]): the
    /// earliest time, over the links that could give us something, that neither it nor
    /// anyone sent a block for the timeout.
    ///
    /// [`SwarmConfig::idle_link_timeout`]: super::SwarmConfig::idle_link_timeout
    fn idle_check_at(&self) -> Option<Instant> {
        let idle = self.cfg.idle_link_timeout?;
        if self.is_complete() {
            return None;
        }
        self.links
            .iter()
            .filter(|&(&id, l)| self.could_use(id, l))
            .map(|(_, l)| l)
            .map(|l| l.useful_at.max(self.last_useful_at) + idle)
            .min()
    }

    /// [`Swarm::idle_check_at`], kept until something could make it earlier (a link we want
    /// something from, a manifest fetch, links dropped): walking the links on every
    /// `poll_timeout` would cost every input a pass over them. A kept time may be early (a
    /// block moved it later since); the check then finds nothing, and it is computed anew.
    fn idle_deadline(&self) -> Option<Instant> {
        if let Some(at) = self.idle_cache.get() {
            return at;
        }
        let at = self.idle_check_at();
        self.idle_cache.set(Some(at));
        at
    }

    /// Something could have made [`Swarm::idle_deadline`] earlier.
    pub(super) fn idle_changed(&self) {
        self.idle_cache.set(None);
    }

    /// `link` just gave us something (a block, part of the manifest).
    pub(super) fn note_useful(&mut self, now: Instant, link: LinkId) {
        self.last_useful_at = now;
        if let Some(l) = self.links.get_mut(&link) {
            l.useful_at = now;
            l.answered = true;
        }
    }

    /// Whether a link could give us something now and never gave anything: the one we are
    /// fetching the manifest from, or, once we have it, a ready peer holding pieces we want.
    fn could_use(&self, id: LinkId, l: &Link) -> bool {
        if l.answered {
            return false;
        }
        match (&self.manifest, &self.fetch) {
            (None, Some(f)) => f.link == id,
            (None, None) => false,
            (Some(_), _) => l.ready() && l.we_are_interested,
        }
    }

    /// Drops the links [`Swarm::idle_check_at`] finds idle now.
    fn drop_idle_links(&mut self, now: Instant) {
        let Some(idle) = self.cfg.idle_link_timeout else {
            return;
        };
        // Past the kept deadline: look again after this, whatever is dropped.
        if self.idle_cache.get().flatten().is_some_and(|t| t <= now) {
            self.idle_changed();
        }
        if self.is_complete() || now < self.last_useful_at + idle {
            return;
        }
        let idle_links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|&(&id, l)| self.could_use(id, l) && l.useful_at + idle <= now)
            .map(|(&id, _)| id)
            .collect();
        for link in idle_links {
            self.disconnect(link, DisconnectReason::Unproductive);
        }
    }

    /// When `l`'s requests time out or stall, if it has any outstanding.
    fn request_deadline(&self, l: &Link) -> Option<Instant> {
        l.outstanding
            .front()
            .map(|o| o.deadline.min(l.progress_at + self.stall_after(l)))
    }

    /// Brings `link`'s entry in `deadlines` up to date after its requests, progress or rate
    /// changed (a removed link's entry goes with its last request).
    pub(super) fn refresh_deadline(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let due = self.request_deadline(l);
        let old = l.deadline;
        if due == old {
            return;
        }
        if let Some(at) = old {
            self.deadlines.remove(&(at, link));
        }
        if let Some(at) = due {
            self.deadlines.insert((at, link));
        }
        if let Some(l) = self.links.get_mut(&link) {
            l.deadline = due;
        }
    }

    /// Rebuilds `deadlines` from every link.
    fn refresh_all_deadlines(&mut self) {
        let due: Vec<(LinkId, Option<Instant>)> = self
            .links
            .iter()
            .map(|(&id, l)| (id, self.request_deadline(l)))
            .collect();
        self.deadlines.clear();
        for (id, at) in due {
            if let Some(at) = at {
                self.deadlines.insert((at, id));
            }
            if let Some(l) = self.links.get_mut(&id) {
                l.deadline = at;
            }
        }
    }

    /// How long a link with requests outstanding may send no block: `stall_timeout` plus two
    /// blocks' time at its measured rate (a slow link is not a dead one), at most
    /// `request_timeout`, which also applies until its rate is known.
    pub(super) fn stall_after(&self, l: &Link) -> core::time::Duration {
        if l.rate.per_sec == 0 {
            return self.cfg.request_timeout;
        }
        let micros = 2 * u64::from(self.block_size) * 1_000_000 / l.rate.per_sec;
        (self.cfg.stall_timeout + core::time::Duration::from_micros(micros))
            .min(self.cfg.request_timeout)
    }
}
