//! Scenarios: TOML files that describe a network and an artifact, one run per peer count.
//!
//! ```toml
//! name = "homogeneous"
//! seed = 1                 # the same scenario and seed give the same results, bit for bit
//! artifact_mib = 64
//! peers = [10, 100]        # one run per count
//! degree = 15              # links per peer besides the origins (the dial policy's cap)
//! latency_ms = 5           # one way, within a zone
//!
//! [[origins]]
//! up_mb_s = 100.0          # MB = 10^6 bytes
//! down_mb_s = 100.0
//!
//! [[groups]]               # the peers: each group takes its share of the count
//! share = 1.0
//! up_mb_s = 10.0
//! down_mb_s = 40.0
//! ```
//!
//! Optional: `zone` on origins and groups with `inter_zone_latency_ms`; `loss` (a packet loss
//! rate for every link); `[churn]` with `leave`, `crash` and `join` fractions of the peers,
//! at times drawn uniformly from `window_s`; `time_limit_s`; `send_window_kib` (the swarm's
//! send window, `SwarmConfig::send_window`: 256 by default, 0 for none); `slot_rate_mb_s`
//! (upload rate per slot, `SwarmConfig::slot_rate`: 1 by default, 0 for none); `zone_local`
//! (with zones, link within zones and cross them through one fetcher per
//! `fetchers_per_crossing` (25) of a zone, as the node does: the default; `false` links at
//! random); `spread_first` on an origin (`SwarmConfig::spread_first` once it has 16 links, as
//! a node's seeds: the default; `false` serves every request).

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// A scenario as read from its file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for the reports.
    pub name: String,
    /// Seeds every random choice of the runs.
    #[serde(default = "one")]
    pub seed: u64,
    /// Artifact size in MiB (fractions allowed).
    pub artifact_mib: f64,
    /// The peer counts to run, one run each.
    pub peers: Vec<usize>,
    /// Links each peer's dial policy keeps besides those to the origins (made by it or by
    /// others; `pollen_core::policy::PolicyConfig::max_links` is this plus the origins). The
    /// default, 15, with one origin is a node's 16 (`pollen_core::policy::MAX_LINKS`).
    #[serde(default = "fifteen")]
    pub degree: usize,
    /// One-way latency within a zone, milliseconds.
    #[serde(default = "five_f")]
    pub latency_ms: f64,
    /// One-way latency between zones, milliseconds (default: `latency_ms`).
    #[serde(default)]
    pub inter_zone_latency_ms: Option<f64>,
    /// Packet loss rate of every link, 0 to 1.
    #[serde(default)]
    pub loss: f64,
    /// With zones: peers' dial policy takes zones into account, as a node's does: within
    /// their zone, with elected fetchers crossing to the others (default); `false` treats
    /// every peer as in one zone.
    #[serde(default = "yes")]
    pub zone_local: bool,
    /// With `zone_local`: peers of a zone for each one that fetches from other zones (a
    /// node's `pollen_core::policy::FETCHERS_PER_CROSSING`, 25, by default).
    #[serde(default = "fetchers_per_crossing")]
    pub fetchers_per_crossing: usize,
    /// Each node's send window in KiB (`SwarmConfig::send_window`); 0 hands everything to the
    /// uplink at once.
    #[serde(default = "send_window_kib")]
    pub send_window_kib: u64,
    /// Upload rate each upload slot should get, MB/s (`SwarmConfig::slot_rate`); 0 uses
    /// every slot whatever the rate.
    #[serde(default = "slot_rate_mb_s")]
    pub slot_rate_mb_s: f64,
    /// Simulated seconds after which a run stops, finished or not.
    #[serde(default = "day")]
    pub time_limit_s: f64,
    /// The nodes that start with the artifact.
    pub origins: Vec<Origin>,
    /// The peers, in groups that share out each run's count.
    pub groups: Vec<Group>,
    /// Peers that leave, crash or join during the run.
    #[serde(default)]
    pub churn: Option<Churn>,
}

