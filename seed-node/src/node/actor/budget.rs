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
        let host = host_of(remote.ip());
        let from_ip: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.remote, Remote::Tcp(a) if host_of(a.ip()) == host))
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
            // Accepted ones only: our own dials and browsers' channels are not the flood.
            let oldest = self
                .conns
                .iter()
                .filter(|&(&id, c)| {
                    self.ep.conn_peer(id).is_none()
                        && c.dialed.is_none()
                        && matches!(c.remote, Remote::Tcp(_))
                })
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

/// Who an address is, for per-host caps: an IPv4 address, or an IPv6 /64 (one host's
/// usual allocation).
fn host_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// How a process allowed `nofile` open files shares them out: (peer connections, HTTP
/// connections, signaling WebSockets). 128 stay for the store's files, logs and the rest.
pub(crate) fn fd_budget(nofile: u64) -> (usize, usize, usize) {
    let usable = nofile.saturating_sub(128);
    let http = (usable / 8).clamp(16, 512);
    let signal = (usable / 8).clamp(16, 4096);
    let peers = usable.saturating_sub(http + signal).clamp(64, 4096);
    let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    (n(peers), n(http), n(signal))
}

#[cfg(test)]
mod tests {
    use super::{fd_budget, host_of};

    #[test]
    fn connections_of_every_kind_fit_the_open_file_limit() {
        let (peers, http, signal) = fd_budget(1024);
        assert_eq!((peers, http, signal), (672, 112, 112));
        assert!(peers + http + signal + 128 <= 1024);
        assert_eq!(fd_budget(100), (64, 16, 16));
        assert_eq!(fd_budget(1 << 20), (4096, 512, 4096));
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        let a = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(host_of(a), host_of(b));
        assert_ne!(host_of(a), host_of(c));
        let v4: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(host_of(v4), v4);
    }
}
