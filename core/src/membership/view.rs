//! Views: the present members (alive or suspect) random choices draw from, the bounded active
//! view topped up from the passive rest, and forgetting members long dead.

use alloc::vec::Vec;

use rand_core::Rng;

use super::{MemberEvent, Membership};
use crate::{Instant, PeerId};

impl Membership {
    /// Adds `id` to the present members.
    pub(super) fn add_present(&mut self, id: PeerId) {
        if let Some(m) = self.members.get_mut(&id)
            && m.slot.is_none()
        {
            m.slot = Some(self.present.len());
            self.present.push(id);
        }
    }

    /// Removes `id` from the present members (and from the active view).
    pub(super) fn remove_present(&mut self, id: PeerId) {
        let Some(slot) = self.members.get_mut(&id).and_then(|m| m.slot.take()) else {
            return;
        };
        self.present.swap_remove(slot);
        if let Some(moved) = self.present.get(slot).copied()
            && let Some(m) = self.members.get_mut(&moved)
        {
            m.slot = Some(slot);
        }
        if let Some(i) = self.active.iter().position(|p| *p == id) {
            self.active.swap_remove(i);
            self.events.push_back(MemberEvent::Disconnect(id));
        }
    }

    /// Bounded views: tops the active view up from the passive one.
    pub(super) fn refresh_active_view(&mut self) {
        let Some(max) = self.cfg.active_view else {
            return;
        };
        let mut tries = 0;
        while self.active.len() < max && self.active.len() < self.present.len() && tries < 4 * max {
            tries += 1;
            let i = (self.rng.next_u64() % self.present.len() as u64) as usize;
            let p = self.present[i];
            let reachable = self.members.get(&p).is_some_and(|m| !m.addrs.is_empty());
            if reachable && !self.active.contains(&p) {
                self.active.push(p);
                self.events.push_back(MemberEvent::Connect(p));
            }
        }
    }

    /// Forgets members dead or gone for longer than `dead_retention`.
    pub(super) fn reap(&mut self, now: Instant) {
        if self.members.len() == self.present.len() {
            return;
        }
        let keep = self.cfg.dead_retention;
        self.members
            .retain(|_, m| m.status.is_present() || now.saturating_since(m.since) < keep);
    }

    /// Members we may talk to: the active view when bounded, else everyone present.
    pub(super) fn contacts(&self) -> &[PeerId] {
        if self.cfg.active_view.is_some() {
            &self.active
        } else {
            &self.present
        }
    }

    /// Up to `k` distinct random contacts, none in `except`.
    pub(super) fn random_contacts(&mut self, k: usize, except: &[PeerId]) -> Vec<PeerId> {
        let n = self.contacts().len();
        let mut out: Vec<PeerId> = Vec::with_capacity(k);
        if n == 0 || k == 0 {
            return out;
        }
        if n <= k + except.len() {
            let all = self.contacts().iter().filter(|p| !except.contains(p));
            out.extend(all.take(k));
            return out;
        }
        for _ in 0..k * 4 {
            if out.len() == k {
                break;
            }
            let i = (self.rng.next_u64() % n as u64) as usize;
            let p = self.contacts()[i];
            if !except.contains(&p) && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}
