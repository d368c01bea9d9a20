//! `gavel command-api`: authenticated HTTP commands, answered synchronously with
//! their outcome.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /auctions` | `{"auction_id"?, "title", "currency", "starting_price", "min_increment", "reserve_price"?, "ends_in_secs" \| "end_time", "expected_version"?}` | 201; the seller is the token's user |
//! | `POST /auctions/{id}/start` | `{"expected_version"?}` or empty | 200 |
//! | `POST /auctions/{id}/bids` | `{"amount", "currency", "expected_version"?}` | 200; the bidder is the token's user |
//! | `POST /auctions/{id}/cancel` | `{"reason"?, "expected_version"?}` or empty | 200 |
//! | `GET /commands/{command_id}` | | the outcome of a command answered 202, or 404 |
//! | `GET /healthz` | | 200 `ok` |
//!
//! Amounts are integer minor units. Every command route needs
//! `Authorization: Bearer <HS256 JWT>` with `sub` (user), `tenant` and `exp`
//! (401 otherwise); a body naming another seller or bidder is a 403. An
//! `Idempotency-Key` header (1..=128 visible ASCII) makes retries safe: the same
//! key from the same user is the same command and gets the same answer.
//! Malformed JSON is a 400, a body over 16 KiB a 413, invalid fields a 422 with
//! `"fields": {"amount": "must be > 0"}`. Outcome statuses: see `answer.rs`.
//!
//! Each command is produced keyed by its auction id and acknowledged by Kafka
//! before the request waits for its outcome on the outcome topic.

mod answer;
mod auth;
mod body;
mod error;
mod fields;
mod idempotency;
mod orders;
pub(crate) mod outcomes;
mod recent;
mod routes;
mod sender;

use crate::ProducerError;
use gavel_runtime::config::LOCAL_JWT_SECRET;
use gavel_runtime::{Config, Shutdown};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use routes::BODY_LIMIT;

/// What a request may take beyond its outcome wait: reading the body and
/// Kafka's acknowledgement (which gets the same bound, `DELIVERY_TIMEOUT`).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_SLACK: Duration = Duration::from_secs(10);

/// What the handlers share.
pub struct ApiState {
    verifier: auth::Verifier,
    sender: sender::Sender,
    outcomes: Arc<outcomes::Outcomes>,
    command_timeout: Duration,
}

/// Binds `listen` and serves until `shutdown`.
pub async fn run(
    config: Config,
    listen: SocketAddr,
    shutdown: Shutdown,
) -> Result<(), ProducerError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| ProducerError::CommandApi(format!("binding {listen}: {e}")))?;
    serve(config, listener, shutdown).await
}

/// Serves on a bound listener (tests bind `127.0.0.1:0`) until `shutdown`:
/// then no new connection is accepted, in-flight requests finish (their
/// outcomes still arrive: the outcome reader stops only after them), and this
/// returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), ProducerError> {
    let address = listener
        .local_addr()
        .map_err(|e| ProducerError::CommandApi(format!("listener address: {e}")))?;
    if config.jwt_secret.expose() == LOCAL_JWT_SECRET {
        tracing::warn!("GAVEL_JWT_SECRET is the local default: set a real key outside a laptop");
    }
    let outcomes = outcomes::Outcomes::new();
    let reader_stop = Shutdown::new();
    // Positioned before the first request is accepted: no outcome is missed.
    let reader = outcomes::start(&config, Arc::clone(&outcomes), reader_stop.clone()).await?;
    let state = Arc::new(ApiState {
        verifier: auth::Verifier::new(config.jwt_secret.expose()),
        sender: sender::Sender::connect(&config, DELIVERY_TIMEOUT).await?,
        outcomes,
        command_timeout: config.command_timeout,
    });
    let request_timeout = config.command_timeout + DELIVERY_TIMEOUT + REQUEST_SLACK;
    tracing::info!(%address, topic = %config.topics.commands, "command api listening");
    let stop = shutdown.clone();
    let served = axum::serve(listener, routes::router(state, request_timeout))
        .with_graceful_shutdown(async move { stop.triggered().await })
        .await;
    reader_stop.trigger();
    if let Err(error) = reader.await {
        tracing::warn!(%error, "outcome reader ended abnormally");
    }
    tracing::info!("command api stopped");
    served.map_err(|e| ProducerError::CommandApi(format!("serving: {e}")))
}
