//! How an outcome becomes an HTTP answer.
//!
//! | outcome | status |
//! |---|---|
//! | accepted | 201 (create) / 200, `{"command_id", "aggregate_id", "new_version"}` |
//! | `AUCTION_NOT_FOUND`, `TENANT_MISMATCH` | 404 (both read "not found": another tenant's auction is not confirmed to exist) |
//! | `INVALID_AUCTION`, `INVALID_FIELD`, `INVALID_MONEY`, `MALFORMED_COMMAND`, `MISSING_ACTOR`, `ACTOR_MISMATCH`, `KEY_MISMATCH`, `WRONG_PARTITION` | 422: the command itself is wrong |
//! | `NOT_SELLER` | 403: only the auction's seller may do this |
//! | any other rejection (`BID_TOO_LOW`, `INVALID_STATUS`, `VERSION_CONFLICT`, ...) | 409: valid, but the auction's state refuses it |
//! | no outcome within `GAVEL_COMMAND_TIMEOUT_MS` | 202 with `Location: /commands/{id}` |
//!
//! Rejections carry `{"error": reason, "rejection_code", "command_id", "aggregate_id"}`.
//! A retry of an `Idempotency-Key` whose first answer is known gets that answer
//! again, with `Idempotent-Replayed: true`.

use super::error::ApiError;
use super::key_store::StoredAnswer;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gavel_runtime::auction_codec::CommandOutcome;
use serde_json::json;

const NOT_FOUND: &str = "AUCTION_NOT_FOUND";
/// Marks an answer replayed for a retried `Idempotency-Key`.
const REPLAYED_HEADER: &str = "idempotent-replayed";

pub fn outcome_status(outcome: &CommandOutcome, success: StatusCode) -> StatusCode {
    if outcome.accepted {
        return success;
    }
    match outcome.rejection_code.as_deref() {
        Some(NOT_FOUND | "TENANT_MISMATCH") => StatusCode::NOT_FOUND,
        Some(
            "INVALID_AUCTION" | "INVALID_FIELD" | "INVALID_MONEY" | "MALFORMED_COMMAND"
            | "MISSING_ACTOR" | "ACTOR_MISMATCH" | "KEY_MISMATCH" | "WRONG_PARTITION",
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        Some("NOT_SELLER") => StatusCode::FORBIDDEN,
        _ => StatusCode::CONFLICT,
    }
}

/// The answer to a decided command: its status and JSON body.
pub fn answer(outcome: &CommandOutcome, success: StatusCode) -> StoredAnswer {
    let status = outcome_status(outcome, success);
    if outcome.accepted {
        let body = json!({
            "command_id": outcome.command_id,
            "aggregate_id": outcome.aggregate_id,
            "new_version": outcome.new_version,
        });
        return StoredAnswer { status, body };
    }
    let (code, reason) = match outcome.rejection_code.as_deref() {
        Some("TENANT_MISMATCH") => (NOT_FOUND, "no such auction"),
        code => (
            code.unwrap_or("REJECTED"),
            outcome.reason.as_deref().unwrap_or("rejected"),
        ),
    };
    let (status, body) = ApiError::new(status, reason)
        .with("rejection_code", code)
        .with("command_id", outcome.command_id.clone())
        .with("aggregate_id", outcome.aggregate_id.clone())
        .into_parts();
    StoredAnswer { status, body }
}

pub fn respond(answer: StoredAnswer) -> Response {
    (answer.status, Json(answer.body)).into_response()
}

/// A stored answer given again to a retry of its `Idempotency-Key`.
pub fn replay(answer: StoredAnswer) -> Response {
    let mut response = respond(answer);
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// The command is in the log but undecided yet: poll its location.
pub fn accepted_later(command_id: &str, aggregate_id: &str) -> Response {
    let location = format!("/commands/{command_id}");
    let body = json!({
        "command_id": command_id,
        "aggregate_id": aggregate_id,
        "status": "pending",
        "location": location,
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    // Command ids are UUIDs, so the header value is always valid.
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
