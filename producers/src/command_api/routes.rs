//! The HTTP handlers. Each one checks, in order: the token (401), the path
//! (404 for an id that cannot exist), the body's size (413), the
//! Idempotency-Key's form (400), the body's fields (400/422) and who acts
//! (403), the key's binding to this very request (422); only then is anything
//! produced, so a refused request leaves no trace in Kafka.

use super::answer::{accepted_later, answer, replay, respond};
use super::body::{self, Parsed};
use super::error::ApiError;
use super::idempotency::{self, Binding, Key};
use super::key_store::StoredAnswer;
use super::{auth::User, orders, ApiState};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use gavel_domain::{TenantId, UserId};
use gavel_runtime::envelope::CommandMeta;
use serde_json::json;
use std::sync::Arc;

/// Commands are small; anything bigger is a mistake or an attack.
pub const BODY_LIMIT: usize = 16 * 1024;

type Body = Result<Bytes, BytesRejection>;
type AuctionPath = Result<Path<String>, PathRejection>;

pub fn router(state: Arc<ApiState>) -> Router {
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
        .with_state(state)
}

/// What a command request is, for its key binding.
struct Request<'a> {
    route: &'static str,
    key: Option<Key>,
    body: &'a Bytes,
}

async fn create(
    State(state): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let route = ("POST /auctions", StatusCode::CREATED);
    command_route(&state, &user, &headers, body, route, |body, key| {
        // Without an auction id in the body, a retry must name the same auction.
        body::create(&user, body, idempotency::new_id("auc", &user, key))
    })
    .await
}

async fn start(
    State(state): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    path: AuctionPath,
    body: Body,
) -> Result<Response, ApiError> {
    let id = auction_id(path)?;
    let route = ("POST /auctions/{id}/start", StatusCode::OK);
    command_route(&state, &user, &headers, body, route, |body, _| {
        body::start(id, body)
    })
    .await
}

async fn bid(
    State(state): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    path: AuctionPath,
    body: Body,
) -> Result<Response, ApiError> {
    let id = auction_id(path)?;
    let route = ("POST /auctions/{id}/bids", StatusCode::OK);
    command_route(&state, &user, &headers, body, route, |body, _| {
        body::bid(&user, id, body)
    })
    .await
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    path: AuctionPath,
    body: Body,
) -> Result<Response, ApiError> {
    let id = auction_id(path)?;
    let route = ("POST /auctions/{id}/cancel", StatusCode::OK);
    command_route(&state, &user, &headers, body, route, |body, _| {
        body::cancel(id, body)
    })
    .await
}

/// The common path of the auction commands: the body and the key are read,
/// `parse` makes the command, `execute` sends it. `route` is the route
/// template and the status of success.
async fn command_route(
    state: &ApiState,
    user: &User,
    headers: &HeaderMap,
    body: Body,
    (route, success): (&'static str, StatusCode),
    parse: impl FnOnce(&Bytes, Option<&Key>) -> Result<Parsed, ApiError>,
) -> Result<Response, ApiError> {
    let body = bytes(body)?;
    let key = Key::from_headers(headers)?;
    let parsed = parse(&body, key.as_ref())?;
    let request = Request {
        route,
        key,
        body: &body,
    };
    execute(state, user, request, parsed, success).await
}

/// `POST /orders`: 202 once order.created is in the log (the saga runs after).
async fn order(
    State(state): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = bytes(body)?;
    let key = Key::from_headers(&headers)?;
    let command_id = idempotency::command_id(&user, key.as_ref());
    let order_id = idempotency::new_id("order", &user, key.as_ref());
    let order = orders::order(&user, order_id, &body)?;
    if let Some(key) = &key {
        let binding = Binding::new("POST /orders", "", &body);
        if let Some(first) = state.keys.claim(&user, key, &binding).await? {
            return Ok(replay(first));
        }
    }
    state
        .sender
        .send_order(&order, &user.tenant, &command_id)
        .await?;
    let accepted = StoredAnswer {
        status: StatusCode::ACCEPTED,
        body: json!({
            "order_id": order.order_id.as_str(),
            "command_id": command_id,
            "total": {"amount_minor": order.total.minor(), "currency": order.total.currency().as_str()},
            "status": "accepted",
        }),
    };
    if let Some(key) = &key {
        state.keys.record(&user, key, &accepted).await;
    }
    Ok(respond(accepted))
}

/// `GET /commands/{id}`: the outcome of a command answered 202 earlier.
async fn command(
    State(state): State<Arc<ApiState>>,
    user: User,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(command_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let unknown = || {
        ApiError::not_found(
            "no outcome for this command id: it may still be pending (poll again) \
             or it expired (outcomes are kept for 10 minutes)",
        )
    };
    // Another user's command (of this tenant or another) is as unknown as a
    // missing one: its outcome names auctions, amounts and refusals.
    let outcome = state
        .outcomes
        .recent(&command_id)
        .filter(|o| o.tenant_id == user.tenant && o.actor_id == user.id)
        .ok_or_else(unknown)?;
    let success = match outcome.command_type.as_str() {
        "CreateAuction" => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok(respond(answer(&outcome, success)))
}

/// Binds the key, registers the waiter, produces, waits: the outcome's
/// answer (kept for retries of the key), or 202.
async fn execute(
    state: &ApiState,
    user: &User,
    request: Request<'_>,
    parsed: Parsed,
    success: StatusCode,
) -> Result<Response, ApiError> {
    let aggregate_id = parsed.command.auction_id().as_str();
    if let Some(key) = &request.key {
        let binding = Binding::new(request.route, aggregate_id, request.body);
        if let Some(first) = state.keys.claim(user, key, &binding).await? {
            return Ok(replay(first));
        }
    }
    let command_id = idempotency::command_id(user, request.key.as_ref());
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
    let Some(outcome) = waiter.wait(state.command_timeout).await else {
        return Ok(accepted_later(&command_id, aggregate_id));
    };
    let decided = answer(&outcome, success);
    if let Some(key) = &request.key {
        state.keys.record(user, key, &decided).await;
    }
    Ok(respond(decided))
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
