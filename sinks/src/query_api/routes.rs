//! The HTTP handlers. Every data route takes the tenant first, so a request
//! without `X-Tenant-Id` is refused before anything else is looked at.

use super::error::ApiError;
use super::params::{ListParams, Tenant};
use super::{rows, stream, ApiState};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
const POOL_WAIT: Duration = Duration::from_secs(5);

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/auctions", get(list_auctions))
        .route("/auctions/{id}", get(auction_details))
        .route("/auctions/{id}/live", get(live))
        .route("/users/{id}/bids", get(user_bids))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )
        })
        .with_state(state)
}

impl ApiState {
    async fn client(&self) -> Result<deadpool_postgres::Client, ApiError> {
        match tokio::time::timeout(POOL_WAIT, self.pool.get()).await {
            Ok(client) => Ok(client?),
            Err(_) => Err(ApiError::unavailable("database busy: no connection free")),
        }
    }
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: Postgres answers.
async fn readyz(State(state): State<Arc<ApiState>>) -> Result<&'static str, ApiError> {
    let client = state.client().await?;
    rows::ping(&**client).await?;
    Ok("ok")
}

fn auction_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::bad_request(format!("auction id: {e}")))?;
    if id.is_empty() || id.len() > 256 {
        return Err(ApiError::bad_request(
            "auction id must be 1 to 256 characters",
        ));
    }
    Ok(id)
}

/// `GET /auctions?status=&sort=&order=&limit=&cursor=`
async fn list_auctions(
    tenant: Tenant,
    State(state): State<Arc<ApiState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let params = ListParams::parse(&pairs).map_err(ApiError::bad_request)?;
    let client = state.client().await?;
    let (items, next_cursor) = rows::list(&**client, &state.schema, &tenant.0, &params).await?;
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// `GET /users/{id}/bids?status=&limit=&cursor=`
async fn user_bids(
    tenant: Tenant,
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(user) = path.map_err(|e| ApiError::bad_request(format!("user id: {e}")))?;
    if user.is_empty() || user.len() > 256 {
        return Err(ApiError::bad_request("user id must be 1 to 256 characters"));
    }
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let params =
        super::user_bids::UserBidsParams::parse(&user, &pairs).map_err(ApiError::bad_request)?;
    let client = state.client().await?;
    let (items, next_cursor) =
        super::user_bids::page(&**client, &state.schema, &tenant.0, &user, &params).await?;
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// `GET /auctions/{id}`: another tenant's auction is a 404 like a missing one.
async fn auction_details(
    tenant: Tenant,
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<rows::AuctionView>, ApiError> {
    let id = auction_id(path)?;
    let client = state.client().await?;
    rows::details(&**client, &state.schema, &tenant.0, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("auction not found"))
}

/// `GET /auctions/{id}/live`: Server-Sent Events. Subscribes before reading the
/// snapshot, so nothing committed in between is lost (duplicates are dropped
/// by version).
async fn live(
    tenant: Tenant,
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = auction_id(path)?;
    let receiver = state.hub.subscribe();
    let snapshot = {
        let client = state.client().await?;
        rows::details(&**client, &state.schema, &tenant.0, &id)
            .await?
            .ok_or_else(|| ApiError::not_found("auction not found"))?
    };
    // Recent events again, now that the snapshot is known: those newer than it
    // are sent first; the receiver taken before the read covers the rest.
    let backlog = state.hub.recent(&tenant.0, &id);
    let events = stream::events(
        &snapshot,
        backlog,
        receiver,
        tenant.0,
        state.shutdown.clone(),
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
