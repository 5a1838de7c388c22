//! Serving the HTTP address (API, dashboard, signaling): every connection costs a socket and
//! a task, so their number is capped. A client that does not finish its request headers in
//! time is dropped, and when the cap is reached the oldest connection that has not made a
//! request yet makes room for the new one, so half-sent requests cannot lock others out.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::Router;
use hyper::{body::Incoming, server::conn::http1, service::Service};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, task::AbortHandle, time::Instant};

/// How long a client may take to send a request's headers (and an idle keep-alive
/// connection to start its next request).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// One open connection.
struct Open {
    opened: Instant,
    /// Whether a request has come in on it.
    requested: Arc<AtomicBool>,
    task: Option<AbortHandle>,
}

/// The open connections, by number.
type Registry = Arc<Mutex<BTreeMap<u64, Open>>>;

/// Serves `app` on `listener`, with at most `max_conns` connections open at once.
pub(crate) async fn serve(listener: TcpListener, app: Router, max_conns: usize) {
    let open: Registry = Arc::default();
    let mut next = 0u64;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!("accepting an HTTP connection: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !make_room(&open, max_conns) {
            tracing::debug!(%remote, "refusing an HTTP connection: {max_conns} open and busy");
            continue;
        }
        next += 1;
        let id = next;
        let requested = Arc::new(AtomicBool::new(false));
        let service = Marked {
            inner: TowerToHyperService::new(app.clone()),
            requested: requested.clone(),
        };
        // In the registry before the task runs, so its removal always finds it.
        if let Ok(mut reg) = open.lock() {
            reg.insert(
                id,
                Open {
                    opened: Instant::now(),
                    requested: requested.clone(),
                    task: None,
                },
            );
        }
        let registry = open.clone();
        let task = tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let served = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(err) = served {
                tracing::debug!(%remote, "HTTP connection ended: {err}");
            }
            if let Ok(mut open) = registry.lock() {
                open.remove(&id);
            }
        });
        if let Ok(mut reg) = open.lock()
            && let Some(o) = reg.get_mut(&id)
        {
            o.task = Some(task.abort_handle());
        }
    }
}

/// Whether a new connection fits: below the cap, or after closing the oldest connection that
/// has not made a request.
fn make_room(open: &Registry, max_conns: usize) -> bool {
    let Ok(mut open) = open.lock() else {
        return false;
    };
    if open.len() < max_conns {
        return true;
    }
    let oldest = open
        .iter()
        .filter(|(_, o)| !o.requested.load(Ordering::Relaxed))
        .min_by_key(|(_, o)| o.opened)
        .map(|(&id, _)| id);
    let Some(id) = oldest else {
        return false;
    };
    if let Some(task) = open.remove(&id).and_then(|o| o.task) {
        task.abort();
    }
    true
}

/// The app, noting that a request came in on the connection.
struct Marked {
    inner: TowerToHyperService<Router>,
    requested: Arc<AtomicBool>,
}

impl Service<hyper::Request<Incoming>> for Marked {
    type Response = <TowerToHyperService<Router> as Service<hyper::Request<Incoming>>>::Response;
    type Error = <TowerToHyperService<Router> as Service<hyper::Request<Incoming>>>::Error;
    type Future = <TowerToHyperService<Router> as Service<hyper::Request<Incoming>>>::Future;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.requested.store(true, Ordering::Relaxed);
        self.inner.call(req)
    }
}
