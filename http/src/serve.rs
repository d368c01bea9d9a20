//! The accept loop both APIs run on. axum's own `serve` has no header-read
//! timeout and no connection cap, so one client could hold any number of
//! half-sent requests open (slowloris). Here:
//!
//! * at most `max_connections` are open; while all are taken, new clients wait
//!   in the kernel's listen backlog instead of costing memory here;
//! * HTTP/1.1 only, with hyper's header-read timeout: a client that has not
//!   sent a whole request head within `header_timeout` is disconnected. The
//!   timer also runs while a keep-alive connection waits for its next request,
//!   so idle connections are closed as well;
//! * every request is bounded until its response starts and counted (layers);
//! * on shutdown the listener closes, connections finish their requests
//!   (live streams end on the same shutdown), and after `drain_timeout` the
//!   rest are left behind.

use crate::{layers, HttpError};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use gavel_runtime::http_settings::HttpSettings;
use gavel_runtime::observe::metrics::Http;
use gavel_runtime::Shutdown;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Extra time shutdown gives open connections beyond the request timeout.
const DRAIN_SLACK: Duration = Duration::from_secs(5);
/// Pause after an accept error that is not the client's (out of file
/// descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for open connections before leaving them.
    pub drain_timeout: Duration,
}

impl ServeOptions {
    pub fn from_settings(settings: &HttpSettings) -> Self {
        Self {
            header_timeout: settings.header_timeout,
            request_timeout: settings.request_timeout,
            max_connections: settings.max_connections,
            drain_timeout: settings.request_timeout + DRAIN_SLACK,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    metrics: &'static Http,
    shutdown: Shutdown,
) -> Result<(), HttpError> {
    let router = layers::wrap(router, options.request_timeout, metrics);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let connections = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.triggered() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                spawn_connection(stream, peer, router.clone(), &options, &connections, permit)
            }
            Err(error) => accept_failed(error).await,
        }
    }
    drop(listener);
    tokio::select! {
        _ = connections.shutdown() => tracing::debug!("every connection closed"),
        _ = tokio::time::sleep(options.drain_timeout) => tracing::warn!(
            timeout = ?options.drain_timeout,
            "connections still open at the end of the drain; left behind"
        ),
    }
    Ok(())
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: &ServeOptions,
    connections: &GracefulShutdown,
    permit: OwnedSemaphorePermit,
) {
    // Live events are small writes that must not wait for an ACK.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // Handlers that cap per client (live streams) read the peer address.
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(Body::new))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let connection = connections.watch(builder.serve_connection(TokioIo::new(stream), service));
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            // Header timeouts and clients that vanish land here: routine.
            tracing::debug!(%error, %peer, "connection ended with an error");
        }
        drop(permit);
    });
}

async fn accept_failed(error: std::io::Error) {
    match error.kind() {
        // The client gave up between SYN and accept: nothing to wait for.
        ErrorKind::ConnectionAborted
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionRefused => {
            tracing::debug!(%error, "accept")
        }
        _ => {
            tracing::warn!(%error, "accept failed; pausing before the next");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
    }
}
