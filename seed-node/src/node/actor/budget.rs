//! What peers can make the node hold: how many connections in all and from one address, how
//! many without a handshake, and how long a connection that carries nothing stays open.

use super::*;

/// Most peer connections accepted from one IP address.
pub(super) const MAX_CONNS_PER_IP: usize = 32;
/// Most connections from one IP address that have not sent their handshake yet.
pub(super) const MAX_UNREADY_PER_IP: usize = 8;
/// How long a connection that carries no artifact stays open.
pub(super) const IDLE_CONN: Duration = Duration::from_secs(60);

impl Actor {
    /// Whether a connection just accepted from `remote` may be kept, making room for it by
    /// closing the oldest connection still without a handshake if those are at their cap. A
    /// flood of silent sockets then cycles through the handshake slots instead of holding
    /// them, and one address cannot take them all.
    pub(super) fn admit(&mut self, remote: SocketAddr) -> bool {
        let ip = remote.ip();
        let from_ip: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.remote, Remote::Tcp(a) if a.ip() == ip))
            .map(|(&id, _)| id)
            .collect();
        let unready_from_ip = from_ip
            .iter()
            .filter(|&&c| self.ep.conn_peer(c).is_none())
            .count();
        if self.conns.len() >= self.settings.max_conns
            || from_ip.len() >= MAX_CONNS_PER_IP
            || unready_from_ip >= MAX_UNREADY_PER_IP
        {
            tracing::debug!(%remote, "refusing a connection: at the cap");
            return false;
        }
        if self.ep.unready_count() >= MAX_UNROUTED {
            let oldest = self
                .conns
                .iter()
                .filter(|&(&id, _)| self.ep.conn_peer(id).is_none())
                .min_by_key(|(_, c)| c.opened)
                .map(|(&id, _)| id);
            if let Some(conn) = oldest {
                tracing::debug!(
                    conn = conn.0,
                    "closing the oldest connection without a handshake"
                );
                self.drop_conn(conn);
            }
        }
        true
    }

    /// Closes connections that carried no artifact for [`IDLE_CONN`]: a peer that links and
    /// then shares nothing does not hold a socket and its buffers for ever.
    pub(super) fn close_idle_conns(&mut self, at: TokioInstant) {
        let mut idle = Vec::new();
        for (&id, c) in &mut self.conns {
            if self.ep.conn_swarms(id).is_empty() && self.ep.conn_peer(id).is_some() {
                let since = *c.idle_since.get_or_insert(at);
                if at.duration_since(since) >= IDLE_CONN {
                    idle.push(id);
                }
            } else {
                c.idle_since = None;
            }
        }
        for conn in idle {
            tracing::debug!(conn = conn.0, "closing a connection that carries nothing");
            self.drop_conn(conn);
        }
    }
}

/// Most peer connections for a process allowed `nofile` open files: room is kept for the
/// API, the store's files and the rest.
pub(crate) fn max_conns_for(nofile: u64) -> usize {
    let room = nofile.saturating_sub(256);
    usize::try_from(room.clamp(64, 4096)).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::max_conns_for;

    #[test]
    fn connections_leave_room_for_other_files() {
        assert_eq!(max_conns_for(1024), 768);
        assert_eq!(max_conns_for(100), 64);
        assert_eq!(max_conns_for(1 << 20), 4096);
    }
}
