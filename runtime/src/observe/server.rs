//! The worker's HTTP endpoint: `/metrics`, `/health`, `/ready`.

use super::{lag, metrics, Readiness};
use crate::{Config, Result, RuntimeError};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the lag monitor measures: often enough for a dashboard and an
/// autoscaler, rare enough to cost the broker nothing.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// A running metrics/health server and the tasks tied to it.
pub struct Observer {
    /// Hand a clone to the worker loop.
    pub readiness: Readiness,
    /// Where the server listens (the real port when `GAVEL_METRICS_ADDR` asked for 0).
    pub addr: SocketAddr,
    config: Config,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds `config.metrics_addr` and serves this worker's probes and metrics.
pub async fn serve(config: &Config, worker: &str) -> Result<Observer> {
    let readiness = Readiness::new(worker);
    let listener = tokio::net::TcpListener::bind(&config.metrics_addr)
        .await
        .map_err(|e| RuntimeError::Config(format!("binding {}: {e}", config.metrics_addr)))?;
    let addr = listener.local_addr()?;
    let app = router(readiness.clone());
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics server stopped");
        }
    });
    tracing::info!(worker, "metrics listening on {addr}");
    Ok(Observer {
        readiness,
        addr,
        config: config.clone(),
        tasks: vec![server],
    })
}

impl Observer {
    /// Publishes `group`'s lag on `topics` every few seconds until dropped; a
    /// broker it cannot reach marks the worker not ready ("kafka unreachable").
    pub fn watch_lag(&mut self, group: &str, topics: &[&str]) {
        let target = lag::Target {
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        let task = lag::spawn(
            self.config.clone(),
            vec![target],
            LAG_INTERVAL,
            Some(self.readiness.clone()),
        );
        self.tasks.push(task);
    }

    /// Lag of several groups at once (the `gavel lag-exporter` role).
    pub fn watch_lag_of(&mut self, targets: Vec<lag::Target>) {
        let task = lag::spawn(self.config.clone(), targets, LAG_INTERVAL, None);
        self.tasks.push(task);
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(readiness)
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(),
    )
        .into_response()
}

async fn health(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report();
    let status = if report.live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}
