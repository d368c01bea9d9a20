//! Middleware every API route gets: a bound on each request until its
//! response starts, and the request metrics (count by route template and
//! status, latency by route).

use crate::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gavel_runtime::observe::metrics::Http;
use std::time::{Duration, Instant};

/// The label of requests no route matched: one series for every unknown path,
/// so scanners cannot blow up the metric's cardinality.
const UNMATCHED: &str = "unmatched";

pub(crate) fn wrap(router: Router, request_timeout: Duration, metrics: &'static Http) -> Router {
    // The last layer added runs first: metrics see timeouts as the 408 they become.
    router
        .layer(middleware::from_fn_with_state(request_timeout, timeout))
        .layer(middleware::from_fn_with_state(metrics, record))
}

/// Bounds a request until its response head: a slow body upload, a stuck
/// dependency. A streaming body (live updates) runs on after its head; it is
/// bounded by shutdown, the stream caps and its token's expiry instead.
async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
    }
}

async fn record(State(metrics): State<&'static Http>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}
