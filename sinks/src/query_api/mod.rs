//! `gavel query-api`: HTTP JSON over the read models, scoped to the tenant of
//! the caller's bearer token, plus Server-Sent Events of an auction's live updates.
//!
//! | route | answer |
//! |---|---|
//! | `GET /auctions?status=ACTIVE&sort=end_time\|current_price\|bid_count&order=asc\|desc&limit=1..100&cursor=` | `{"items": [...], "next_cursor": "..." \| null}` (keyset pages, ties broken by auction id; cursors are signed) |
//! | `GET /auctions/{id}` | the auction, or 404 (also for another tenant's auction) |
//! | `GET /auctions/{id}/live` | SSE: `snapshot` (the row), then `BidPlaced`, `AuctionStarted`, `AuctionEnded`, `AuctionCancelled` events with the JSON of each change; `lagged` when the client fell behind and should refetch; a keep-alive comment every 15 s; the stream ends on shutdown and when the token expires |
//! | `GET /users/{id}/bids?status=LEADING\|OUTBID\|WON\|LOST\|CANCELLED&limit=1..100&cursor=` | `{"items": [...], "next_cursor": ...}`: the auctions the user bid on, newest bid first, with the user's highest bid and standing; only for that user or a token with the `operator` role |
//! | `GET /healthz` | 200 `ok` while the process runs |
//! | `GET /readyz` | 200 `ok` while Postgres answers, else 503 |
//!
//! Every data route needs `Authorization: Bearer <JWT>` (see `gavel_http::auth`).
//! Every error is `{"error": "reason"}`: 400 for a bad parameter or cursor,
//! 401 without a valid token, 403 for another user's bids or an `X-Tenant-Id`
//! contradicting the token, 404, 429 over the open-stream caps
//! (`GAVEL_QUERY_MAX_STREAMS_PER_USER`, `GAVEL_HTTP_MAX_STREAMS_PER_CLIENT`),
//! 503 when the database is unavailable. Money is always
//! `{"amount_minor": i64, "currency": "EUR"}`.
//!
//! Live updates do not go through Postgres: each instance reads the event topic
//! itself from its committed end and fans events out in memory, so a bid reaches
//! its watchers as soon as the aggregate's transaction commits.

mod cursor;
mod error;
mod live;
mod params;
mod routes;
mod rows;
mod stream;
mod user_bids;

use crate::SinkError;
use gavel_http::{Authenticates, ServeOptions, StreamLimiter, Verifier};
use gavel_runtime::observe::metrics;
use gavel_runtime::{postgres, Config, Shutdown};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Connections kept for request handling.
const POOL_SIZE: usize = 16;

/// What the handlers share.
pub struct ApiState {
    pool: deadpool_postgres::Pool,
    schema: String,
    hub: live::Hub,
    shutdown: Shutdown,
    verifier: Verifier,
    cursors: cursor::Cursors,
    /// Open live streams per tenant and user.
    user_streams: Arc<StreamLimiter>,
    /// Open live streams per client address.
    client_streams: Arc<StreamLimiter>,
}

impl Authenticates for ApiState {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

/// Binds `listen` and serves until `shutdown`.
pub async fn run(config: Config, listen: SocketAddr, shutdown: Shutdown) -> Result<(), SinkError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| SinkError::QueryApi(format!("binding {listen}: {e}")))?;
    serve(config, listener, shutdown).await
}

/// Serves on a bound listener (tests bind `127.0.0.1:0`) until `shutdown`:
/// then live streams end, in-flight requests finish, and this returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), SinkError> {
    let address = listener
        .local_addr()
        .map_err(|e| SinkError::QueryApi(format!("listener address: {e}")))?;
    let verifier = Verifier::start(&config, address, &shutdown).await?;
    let cursors = cursor::Cursors::from_config(&config, address)?;
    let pool = postgres::pool(&config, POOL_SIZE)?;
    let hub = live::Hub::new();
    // The feed is positioned before the first request is accepted, so any event
    // committed after a client connected reaches it.
    let feed = live::start(&config, hub.clone(), shutdown.clone()).await?;
    let state = Arc::new(ApiState {
        pool,
        schema: config.postgres_schema.clone(),
        hub,
        shutdown: shutdown.clone(),
        verifier,
        cursors,
        user_streams: StreamLimiter::new(config.http.max_streams_per_user),
        client_streams: StreamLimiter::new(config.http.max_streams_per_client),
    });
    tracing::info!(%address, schema = %config.postgres_schema, "query api listening");
    let served = gavel_http::serve(
        listener,
        routes::router(state),
        ServeOptions::from_settings(&config.http),
        metrics::query_api(),
        shutdown.clone(),
    )
    .await;
    // Whatever ended the server, the feed goes too (it stops by itself on shutdown).
    if !shutdown.is_triggered() {
        feed.abort();
    }
    match feed.await {
        Err(error) if !error.is_cancelled() => {
            tracing::warn!(%error, "live feed task ended abnormally")
        }
        _ => {}
    }
    tracing::info!("query api stopped");
    Ok(served?)
}