/// Nodes that hold the whole artifact from the start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// How many such nodes.
    #[serde(default = "one_usize")]
    pub count: usize,
    /// Upload capacity, MB/s.
    pub up_mb_s: f64,
    /// Download capacity, MB/s.
    pub down_mb_s: f64,
    /// Zone label.
    #[serde(default)]
    pub zone: Option<String>,
    /// Refuse to send a piece again while a linked peer holds it, so that peers spread it
    /// (`SwarmConfig::spread_first`), once linked to at least `SPREAD_FIRST_MIN_LINKS`
    /// peers, as a node's seeds do (the default); `false` serves every request.
    #[serde(default = "yes")]
    pub spread_first: bool,
}

/// A group of peers alike.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its part of the peer count; shares are normalised over all groups.
    #[serde(default = "one_f")]
    pub share: f64,
    /// Upload capacity, MB/s.
    pub up_mb_s: f64,
    /// Download capacity, MB/s.
    pub down_mb_s: f64,
    /// Zone label.
    #[serde(default)]
    pub zone: Option<String>,
}

/// Peers that come and go during a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Fraction of the peers that leave gracefully (closing their links).
    #[serde(default)]
    pub leave: f64,
    /// Fraction of the peers that crash (their peers find out by timeouts).
    #[serde(default)]
    pub crash: f64,
    /// Fraction of the peers that join late.
    #[serde(default)]
    pub join: f64,
    /// The simulated seconds within which those times fall, uniformly.
    pub window_s: [f64; 2],
}

fn one() -> u64 {
    1
}
fn one_usize() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn fetchers_per_crossing() -> usize {
    25
}

fn yes() -> bool {
    true
}

fn slot_rate_mb_s() -> f64 {
    crate::net::DEFAULT_SLOT_RATE as f64 / 1e6
}

fn send_window_kib() -> u64 {
    crate::net::DEFAULT_SEND_WINDOW / 1024
}

fn fifteen() -> usize {
    15
}
fn five_f() -> f64 {
    5.0
}
fn day() -> f64 {
    86_400.0
}

/// Why a scenario cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its place in the file.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// The value and its allowed range.
        what: String,
    },
}

