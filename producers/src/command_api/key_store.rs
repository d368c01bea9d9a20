//! Where an `Idempotency-Key` is bound to its first request, and that
//! request's answer kept: a Postgres table in `GAVEL_POSTGRES_SCHEMA`.
//!
//! Why Postgres: the command API runs as several replicas behind one Service
//! and restarts at any time, so a retry may reach another replica or a new
//! process; a binding held in memory would be missed exactly then. The table
//! is shared by every replica, survives restarts, and its primary key makes
//! the first claim of a key atomic. Kafka alone cannot answer "was this key
//! used for another body" before producing. Rows live `GAVEL_IDEMPOTENCY_TTL_SECS`
//! (24 h by default, like common payment APIs); a background task deletes
//! older ones, and an expired key may be used afresh.
//!
//! A row also keeps the first definitive answer (an outcome's status and
//! body), so a retry is answered from here without producing anything, even
//! after the aggregate's own per-auction dedupe window has moved on.

use super::auth::User;
use super::error::ApiError;
use super::idempotency::{Binding, Key};
use crate::ProducerError;
use axum::http::StatusCode;
use gavel_runtime::postgres::{self, Migration};
use gavel_runtime::{Config, Shutdown};
use serde_json::Value;
use std::time::Duration;

const POOL_SIZE: usize = 8;
const CLEANUP_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per statement, so cleanup never holds long locks.
const CLEANUP_BATCH: i64 = 10_000;
/// Bound on each statement: a stuck database is a 503, not a hung request.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 400,
        name: "idempotency_keys",
        sql: "CREATE TABLE IF NOT EXISTS {schema}.idempotency_keys (
                  tenant_id text NOT NULL,
                  user_id text NOT NULL,
                  idempotency_key text NOT NULL,
                  route text NOT NULL,
                  target text NOT NULL,
                  body_sha256 bytea NOT NULL,
                  answer_status smallint,
                  answer_body jsonb,
                  created_at timestamptz NOT NULL DEFAULT now(),
                  PRIMARY KEY (tenant_id, user_id, idempotency_key));
              CREATE INDEX IF NOT EXISTS idempotency_keys_created_at
                  ON {schema}.idempotency_keys (created_at);",
    }]
}

/// The answer given to a key's first request, replayed to its retries.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    pub status: StatusCode,
    pub body: Value,
}

pub struct KeyStore {
    pool: deadpool_postgres::Pool,
    schema: String,
    sql: Statements,
    ttl_secs: i64,
}

/// The per-request statements, written once. Each connection prepares them
/// once too (deadpool's statement cache): sent as text, every request cost
/// Postgres a parse and a plan twice over, and at 2,000 commands/s the
/// database's share of the two cores outgrew the command API's own.
struct Statements {
    claim: String,
    first: String,
    record: String,
}

impl Statements {
    fn for_schema(s: &str) -> Self {
        Self {
            // A conflicting row is taken over only when it has expired.
            claim: format!(
                "INSERT INTO {s}.idempotency_keys AS k
                     (tenant_id, user_id, idempotency_key, route, target, body_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, user_id, idempotency_key) DO UPDATE
                     SET route = excluded.route, target = excluded.target,
                         body_sha256 = excluded.body_sha256, answer_status = NULL,
                         answer_body = NULL, created_at = now()
                     WHERE k.created_at < now() - $7::int8 * interval '1 second'"
            ),
            first: format!(
                "SELECT route, target, body_sha256, answer_status, answer_body::text
                 FROM {s}.idempotency_keys
                 WHERE tenant_id = $1 AND user_id = $2 AND idempotency_key = $3"
            ),
            record: format!(
                "UPDATE {s}.idempotency_keys SET answer_status = $4, answer_body = $5::text::jsonb
                 WHERE tenant_id = $1 AND user_id = $2 AND idempotency_key = $3
                   AND answer_status IS NULL"
            ),
        }
    }
}

impl KeyStore {
    /// Checks that `gavel migrate` made the table (the API's login may not
    /// CREATE) and starts the cleanup of expired keys.
    pub async fn start(config: &Config, shutdown: &Shutdown) -> Result<Self, ProducerError> {
        let client = postgres::connect(config).await?;
        postgres::require_migrated(&client, &config.postgres_schema, &migrations()).await?;
        let store = Self {
            pool: postgres::pool(config, POOL_SIZE)?,
            schema: config.postgres_schema.clone(),
            sql: Statements::for_schema(&config.postgres_schema),
            ttl_secs: i64::try_from(config.http.idempotency_ttl.as_secs()).unwrap_or(i64::MAX),
        };
        store.clean_up_every(CLEANUP_EVERY, shutdown.clone());
        Ok(store)
    }

