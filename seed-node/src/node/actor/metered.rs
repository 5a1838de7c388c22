//! Bringing the metrics up to date every tick: bytes by source from the swarms' link
//! counters, and the gauges from the actor's state.

use super::*;
use crate::node::metrics::{ArtifactLabels, ConnLabels, MemberLabels, Source, SourceLabels};

impl Actor {
    /// Counts the bytes each link moved since the last update, and sets every gauge.
    pub(super) fn update_metrics(&mut self) {
        let m = self.settings.metrics.clone();
        let our_zone = self.gossip.membership.state().zone.clone();
        let mut seen = HashMap::new();
        for id in self.entries.keys() {
            let Some(swarm) = self.ep.swarm(id) else {
                continue;
            };
            for l in swarm.stats().links {
                let source = self
                    .ep
                    .link_conn(l.link)
                    .and_then(|c| self.conns.get(&c))
                    .map(|c| match c.remote {
                        Remote::WebRtc(_, PeerKind::Browser) => Source::Browser,
                        _ => {
                            let zone = l
                                .peer
                                .and_then(|p| self.gossip.membership.member(&p))
                                .map(|mem| mem.state.zone.clone());
                            if zone.is_none_or(|z| z == our_zone) {
                                Source::PeerSameZone
                            } else {
                                Source::PeerOtherZone
                            }
                        }
                    });
                let key = (*id, l.link);
                let (down0, up0) = self.link_bytes.get(&key).copied().unwrap_or((0, 0));
                if let Some(source) = source {
                    let labels = SourceLabels::from(source);
                    m.received
                        .get_or_create(&labels)
                        .inc_by(l.downloaded.saturating_sub(down0));
                    m.sent
                        .get_or_create(&labels)
                        .inc_by(l.uploaded.saturating_sub(up0));
                }
                seen.insert(key, (l.downloaded, l.uploaded));
            }
        }
        self.link_bytes = seen;

        // Every label set is set each time (to 0 when empty), never cleared, so a scrape
        // between two updates sees no series vanish.
        let mut conns: HashMap<(&'static str, &'static str), i64> = HashMap::new();
        for transport in ["tcp", "webrtc"] {
            for ready in ["true", "false"] {
                conns.insert((transport, ready), 0);
            }
        }
        for (&id, c) in &self.conns {
            let transport = match c.remote {
                Remote::Tcp(_) => "tcp",
                Remote::WebRtc(..) => "webrtc",
            };
            let ready = if self.ep.conn_peer(id).is_some() {
                "true"
            } else {
                "false"
            };
            *conns.entry((transport, ready)).or_default() += 1;
        }
        for ((transport, ready), n) in conns {
            m.connections
                .get_or_create(&ConnLabels { transport, ready })
                .set(n);
        }
        let mut states: HashMap<&'static str, i64> =
            [("fetching", 0), ("complete", 0), ("failed", 0)]
                .into_iter()
                .collect();
        let mut stored = 0;
        for (id, e) in &self.entries {
            let Some(swarm) = self.swarm(id) else {
                continue;
            };
            stored += swarm.stats().have_bytes;
            let state = if e.error.is_some() {
                "failed"
            } else if swarm.is_complete() {
                "complete"
            } else {
                "fetching"
            };
            *states.entry(state).or_default() += 1;
        }
        for (state, n) in states {
            m.artifacts.get_or_create(&ArtifactLabels { state }).set(n);
        }
        m.stored_bytes.set(stored);
        if let Ok(fs) = rustix::fs::statvfs(self.store.dir()) {
            m.storage_free_bytes
                .set(fs.f_bavail.saturating_mul(fs.f_frsize));
        }
        let mut members: HashMap<String, i64> = ["alive", "suspect", "dead", "left"]
            .into_iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        for member in self.gossip.membership.members() {
            *members
                .entry(gossip::status_word(member.status).to_string())
                .or_default() += 1;
        }
        for (state, n) in members {
            m.members.get_or_create(&MemberLabels { state }).set(n);
        }
        let (packets, bytes) = self.gossip.sent;
        m.gossip(
            "out",
            packets.saturating_sub(self.gossip_sent.0),
            bytes.saturating_sub(self.gossip_sent.1),
        );
        self.gossip_sent = (packets, bytes);
    }
}
