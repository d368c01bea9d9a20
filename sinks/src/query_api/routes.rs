//! The HTTP handlers. Every data route takes the caller's [`User`] first, so
//! a request without a valid token is refused (401) before anything else is
//! looked at, and every read is scoped to the token's tenant.

use super::error::{from_pool, ApiError};
use super::params::ListParams;
use super::stream::{self, Watch};
use super::user_bids::{self, UserBidsParams};
use super::{rows, ApiState};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use gavel_http::{StreamLimiter, StreamPermit, User};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
const POOL_WAIT: Duration = Duration::from_secs(5);
const MAX_ID_LEN: usize = 256;

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/auctions", get(list_auctions))
        .route("/auctions/{id}", get(auction_details))
        .route("/auctions/{id}/live", get(live))
        .route("/users/{id}/bids", get(bids_of_user))
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
            Ok(client) => client.map_err(from_pool),
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

fn path_id(path: Result<Path<String>, PathRejection>, what: &str) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ApiError::bad_request(format!(
            "{what} must be 1 to {MAX_ID_LEN} characters"
        )));
    }
    Ok(id)
}

/// `GET /auctions?status=&sort=&order=&limit=&cursor=`
async fn list_auctions(
    user: User,
    State(state): State<Arc<ApiState>>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let params = ListParams::parse(&pairs, &state.cursors).map_err(ApiError::bad_request)?;
    let client = state.client().await?;
    let (items, next_cursor) = rows::list(
        &**client,
        &state.schema,
        &user.tenant,
        &params,
        &state.cursors,
    )
    .await?;
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// `GET /users/{id}/bids?status=&limit=&cursor=`: a user's own bids; an
/// operator may read any user's of its tenant.
async fn bids_of_user(
    caller: User,
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let user = path_id(path, "user id")?;
    if user != caller.id && !caller.is_operator() {
        return Err(ApiError::forbidden(
            "a user may read only its own bids (or needs the operator role)",
        ));
    }
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let params =
        UserBidsParams::parse(&user, &pairs, &state.cursors).map_err(ApiError::bad_request)?;
    let client = state.client().await?;
    let (items, next_cursor) = user_bids::page(
        &**client,
        &state.schema,
        &caller.tenant,
        &user,
        &params,
        &state.cursors,
    )
    .await?;
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// `GET /auctions/{id}`: another tenant's auction is a 404 like a missing one.
async fn auction_details(
    user: User,
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<rows::AuctionView>, ApiError> {
    let id = path_id(path, "auction id")?;
    let client = state.client().await?;
    rows::details(&**client, &state.schema, &user.tenant, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("auction not found"))
}

/// `GET /auctions/{id}/live`: Server-Sent Events, within the per-user and
/// per-client caps on open streams. Subscribes before reading the snapshot,
/// so nothing committed in between is lost (duplicates are dropped by version).
async fn live(
    user: User,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = path_id(path, "auction id")?;
    let permits = vec![
        permit(
            &state.user_streams,
            format!("{}\0{}", user.tenant, user.id),
            "this user",
        )?,
        permit(
            &state.client_streams,
            peer.ip().to_string(),
            "this client address",
        )?,
    ];
    let receiver = state.hub.subscribe();
    let snapshot = {
        let client = state.client().await?;
        rows::details(&**client, &state.schema, &user.tenant, &id)
            .await?
            .ok_or_else(|| ApiError::not_found("auction not found"))?
    };
    // Recent events again, now that the snapshot is known: those newer than it
    // are sent first; the receiver taken before the read covers the rest.
    let backlog = state.hub.recent(&user.tenant, &id);
    let watch = Watch {
        until: tokio::time::Instant::now() + user.valid_for(),
        tenant: user.tenant,
        shutdown: state.shutdown.clone(),
        permits,
    };
    let events = stream::events(&snapshot, backlog, receiver, watch);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

fn permit(
    limiter: &Arc<StreamLimiter>,
    key: String,
    whose: &str,
) -> Result<StreamPermit, ApiError> {
    limiter.try_open(key).ok_or_else(|| {
        ApiError::too_many_requests(format!(
            "too many open live streams for {whose} (at most {}); close one first",
            limiter.cap()
        ))
    })
}