    /// Binds `key` to `binding` if it is new (or expired): Ok(None), go on.
    /// A key already bound to the same request: Ok(Some(answer)) when its
    /// first answer is known (replay it), Ok(None) otherwise (send the same
    /// command again; the aggregate dedupes it). Bound to another request: 422.
    pub async fn claim(
        &self,
        user: &User,
        key: &Key,
        binding: &Binding,
    ) -> Result<Option<StoredAnswer>, ApiError> {
        let client = self.client().await?;
        let insert = bounded(client.prepare_cached(&self.sql.claim)).await?;
        // Twice at most: the row may expire and be cleaned up in between.
        for _ in 0..2 {
            let args: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                &user.tenant,
                &user.id,
                &key.as_str(),
                &binding.route,
                &binding.target,
                &binding.body_sha256,
                &self.ttl_secs,
            ];
            if bounded(client.execute(&insert, &args)).await? == 1 {
                return Ok(None);
            }
            // Only a key already bound reads its first request.
            let select = bounded(client.prepare_cached(&self.sql.first)).await?;
            let first = bounded(client.query_opt(&select, &args[..3])).await?;
            let Some(row) = first else { continue };
            let first_binding = Binding {
                route: row.get(0),
                target: row.get(1),
                body_sha256: row.get(2),
            };
            if let Some(reason) = binding.mismatch(&first_binding) {
                return Err(ApiError::unprocessable(reason));
            }
            return Ok(stored_answer(row.get(3), row.get(4)));
        }
        Err(ApiError::unavailable(
            "Idempotency-Key could not be bound; retry",
        ))
    }

    /// Keeps the first definitive answer of `key`'s request. A failure only
    /// costs a later retry a trip through Kafka, so it is logged, not raised.
    pub async fn record(&self, user: &User, key: &Key, answer: &StoredAnswer) {
        let status = answer.status.as_u16() as i16;
        let body = answer.body.to_string();
        let recorded = async {
            let client = self.client().await?;
            let update = bounded(client.prepare_cached(&self.sql.record)).await?;
            let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&user.tenant, &user.id, &key.as_str(), &status, &body];
            bounded(client.execute(&update, &args)).await.map(drop)
        };
        if let Err(error) = recorded.await {
            tracing::warn!(
                reason = error.reason(),
                "answer of an Idempotency-Key not kept"
            );
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, ApiError> {
        match tokio::time::timeout(STATEMENT_TIMEOUT, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => {
                tracing::warn!(%error, "idempotency store unavailable");
                Err(unavailable())
            }
            Err(_) => Err(unavailable()),
        }
    }

    fn clean_up_every(&self, every: Duration, shutdown: Shutdown) {
        let (pool, ttl_secs) = (self.pool.clone(), self.ttl_secs);
        let sql = format!(
            "DELETE FROM {s}.idempotency_keys WHERE ctid IN (
                 SELECT ctid FROM {s}.idempotency_keys
                 WHERE created_at < now() - $1::int8 * interval '1 second' LIMIT $2)",
            s = self.schema
        );
        tokio::spawn(async move {
            loop {
                match clean_up(&pool, &sql, ttl_secs).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "expired idempotency keys removed"),
                    Err(error) => tracing::warn!(%error, "idempotency key cleanup failed"),
                }
                tokio::select! {
                    _ = shutdown.triggered() => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
    }
}

async fn clean_up(pool: &deadpool_postgres::Pool, sql: &str, ttl_secs: i64) -> Result<u64, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let deleted = client
            .execute(sql, &[&ttl_secs, &CLEANUP_BATCH])
            .await
            .map_err(|e| e.to_string())?;
        total += deleted;
        if deleted < CLEANUP_BATCH as u64 {
            return Ok(total);
        }
    }
}

fn stored_answer(status: Option<i16>, body: Option<String>) -> Option<StoredAnswer> {
    let status = StatusCode::from_u16(u16::try_from(status?).ok()?).ok()?;
    let body = serde_json::from_str(&body?).ok()?;
    Some(StoredAnswer { status, body })
}

fn unavailable() -> ApiError {
    ApiError::unavailable("idempotency store unavailable; retry with the same Idempotency-Key")
}

async fn bounded<T>(
    statement: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, statement).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::warn!(%error, "idempotency store statement failed");
            Err(unavailable())
        }
        Err(_) => Err(unavailable()),
    }
}
