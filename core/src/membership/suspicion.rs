//! Lifeguard-style suspicion: a timeout that shortens as independent members confirm it.

use alloc::vec::Vec;
use core::time::Duration;

use super::MembershipConfig;
use crate::{Instant, PeerId};

/// Most accusers remembered per suspicion.
const MAX_ACCUSERS: usize = 16;

/// A suspicion of one member at one version.
pub(crate) struct Suspicion {
    pub(crate) version: u64,
    started: Instant,
    /// Members in the cluster when it started (the timeout grows with log10 of it).
    cluster: usize,
    /// Distinct members who suspected it, first one first.
    pub(crate) accusers: Vec<PeerId>,
    /// Ran out without enough accusers: waits for one more instead of a deadline.
    pub(crate) waiting: bool,
}

impl Suspicion {
    pub(crate) fn new(started: Instant, version: u64, cluster: usize) -> Self {
        Self {
            version,
            started,
            cluster,
            accusers: Vec::new(),
            waiting: false,
        }
    }

    /// Adds an accuser; returns whether it was new.
    pub(crate) fn confirm(&mut self, by: PeerId, _cfg: &MembershipConfig) -> bool {
        if self.accusers.contains(&by) || self.accusers.len() >= MAX_ACCUSERS {
            return false;
        }
        self.accusers.push(by);
        self.waiting = false;
        true
    }

    /// When the suspicion runs out: from `max` with no confirmation down to `min` with
    /// `suspicion_confirmations` of them, linearly.
    pub(crate) fn deadline(&self, cfg: &MembershipConfig) -> Instant {
        let (min, max) = bounds(cfg, self.cluster);
        let k = u64::from(cfg.suspicion_confirmations.max(1));
        let c = (self.accusers.len().saturating_sub(1) as u64).min(k);
        let span = max.saturating_sub(min);
        let cut = span.as_micros() as u64 * c / k;
        self.started + max.saturating_sub(Duration::from_micros(cut))
    }
}

/// Shortest and longest suspicion in a cluster of `n`.
pub(crate) fn bounds(cfg: &MembershipConfig, n: usize) -> (Duration, Duration) {
    let mut log10 = 0u32;
    let mut m = n;
    while m >= 10 {
        m /= 10;
        log10 += 1;
    }
    // ceil(log10 n), at least 1
    if 10usize.pow(log10) < n {
        log10 += 1;
    }
    let min = cfg.probe_interval * cfg.suspicion_mult * log10.max(1);
    (min, min * cfg.suspicion_max_mult.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_scales_with_log_n_and_shrinks_with_confirmations() {
        let cfg = MembershipConfig::default();
        assert_eq!(bounds(&cfg, 5).0, Duration::from_secs(4));
        assert_eq!(bounds(&cfg, 1000).0, Duration::from_secs(12));
        assert_eq!(bounds(&cfg, 1001).0, Duration::from_secs(16));
        let mut s = Suspicion::new(Instant::ZERO, 1, 5);
        s.confirm(PeerId::from_bytes([1; 32]), &cfg);
        let first = s.deadline(&cfg);
        assert_eq!(first, Instant::ZERO + Duration::from_secs(24));
        assert!(!s.confirm(PeerId::from_bytes([1; 32]), &cfg));
        for n in 2..=4 {
            assert!(s.confirm(PeerId::from_bytes([n; 32]), &cfg));
        }
        assert_eq!(s.deadline(&cfg), Instant::ZERO + Duration::from_secs(4));
    }
}
