//! The node's Prometheus metrics (`GET /metrics`): what it moved and to whom, what it
//! verified, its links, artifacts, storage and cluster. Counters are bumped where things
//! happen; gauges are set by the actor every second.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// Where payload bytes came from or went to.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum Source {
    /// A native peer in our zone.
    PeerSameZone,
    /// A native peer in another zone.
    PeerOtherZone,
    /// A browser.
    Browser,
}

/// Labels of the byte counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    /// Who was on the other end: `peer_same_zone`, `peer_other_zone` or `browser`.
    pub(crate) source: &'static str,
}

impl From<Source> for SourceLabels {
    fn from(source: Source) -> Self {
        Self {
            source: match source {
                Source::PeerSameZone => "peer_same_zone",
                Source::PeerOtherZone => "peer_other_zone",
                Source::Browser => "browser",
            },
        }
    }
}

/// Labels of the connection gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnLabels {
    /// `tcp` or `webrtc`.
    pub(crate) transport: &'static str,
    /// Whether its handshake arrived: `true` or `false`.
    pub(crate) ready: &'static str,
}

/// Labels of the artifact gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ArtifactLabels {
    /// `fetching`, `complete`, or `failed` (stopped by a storage error).
    pub(crate) state: &'static str,
}

/// Labels of the member gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MemberLabels {
    /// alive, suspect, dead or left.
    pub(crate) state: String,
}

/// Labels of the gossip counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabels {
    /// `in` or `out`.
    pub(crate) direction: &'static str,
}

/// Every metric of the node, and the registry that encodes them.
pub(crate) struct Metrics {
    registry: Registry,
    /// Payload bytes received, by source.
    pub(crate) received: Family<SourceLabels, Counter>,
    /// Payload bytes sent, by destination.
    pub(crate) sent: Family<SourceLabels, Counter>,
    /// Pieces received that verified against the content id.
    pub(crate) pieces_verified: Counter,
    /// Pieces received that failed verification.
    pub(crate) pieces_failed: Counter,
    /// Pieces found corrupt on our own disk.
    pub(crate) pieces_corrupt_on_disk: Counter,
    /// Peers banned for sending data that failed verification.
    pub(crate) peers_banned: Counter,
    /// Open peer connections.
    pub(crate) connections: Family<ConnLabels, Gauge>,
    /// Artifacts held or fetched, by state.
    pub(crate) artifacts: Family<ArtifactLabels, Gauge>,
    /// Fetches completed since the node started.
    pub(crate) fetches_completed: Counter,
    /// How long completed fetches took.
    pub(crate) fetch_duration: Histogram,
    /// Verified bytes held on disk.
    pub(crate) stored_bytes: Gauge<u64, AtomicU64>,
    /// Free bytes on the data directory's filesystem.
    pub(crate) storage_free_bytes: Gauge<u64, AtomicU64>,
    /// Cluster members this node knows of, by state.
    pub(crate) members: Family<MemberLabels, Gauge>,
    /// Artifacts evicted to keep within the storage limit.
    pub(crate) evictions: Counter,
    /// Gossip datagrams.
    pub(crate) gossip_packets: Family<DirectionLabels, Counter>,
    /// Gossip bytes.
    pub(crate) gossip_bytes: Family<DirectionLabels, Counter>,
}

