//! Connections: dialing the addresses an artifact's policy picks (one dial per address,
//! shared by every artifact that wants it), and bookkeeping as connections and links come
//! and go.

use super::*;

impl Actor {
    pub(super) fn on_dialed(&mut self, addr: SocketAddr, result: std::io::Result<TcpStream>) {
        let waiting = self.dialing.remove(&addr).unwrap_or_default();
        let now = self.now();
        let conn = match result {
            // A connection to this peer opened meanwhile (it dialed us): keep that one.
            Ok(_) if self.by_addr.contains_key(&addr) => self.by_addr.get(&addr).copied(),
            Ok(stream) => {
                let conn = self.ep.connect(now, true);
                let handle = spawn_link(&self.inputs, &self.settings, conn, stream);
                self.conns.insert(
                    conn,
                    Conn {
                        handle,
                        remote: Remote::Tcp(addr),
                        dialed: Some(addr),
                        listens: Some(addr),
                        opened: TokioInstant::now(),
                        idle_since: None,
                    },
                );
                self.by_addr.insert(addr, conn);
                Some(conn)
            }
            Err(err) => {
                tracing::debug!(%addr, "dial failed: {err}");
                for id in &waiting {
                    if let Some(e) = self.entries.get_mut(id) {
                        e.dial_errors.insert(addr, err.to_string());
                    }
                }
                None
            }
        };
        for id in waiting {
            let Some(state) = self
                .entries
                .get_mut(&id)
                .and_then(|e| e.addrs.get_mut(&addr))
            else {
                continue;
            };
            state.dialing = false;
            match conn {
                Some(conn) if self.ep.open_swarm(now, conn, id) => state.conn = Some(conn),
                Some(_) => {}
                None => state.back_off(now),
            }
        }
    }

    /// Dials the known addresses of incomplete artifacts that have no link: the ticket's,
    /// `--peer`s, and the members gossip says hold the artifact (see `gossip::sources`), up
    /// to a cap on links ([`dial::to_dial`]).
    pub(super) fn dial_missing(&mut self) {
        let at = TokioInstant::now();
        let now = self.now();
        let me = [self.settings.advertise, self.settings.listen];
        for (&id, entry) in &mut self.entries {
            if self.ep.swarm(&id).is_none_or(Swarm::is_complete) || entry.error.is_some() {
                continue;
            }
            let sources =
                gossip::sources(&self.gossip.membership, &id, at.duration_since(entry.added));
            for &addr in &sources.dial {
                entry.addrs.entry(addr).or_insert_with(|| AddrState {
                    never: me.contains(&addr),
                    ..AddrState::default()
                });
            }
            let linked = self.ep.swarm_conns(&id).count();
            for addr in dial::to_dial(&entry.addrs, &sources, linked, now) {
                let Some(state) = entry.addrs.get_mut(&addr) else {
                    continue;
                };
                // A connection to the peer carries this swarm too.
                if let Some(&conn) = self.by_addr.get(&addr)
                    && self.ep.open_swarm(now, conn, id)
                {
                    state.conn = Some(conn);
                    continue;
                }
                state.dialing = true;
                if let Some(waiting) = self.dialing.get_mut(&addr) {
                    waiting.push(id);
                    continue;
                }
                self.dialing.insert(addr, vec![id]);
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    let result =
                        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                            Ok(r) => r,
                            Err(_) => Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "dial timed out",
                            )),
                        };
                    let _ = inputs.send(Input::Dialed { addr, result });
                });
            }
        }
        self.drive();
    }

    /// A connection's handshake arrived: note where the peer listens, so artifacts that
    /// want that address use this connection.
    pub(super) fn on_connected(&mut self, conn: ConnId, peer: PeerId, listen_port: Option<u16>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let (Remote::Tcp(remote), Some(port), None) = (c.remote, listen_port, c.dialed) {
            let addr = SocketAddr::new(remote.ip(), port);
            c.listens = Some(addr);
            self.by_addr.entry(addr).or_insert(conn);
        }
        if let Some(addr) = c.dialed {
            for e in self.entries.values_mut() {
                if let Some(s) = e.addrs.get_mut(&addr) {
                    s.failures = 0;
                }
            }
        }
        tracing::debug!(%peer, conn = conn.0, "peer connected");
    }

    pub(super) fn on_link_closed(&mut self, conn: ConnId, id: ContentId, reason: LinkEnd) {
        let now = self.now();
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let closed: Vec<SocketAddr> = entry
            .addrs
            .iter()
            .filter(|(_, s)| s.conn == Some(conn))
            .map(|(a, _)| *a)
            .collect();
        for addr in closed {
            let why = link_end_words(reason);
            entry
                .dial_errors
                .insert(addr, format!("linked, then {why}"));
        }
        for state in entry.addrs.values_mut().filter(|s| s.conn == Some(conn)) {
            state.conn = None;
            match reason {
                LinkEnd::Swarm(DisconnectReason::SelfConnection | DisconnectReason::Banned)
                | LinkEnd::Connection(Some(CloseReason::SelfConnection)) => state.never = true,
                LinkEnd::Swarm(DisconnectReason::Duplicate) => {
                    state.retry_at = Some(now + REDIAL_DUPLICATE);
                }
                // Other holders get its place for a while; the ticket's and --peer addresses
                // are tried again soon (they may be a busy origin).
                LinkEnd::Swarm(DisconnectReason::Unproductive) => {
                    state.back_off(now);
                    if !state.pinned {
                        state.retry_at = state.retry_at.max(Some(now + REDIAL_UNPRODUCTIVE));
                    }
                }
                // Our swarm moved to the connection that replaced this one.
                LinkEnd::Connection(Some(CloseReason::Duplicate)) | LinkEnd::Removed => {}
                _ => state.back_off(now),
            }
        }
    }

    /// Closes a connection from our side and forgets it everywhere.
    pub(super) fn drop_conn(&mut self, conn: ConnId) {
        let now = self.now();
        self.ep.handle_closed(now, conn);
        self.forget_conn(conn);
    }

    /// Closes a connection's IO and forgets the addresses that led to it.
    pub(super) fn forget_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        c.handle.close();
        for addr in c.dialed.iter().chain(c.listens.iter()) {
            if self.by_addr.get(addr) == Some(&conn) {
                self.by_addr.remove(addr);
            }
        }
    }
}

