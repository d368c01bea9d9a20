//! The query API answers with the shared error body (`gavel_http::ApiError`);
//! here is how database failures become one: 503 for what passes (no
//! connection, a timeout, the read model not created yet), 500 otherwise,
//! with the details in the log only.

pub use gavel_http::ApiError;
use tokio_postgres::error::SqlState;

pub fn from_postgres(error: tokio_postgres::Error) -> ApiError {
    match error.code() {
        Some(code)
            if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME =>
        {
            ApiError::unavailable("read model not initialized yet (is the sink running?)")
        }
        Some(code) if *code == SqlState::QUERY_CANCELED => {
            ApiError::unavailable("database query timed out")
        }
        // The server's message says what failed; Display alone is "db error".
        Some(_) => ApiError::internal(
            error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.to_string()),
        ),
        None => {
            tracing::warn!(%error, "postgres unavailable");
            ApiError::unavailable("database unavailable")
        }
    }
}

pub fn from_pool(error: deadpool_postgres::PoolError) -> ApiError {
    tracing::warn!(%error, "postgres pool");
    ApiError::unavailable("database unavailable")
}