impl Metrics {
    /// Every metric at zero, registered.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("pollen");
        let m = Self {
            received: Family::default(),
            sent: Family::default(),
            pieces_verified: Counter::default(),
            pieces_failed: Counter::default(),
            pieces_corrupt_on_disk: Counter::default(),
            peers_banned: Counter::default(),
            connections: Family::default(),
            artifacts: Family::default(),
            fetches_completed: Counter::default(),
            fetch_duration: Histogram::new([
                0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0,
            ]),
            stored_bytes: Gauge::default(),
            storage_free_bytes: Gauge::default(),
            members: Family::default(),
            evictions: Counter::default(),
            gossip_packets: Family::default(),
            gossip_bytes: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register_with_unit(
            "received",
            "Artifact payload received from peers, by source",
            Unit::Bytes,
            m.received.clone(),
        );
        r.register_with_unit(
            "sent",
            "Artifact payload sent to peers, by destination",
            Unit::Bytes,
            m.sent.clone(),
        );
        r.register(
            "pieces_verified",
            "Pieces received that verified against the content id",
            m.pieces_verified.clone(),
        );
        r.register(
            "pieces_failed_verification",
            "Pieces received that failed verification (their sender is banned)",
            m.pieces_failed.clone(),
        );
        r.register(
            "pieces_corrupt_on_disk",
            "Held pieces that no longer verified when read from disk (fetched again)",
            m.pieces_corrupt_on_disk.clone(),
        );
        r.register(
            "peers_banned",
            "Peers banned for sending data that failed verification",
            m.peers_banned.clone(),
        );
        r.register(
            "connections",
            "Open peer connections, by transport and whether their handshake arrived",
            m.connections.clone(),
        );
        r.register(
            "artifacts",
            "Artifacts the node holds or fetches, by state",
            m.artifacts.clone(),
        );
        r.register(
            "fetches_completed",
            "Fetches completed since the node started",
            m.fetches_completed.clone(),
        );
        r.register_with_unit(
            "fetch_duration",
            "Time from a fetch's start to its last verified piece",
            Unit::Seconds,
            m.fetch_duration.clone(),
        );
        r.register_with_unit(
            "stored",
            "Verified artifact bytes held on disk",
            Unit::Bytes,
            m.stored_bytes.clone(),
        );
        r.register_with_unit(
            "storage_free",
            "Free space on the data directory's filesystem",
            Unit::Bytes,
            m.storage_free_bytes.clone(),
        );
        r.register(
            "cluster_members",
            "Cluster members this node knows of (itself excluded), by state",
            m.members.clone(),
        );
        r.register(
            "evictions",
            "Artifacts evicted to keep within --max-storage or --evict-after",
            m.evictions.clone(),
        );
        r.register(
            "gossip_packets",
            "Gossip datagrams, by direction",
            m.gossip_packets.clone(),
        );
        r.register_with_unit(
            "gossip",
            "Gossip datagram bytes, by direction",
            Unit::Bytes,
            m.gossip_bytes.clone(),
        );
        Self { registry, ..m }
    }

    /// The metrics in the Prometheus text format (version 0.0.4, which every scraper and
    /// `promtool` read).
    pub(crate) fn encode(&self) -> String {
        let mut open = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut open, &self.registry);
        to_prometheus_text(&open)
    }

    /// Counts `packets` gossip datagrams of `bytes` in all, `in` or `out`.
    pub(crate) fn gossip(&self, direction: &'static str, packets: u64, bytes: u64) {
        let labels = DirectionLabels { direction };
        self.gossip_packets.get_or_create(&labels).inc_by(packets);
        self.gossip_bytes.get_or_create(&labels).inc_by(bytes);
    }
}

/// OpenMetrics text as the Prometheus text format: a counter's HELP and TYPE name its
/// samples' `_total` name, and there are no UNIT or EOF lines.
fn to_prometheus_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_and_open_metrics_lines_go() {
        let m = Metrics::new();
        m.pieces_verified.inc_by(3);
        m.gossip("in", 2, 100);
        m.received
            .get_or_create(&Source::PeerOtherZone.into())
            .inc_by(7);
        let text = m.encode();
        assert!(
            text.contains("# TYPE pollen_pieces_verified_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# HELP pollen_pieces_verified_total "),
            "{text}"
        );
        assert!(text.contains("pollen_pieces_verified_total 3"), "{text}");
        assert!(
            text.contains("pollen_gossip_bytes_total{direction=\"in\"} 100"),
            "{text}"
        );
        assert!(
            text.contains("pollen_received_bytes_total{source=\"peer_other_zone\"} 7"),
            "{text}"
        );
        assert!(text.contains("# TYPE pollen_stored_bytes gauge"), "{text}");
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }
}