/// Starts a link's tasks with the node-wide inputs, upload cap and buffer pool. A free
/// function, so callers can hold other fields of the actor borrowed meanwhile.
pub(super) fn spawn_link(
    inputs: &UnboundedSender<Input>,
    settings: &Settings,
    conn: ConnId,
    stream: TcpStream,
) -> conn::ConnHandle {
    conn::spawn(
        conn,
        stream,
        inputs.clone(),
        settings.limiter.clone(),
        settings.buffers.clone(),
        settings.receiving.clone(),
    )
}

/// Why a link ended, in words for `pollen get`'s report of what it tried.
fn link_end_words(reason: LinkEnd) -> String {
    match reason {
        LinkEnd::Swarm(DisconnectReason::Banned) => {
            "banned: it sent data failing verification".into()
        }
        LinkEnd::Swarm(DisconnectReason::Unresponsive) => {
            "dropped: it let our requests time out".into()
        }
        LinkEnd::Swarm(DisconnectReason::HandshakeTimeout) => {
            "dropped: it did not finish its handshake".into()
        }
        LinkEnd::Swarm(DisconnectReason::WrongSwarm) => {
            "dropped: it serves another artifact".into()
        }
        LinkEnd::Swarm(DisconnectReason::Unproductive) => {
            "dropped: it claims pieces we want and sent none".into()
        }
        LinkEnd::Swarm(r) => format!("dropped ({r:?})"),
        LinkEnd::ByPeer => "closed by the peer".into(),
        LinkEnd::Refused => "refused: the peer does not hold it".into(),
        LinkEnd::Connection(Some(r)) => format!("the connection closed ({r:?})"),
        LinkEnd::Connection(None) => "the connection closed".into(),
        LinkEnd::Removed => "closed here".into(),
    }
}
