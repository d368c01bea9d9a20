//! The one error shape of both HTTP APIs: `{"error": "reason"}` with a status,
//! plus members such as `fields` (validation errors) or `rejection_code` (the
//! aggregate's rejections). A response value, not a failure of the process, so
//! it is not part of the crate's error enum.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(reason.into()));
        Self { status, body }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason given to the client.
    pub fn reason(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or("")
    }

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }

    pub fn unprocessable(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, reason)
    }

    pub fn too_many_requests(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, reason)
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    /// 422 naming every field that failed and why.
    pub fn invalid_fields(fields: BTreeMap<String, String>) -> Self {
        Self::unprocessable("the request has invalid fields").with("fields", json!(fields))
    }

    /// Adds a member to the body (rejection code, command id, ...).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.body.insert(key.to_owned(), value.into());
        self
    }

    /// Details go to the log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "http api internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The status and JSON body, for answers that are stored and replayed.
    pub fn into_parts(self) -> (StatusCode, Value) {
        (self.status, Value::Object(self.body))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(Value::Object(self.body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: tell the client which scheme it must use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gavel\""),
            );
        }
        response
    }
}
