//! The HTTP handlers. Each one checks, in order: the token (401), the path
//! and body (400/413/422), who acts (403), the Idempotency-Key (400); only then
//! is anything produced, so a refused request leaves no trace in Kafka.

use super::answer::{accepted_later, answer, outcome_status};
use super::body::{self, Parsed};
use super::error::ApiError;
use super::{auth::User, idempotency, orders, ApiState};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use gavel_domain::{TenantId, UserId};
use gavel_runtime::envelope::CommandMeta;
use std::sync::Arc;
use std::time::Duration;

/// Commands are small; anything bigger is a mistake or an attack.
pub const BODY_LIMIT: usize = 16 * 1024;

type Body = Result<Bytes, BytesRejection>;
type AuctionPath = Result<Path<String>, PathRejection>;

pub fn router(state: Arc<ApiState>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/auctions", post(create))
        .route("/auctions/{id}/start", post(start))
        .route("/auctions/{id}/bids", post(bid))
        .route("/auctions/{id}/cancel", post(cancel))
        .route("/commands/{command_id}", get(command))
        .route("/orders", post(order))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(request_timeout, timeout))
        .with_state(state)
}

/// Bounds a whole request, a slow body upload included.
async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
    }
}

async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let user = state.verifier.user(&headers)?;
    let parsed = body::create(&user, &bytes(body)?)?;
    execute(&state, &user, &headers, parsed, StatusCode::CREATED).await
}

async fn start(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    path: AuctionPath,
    body: Body,
) -> Result<Response, ApiError> {
    let user = state.verifier.user(&headers)?;
    let parsed = body::start(auction_id(path)?, &bytes(body)?)?;
    execute(&state, &user, &headers, parsed, StatusCode::OK).await
}

async fn bid(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    path: AuctionPath,
    body: Body,
) -> Result<Response, ApiError> {
    let user = state.verifier.user(&headers)?;
    let parsed = body::bid(&user, auction_id(path)?, &bytes(body)?)?;
    execute(&state, &user, &headers, parsed, StatusCode::OK).await
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    path: AuctionPath,
    body: Body,
) -> Result<Response, ApiError> {
    let user = state.verifier.user(&headers)?;
    let parsed = body::cancel(auction_id(path)?, &bytes(body)?)?;
    execute(&state, &user, &headers, parsed, StatusCode::OK).await
}

/// `POST /orders`: 202 once order.created is in the log (the saga runs after).
async fn order(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let user = state.verifier.user(&headers)?;
    let command_id = idempotency::command_id(&user, &headers)?;
    let order = orders::order(&user, &command_id, &bytes(body)?)?;
    state
        .sender
        .send_order(&order, &user.tenant, &command_id)
        .await?;
    let body = serde_json::json!({
        "order_id": order.order_id.as_str(),
        "command_id": command_id,
        "status": "accepted",
    });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// `GET /commands/{id}`: the outcome of a command answered 202 earlier.
async fn command(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = state.verifier.user(&headers)?;
    let Path(command_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let unknown = || {
        ApiError::not_found(
            "no outcome for this command id: it may still be pending (poll again) \
             or it expired (outcomes are kept for 10 minutes)",
        )
    };
    // Another tenant's command is as unknown as a missing one.
    let outcome = state
        .outcomes
        .recent(&command_id)
        .filter(|o| o.tenant_id == user.tenant)
        .ok_or_else(unknown)?;
    let success = match outcome.command_type.as_str() {
        "CreateAuction" => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let status = outcome_status(&outcome, success);
    Ok(answer(&outcome, status))
}

/// Registers the waiter, produces, waits: the outcome's answer, or 202.
async fn execute(
    state: &ApiState,
    user: &User,
    headers: &HeaderMap,
    parsed: Parsed,
    success: StatusCode,
) -> Result<Response, ApiError> {
    let command_id = idempotency::command_id(user, headers)?;
    // The actor is the token's user, whatever the body says: the aggregate
    // decides from it who may start, cancel or bid.
    let mut meta = CommandMeta::new(
        TenantId::new(user.tenant.clone()),
        UserId::new(user.id.clone()),
    );
    meta.command_id = command_id.clone();
    meta.correlation_id = command_id.clone();
    meta.expected_version = parsed.expected_version;
    let waiter = state.outcomes.register(&command_id);
    state.sender.send(&parsed.command, &meta).await?;
    let aggregate_id = parsed.command.auction_id().as_str();
    Ok(match waiter.wait(state.command_timeout).await {
        Some(outcome) => answer(&outcome, outcome_status(&outcome, success)),
        None => accepted_later(&command_id, aggregate_id),
    })
}

fn bytes(body: Body) -> Result<Bytes, ApiError> {
    // The rejection's status is right (413 over the limit, 400 for a broken
    // upload); its text becomes our JSON error body.
    body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
}

fn auction_id(path: AuctionPath) -> Result<gavel_domain::AuctionId, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    body::path_auction_id(id)
}
