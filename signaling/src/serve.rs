//! Serving the [`router`] on a TCP listener, as `pollen-signal` does.
//!
//! Until it becomes a WebSocket a connection costs a socket and a task but no session, so it
//! is held to limits of its own: it must be upgraded within [`Config::upgrade_timeout`]
//! (which ends silent sockets and half-sent requests), and connections not yet upgraded are
//! capped like WebSockets, in all and per address (more are closed at once). Each request is
//! told its remote address, for [`Config::max_connections_per_ip`].

use std::net::SocketAddr;

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::Service};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::net::TcpListener;

use crate::{Config, Signaling, admission::Admission, router};

/// Serves `server` on `listener` until the returned future is dropped.
pub async fn serve(listener: TcpListener, server: Signaling) {
    let config: Config = *server.config();
    let pending = Admission::new(config.max_connections, config.max_connections_per_ip);
    let app = router(server);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!("accepting a signaling connection: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(admitted) = pending.admit(Some(remote.ip())) else {
            tracing::debug!(%remote, "closing a connection: too many not upgraded yet");
            continue;
        };
        let service = WithRemote {
            inner: TowerToHyperService::new(app.clone()),
            remote,
        };
        tokio::spawn(async move {
            // Ends when the connection closes or is upgraded (the WebSocket lives on in its
            // own task); the timeout closes it if it does neither in time.
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            match tokio::time::timeout(config.upgrade_timeout, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(%remote, "HTTP connection ended: {err}"),
                Err(_) => tracing::debug!(%remote, "closing a connection not upgraded in time"),
            }
            drop(admitted);
        });
    }
}

/// The app, told each request's remote address.
struct WithRemote {
    inner: TowerToHyperService<Router>,
    remote: SocketAddr,
}

impl Service<hyper::Request<Incoming>> for WithRemote {
    type Response = <TowerToHyperService<Router> as Service<hyper::Request<Incoming>>>::Response;
    type Error = <TowerToHyperService<Router> as Service<hyper::Request<Incoming>>>::Error;
    type Future = <TowerToHyperService<Router> as Service<hyper::Request<Incoming>>>::Future;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.remote));
        self.inner.call(req)
    }
}
