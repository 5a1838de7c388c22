//! Browsers: dialing the members signaling names, and data channels that open.

use super::*;

impl Actor {
    /// Dials members that signaling found for an artifact we are fetching. Native members are
    /// reached over TCP through gossip; this is how browsers are found.
    pub(super) fn on_rtc_members(&mut self, server: String, id: ContentId, members: Vec<Member>) {
        let now = self.now();
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let Some(rtc) = &self.settings.rtc else {
            return;
        };
        if self.ep.swarm(&id).is_none_or(Swarm::is_complete) || entry.error.is_some() {
            return;
        }
        let linked: Vec<ConnId> = self.ep.swarm_conns(&id).collect();
        let linked_peers: Vec<PeerId> = linked
            .iter()
            .filter_map(|&c| self.ep.conn_peer(c))
            .collect();
        let mut rtc_links = linked
            .iter()
            .filter(|c| {
                self.conns
                    .get(c)
                    .is_some_and(|c| matches!(c.remote, Remote::WebRtc(..)))
            })
            .count();
        let mut reuse = Vec::new();
        for m in members {
            if rtc_links >= MAX_RTC_DIALS {
                break;
            }
            if m.kind != PeerKind::Browser
                || m.peer == self.settings.peer_id
                || linked_peers.contains(&m.peer)
                || entry.banned.contains(&m.peer)
            {
                continue;
            }
            rtc_links += 1;
            // A browser we already have a connection to gets the swarm on it.
            if let Some(conn) = self.ep.conn_to(&m.peer) {
                reuse.push(conn);
                continue;
            }
            rtc.send(RtcCommand::Dial {
                swarm: id,
                peer: m.peer,
                server: server.clone(),
            });
        }
        for conn in reuse {
            self.ep.open_swarm(now, conn, id);
        }
    }

    /// A data channel opened: it becomes a connection, and carries the swarm it opened for.
    pub(super) fn on_rtc_opened(
        &mut self,
        id: ContentId,
        peer: PeerId,
        kind: PeerKind,
        offered: bool,
        dc: Arc<dyn webrtc::data_channel::DataChannel>,
        pc: Arc<dyn webrtc::peer_connection::PeerConnection>,
    ) {
        if !self.entries.contains_key(&id) {
            tokio::spawn(async move {
                let _ = pc.close().await;
            });
            return;
        }
        let now = self.now();
        let conn = self.ep.connect(now, offered);
        let handle = crate::node::webrtc::link::spawn(
            conn,
            dc,
            pc,
            self.inputs.clone(),
            self.settings.limiter.clone(),
        );
        self.conns.insert(
            conn,
            Conn {
                handle,
                remote: Remote::WebRtc(peer, kind),
                dialed: None,
                listens: None,
                opened: TokioInstant::now(),
                idle_since: None,
            },
        );
        self.ep.open_swarm(now, conn, id);
    }
}