/// Most peers in one run: the simulator's memory and time grow with it.
pub const MAX_PEERS: usize = 100_000;
/// Most origins, and most random links per peer.
pub const MAX_ORIGINS_OR_DEGREE: usize = 1_000;
/// Artifact sizes, MiB: from one byte to what a run can cover (the protocol allows more).
pub const ARTIFACT_MIB: (f64, f64) = (1.0 / (1024.0 * 1024.0), 64.0 * 1024.0);
/// Capacities in MB/s: from 1 kB/s to 1 TB/s.
pub const CAPACITY_MB_S: (f64, f64) = (0.001, 1e6);
/// Largest send window, KiB (1 GiB).
pub const MAX_SEND_WINDOW_KIB: u64 = 1 << 20;
/// Longest simulated time, seconds (a year); also bounds latencies and churn windows.
pub const MAX_SECONDS: f64 = 365.0 * 86_400.0;

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text, &name)
    }

    /// Parses and checks a scenario; `name` says where it came from, in errors.
    pub fn parse(text: &str, name: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            path: name.to_string(),
            source,
        })?;
        scenario.check().map_err(|what| ScenarioError::Invalid {
            path: name.to_string(),
            what,
        })?;
        Ok(scenario)
    }

    fn check(&self) -> Result<(), String> {
        let positive = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be a positive number, not {v}"))
            }
        };
        let fraction = |v: f64, what: &str| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} must be between 0 and 1, not {v}"))
            }
        };
        let within = |v: f64, (lo, hi): (f64, f64), what: &str| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} must be from {lo} to {hi}, not {v}"))
            }
        };
        within(self.artifact_mib, ARTIFACT_MIB, "artifact_mib")?;
        if self.peers.is_empty() {
            return Err("peers must list at least one count".into());
        }
        if let Some(&n) = self.peers.iter().find(|&&n| n == 0 || n > MAX_PEERS) {
            return Err(format!("a peer count must be 1 to {MAX_PEERS}, not {n}"));
        }
        if self.fetchers_per_crossing == 0 {
            return Err("fetchers_per_crossing must be at least 1".into());
        }
        if self.degree > MAX_ORIGINS_OR_DEGREE {
            return Err(format!(
                "degree must be at most {MAX_ORIGINS_OR_DEGREE}, not {}",
                self.degree
            ));
        }
        let latencies = (0.0, MAX_SECONDS * 1000.0);
        within(self.latency_ms, latencies, "latency_ms")?;
        if let Some(l) = self.inter_zone_latency_ms {
            within(l, latencies, "inter_zone_latency_ms")?;
        }
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!(
                "loss must be at least 0 and below 1, not {}",
                self.loss
            ));
        }
        if self.send_window_kib > MAX_SEND_WINDOW_KIB {
            return Err(format!(
                "send_window_kib must be at most {MAX_SEND_WINDOW_KIB}, not {}",
                self.send_window_kib
            ));
        }
        if self.slot_rate_mb_s != 0.0 {
            within(self.slot_rate_mb_s, CAPACITY_MB_S, "slot_rate_mb_s")?;
        }
        positive(self.time_limit_s, "time_limit_s")?;
        within(self.time_limit_s, (0.0, MAX_SECONDS), "time_limit_s")?;
        let origins: usize = self.origins.iter().map(|o| o.count).sum();
        if origins == 0 {
            return Err("a scenario needs at least one origin".into());
        }
        if origins > MAX_ORIGINS_OR_DEGREE {
            return Err(format!(
                "at most {MAX_ORIGINS_OR_DEGREE} origins, not {origins}"
            ));
        }
        for o in &self.origins {
            within(o.up_mb_s, CAPACITY_MB_S, "an origin's up_mb_s")?;
            within(o.down_mb_s, CAPACITY_MB_S, "an origin's down_mb_s")?;
        }
        if self.groups.is_empty() {
            return Err("a scenario needs at least one group of peers".into());
        }
        for g in &self.groups {
            within(g.share, (1e-9, 1e9), "a group's share")?;
            within(g.up_mb_s, CAPACITY_MB_S, "a group's up_mb_s")?;
            within(g.down_mb_s, CAPACITY_MB_S, "a group's down_mb_s")?;
        }
        if let Some(c) = &self.churn {
            fraction(c.leave, "churn.leave")?;
            fraction(c.crash, "churn.crash")?;
            fraction(c.join, "churn.join")?;
            if c.leave + c.crash + c.join > 1.0 {
                return Err("churn.leave, churn.crash and churn.join add up to more than 1".into());
            }
            let [a, b] = c.window_s;
            if !(0.0 <= a && a <= b && b <= MAX_SECONDS) {
                return Err(format!(
                    "churn.window_s must be [start, end] seconds up to {MAX_SECONDS}, not [{a}, {b}]"
                ));
            }
        }
        let zones = self.zones();
        if zones.len() > usize::from(u16::MAX) {
            return Err("too many zones".into());
        }
        Ok(())
    }

    /// Artifact size in bytes.
    pub fn artifact_bytes(&self) -> u64 {
        (self.artifact_mib * 1024.0 * 1024.0).round() as u64
    }

    /// Every zone label, numbered in order of first appearance (unlabelled nodes share one).
    pub fn zones(&self) -> BTreeMap<String, u16> {
        let mut zones = BTreeMap::new();
        let labels = self
            .origins
            .iter()
            .map(|o| &o.zone)
            .chain(self.groups.iter().map(|g| &g.zone));
        for label in labels {
            let label = label.clone().unwrap_or_default();
            let next = zones.len() as u16;
            zones.entry(label).or_insert(next);
        }
        zones
    }

    /// How many of `peers` peers each group gets: shares rounded down, the remainder to the
    /// first group.
    pub fn group_counts(&self, peers: usize) -> Vec<usize> {
        let total: f64 = self.groups.iter().map(|g| g.share).sum();
        let mut counts: Vec<usize> = self
            .groups
            .iter()
            .map(|g| (peers as f64 * g.share / total).floor() as usize)
            .collect();
        let given: usize = counts.iter().sum();
        counts[0] += peers - given;
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        artifact_mib = 4
        peers = [10]
        [[origins]]
        up_mb_s = 10
        down_mb_s = 10
        [[groups]]
        up_mb_s = 5
        down_mb_s = 20
    "#;

    #[test]
    fn a_minimal_scenario_gets_defaults() {
        let s = Scenario::parse(MINIMAL, "t").expect("valid");
        assert_eq!((s.seed, s.degree, s.latency_ms, s.loss), (1, 15, 5.0, 0.0));
        assert_eq!(s.artifact_bytes(), 4 << 20);
        assert_eq!(s.group_counts(10), [10]);
    }

    #[test]
    fn shares_split_the_count_and_the_remainder_goes_first() {
        let text = MINIMAL.replace(
            "[[groups]]",
            "[[groups]]\nshare = 1\nup_mb_s = 1\ndown_mb_s = 1\nzone = \"b\"\n[[groups]]\nshare = 2",
        );
        let s = Scenario::parse(&text, "t").expect("valid");
        assert_eq!(s.group_counts(10), [4, 6]);
        assert_eq!(s.group_counts(1), [1, 0]);
        let zones = s.zones();
        assert_eq!(zones.len(), 2, "{zones:?}");
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        for (change, reason) in [
            (("artifact_mib = 4", "artifact_mib = 0"), "artifact_mib"),
            (("peers = [10]", "peers = []"), "at least one count"),
            (("peers = [10]", "peers = [0]"), "peer count"),
            (("up_mb_s = 5", "up_mb_s = -1"), "up_mb_s"),
            (("up_mb_s = 5", "up_mb_s = 1e-9"), "up_mb_s"),
            (("artifact_mib = 4", "artifact_mib = 1e-9"), "artifact_mib"),
            (
                ("name = \"t\"", "name = \"t\"\ntime_limit_s = 1e20"),
                "time_limit_s",
            ),
            (
                ("name = \"t\"", "name = \"t\"\nlatency_ms = 1e23"),
                "latency_ms",
            ),
            (("name = \"t\"", "name = \"t\"\ndegree = 100000"), "degree"),
            (
                ("up_mb_s = 10", "up_mb_s = 10\ncount = 10000000"),
                "origins",
            ),
            (("name = \"t\"", "name = \"t\"\nloss = 1.5"), "loss"),
            (("name = \"t\"", "name = \"t\"\nbogus = 1"), "bogus"),
            (
                ("artifact_mib = 4", "artifact_mib = \"big\""),
                "artifact_mib",
            ),
            (
                (
                    "[[origins]]",
                    "[churn]\nleave = 0.5\ncrash = 0.4\njoin = 0.5\nwindow_s = [0, 1]\n[[origins]]",
                ),
                "add up",
            ),
            (
                (
                    "[[origins]]",
                    "[churn]\nleave = 0.1\nwindow_s = [0, 1e20]\n[[origins]]",
                ),
                "window_s",
            ),
        ] {
            let text = MINIMAL.replacen(change.0, change.1, 1);
            let err = Scenario::parse(&text, "file.toml").expect_err(reason);
            let msg = err.to_string();
            assert!(msg.contains("file.toml") && msg.contains(reason), "{msg}");
        }
    }

    #[test]
    fn every_scenario_in_the_repository_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 5, "only {seen} scenarios");
    }
}
