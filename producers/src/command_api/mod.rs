//! `gavel command-api`: authenticated HTTP commands, answered synchronously with
//! their outcome.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /auctions` | `{"auction_id"?, "title", "currency", "starting_price", "min_increment", "reserve_price"?, "ends_in_secs" \| "end_time", "expected_version"?}` | 201; the seller is the token's user |
//! | `POST /auctions/{id}/start` | `{"expected_version"?}` or empty | 200 |
//! | `POST /auctions/{id}/bids` | `{"amount", "currency", "max_amount"?, "expected_version"?}` | 200; the bidder is the token's user |
//! | `POST /auctions/{id}/cancel` | `{"reason"?, "expected_version"?}` or empty | 200 |
//! | `GET /commands/{command_id}` | | the outcome of a command answered 202, or 404 |
//! | `GET /healthz` | | 200 `ok` |
//!
//! Amounts are integer minor units. Every route but `/healthz` needs
//! `Authorization: Bearer <JWT>` verified by `gavel_http::Verifier` (HS256 with
//! `GAVEL_JWT_SECRET`, or RS256/ES256 from a JWKS; `sub` is the user, the
//! tenant claim the tenant; 401 otherwise); a body naming another seller or
//! bidder is a 403. An `Idempotency-Key` header (1..=128 visible ASCII) makes
//! retries safe: the key is bound to its first request (route, auction, body)
//! in Postgres, a retry of that request gets the original answer and causes
//! nothing new, the key on another request is a 422. Malformed JSON is a 400,
//! a body over 16 KiB a 413, invalid fields a 422 with
//! `"fields": {"amount": "must be > 0"}`. Outcome statuses: see `answer.rs`.
//!
//! Each command is produced keyed by its auction id and acknowledged by Kafka
//! before the request waits for its outcome on the outcome topic.

mod answer;
mod body;
mod fields;
mod idempotency;
mod key_store;
mod orders;
pub(crate) mod outcomes;
mod recent;
mod routes;
mod sender;

/// The shared verifier's user and error body, under the names the body and
/// field checks use.
mod auth {
    pub use gavel_http::User;
}
mod error {
    pub use gavel_http::ApiError;
}

use crate::ProducerError;
use gavel_http::{Authenticates, ServeOptions, Verifier};
use gavel_runtime::observe::metrics;
use gavel_runtime::{Config, Shutdown};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use key_store::migrations;
pub use routes::BODY_LIMIT;

/// Bound on Kafka's acknowledgement of a command (the producer's delivery
/// timeout); a request may take its outcome wait plus this.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers share.
pub struct ApiState {
    verifier: Verifier,
    sender: sender::Sender,
    outcomes: Arc<outcomes::Outcomes>,
    keys: key_store::KeyStore,
    command_timeout: Duration,
}

impl Authenticates for ApiState {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }
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
    let options = ServeOptions::from_settings(&config.http);
    if options.request_timeout <= config.command_timeout + DELIVERY_TIMEOUT {
        return Err(ProducerError::CommandApi(format!(
            "GAVEL_HTTP_REQUEST_TIMEOUT_MS ({:?}) must exceed GAVEL_COMMAND_TIMEOUT_MS plus \
             Kafka's {DELIVERY_TIMEOUT:?} delivery bound, or answers would be cut off",
            options.request_timeout
        )));
    }
    let verifier = Verifier::start(&config, address, &shutdown).await?;
    let keys = key_store::KeyStore::start(&config, &shutdown).await?;
    let outcomes = outcomes::Outcomes::new();
    let reader_stop = Shutdown::new();
    // Positioned before the first request is accepted: no outcome is missed.
    let reader = outcomes::start(&config, Arc::clone(&outcomes), reader_stop.clone()).await?;
    let state = Arc::new(ApiState {
        verifier,
        sender: sender::Sender::connect(&config, DELIVERY_TIMEOUT).await?,
        outcomes,
        keys,
        command_timeout: config.command_timeout,
    });
    tracing::info!(%address, topic = %config.topics.commands, "command api listening");
    let served = gavel_http::serve(
        listener,
        routes::router(state),
        options,
        metrics::command_api(),
        shutdown,
    )
    .await;
    reader_stop.trigger();
    if let Err(error) = reader.await {
        tracing::warn!(%error, "outcome reader ended abnormally");
    }
    tracing::info!("command api stopped");
    Ok(served?)
}
