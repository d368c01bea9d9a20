//! Postgres connections and a tiny migration runner. The SQL itself lives with
//! the sinks that own the tables; this module only knows how to apply it.

use crate::{Config, Result, RuntimeError, Shutdown};
use deadpool_postgres::{Pool, Runtime};
use tokio_postgres::{Client, NoTls};

/// One dedicated connection (a sink worker writes through exactly one), over
/// TLS when the URL says `sslmode=require`.
pub async fn connect(config: &Config) -> Result<Client> {
    let url = &config.postgres_url;
    if config.postgres_tls.required {
        let (client, connection) =
            tokio_postgres::connect(url, config.postgres_tls.connector()?).await?;
        drive(connection);
        Ok(client)
    } else {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        drive(connection);
        Ok(client)
    }
}

/// Runs a connection's I/O until it closes.
fn drive<F>(connection: F)
where
    F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres connection closed");
        }
    });
}

/// A new connection after a transient failure, retried with backoff while
/// the server stays unreachable; `Ok(None)` when shutdown was asked for
/// meanwhile. A refusal no retry cures (authentication failed, database
/// gone) is returned, so the worker exits with it instead of looping.
pub async fn reconnect(config: &Config, shutdown: &Shutdown) -> Result<Option<Client>> {
    let mut backoff = std::time::Duration::from_millis(100);
    while !shutdown.is_triggered() {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        match connect(config).await {
            Ok(client) => return Ok(Some(client)),
            Err(RuntimeError::Postgres(error)) if is_transient(&error) => {
                tracing::warn!(error = %crate::failure::describe_postgres(&error), "postgres still unavailable");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// True for errors that pass when the server comes back or calms down:
/// see [`crate::failure::of_postgres`].
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    crate::failure::of_postgres(error) == crate::failure::Failure::Transient
}

/// A pool for request-serving roles.
pub fn pool(config: &Config, size: usize) -> Result<Pool> {
    let mut pool_config = deadpool_postgres::Config::new();
    pool_config.url = Some(config.postgres_url.clone());
    pool_config.pool = Some(deadpool_postgres::PoolConfig::new(size));
    let pool = if config.postgres_tls.required {
        pool_config.create_pool(Some(Runtime::Tokio1), config.postgres_tls.connector()?)
    } else {
        pool_config.create_pool(Some(Runtime::Tokio1), NoTls)
    };
    pool.map_err(|e| RuntimeError::Pool(e.to_string()))
}

/// One schema change; `sql` may hold several statements and may use `{schema}`.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Applies the migrations not yet applied to `schema`, each in its own
/// transaction, under an advisory lock so concurrent workers do not race.
pub async fn migrate(
    client: &mut Client,
    schema: &str,
    migrations: &[Migration],
) -> Result<Vec<i32>> {
    let lock_key = advisory_key(schema);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock_key])
        .await?;
    let result = apply_pending(client, schema, migrations).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock_key])
        .await?;
    result
}

async fn apply_pending(
    client: &mut Client,
    schema: &str,
    migrations: &[Migration],
) -> Result<Vec<i32>> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await?;
    let applied: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {schema}.schema_migrations"),
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut newly = Vec::new();
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(&migration.sql.replace("{schema}", schema))
            .await?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&migration.version, &migration.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            schema,
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
        newly.push(migration.version);
    }
    Ok(newly)
}

/// Checks that every one of `migrations` is applied to `schema`. Workers do
/// not migrate: their roles may not CREATE, and only the set-up step (`gavel
/// migrate`, run as the schema's owner) changes the schema. A schema that is
/// missing, behind, or unreadable to this role stops the worker with the fix.
pub async fn require_migrated(
    client: &Client,
    schema: &str,
    migrations: &[Migration],
) -> Result<()> {
    let sql = format!("SELECT version FROM {schema}.schema_migrations");
    let applied: Vec<i32> = match client.query(&sql, &[]).await {
        Ok(rows) => rows.iter().map(|row| row.get(0)).collect(),
        Err(error) if is_transient(&error) => return Err(error.into()),
        Err(error) => {
            let reason = error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned());
            return Err(RuntimeError::NotMigrated(format!(
                "postgres schema {schema} cannot be checked ({reason}): run `gavel migrate` \
                 as the schema's owner first (it creates the tables and grants each role its rights)"
            )));
        }
    };
    let missing: Vec<String> = migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::NotMigrated(format!(
        "postgres schema {schema} lacks migrations {}: run `gavel migrate` as the schema's owner",
        missing.join(", ")
    )))
}

/// A Postgres advisory-lock key for `name`. FNV-1a: stable across processes
/// and releases, unlike std's hasher, so every worker derives the same key.
pub fn advisory_key(name: &str) -> i64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) as i64
}
