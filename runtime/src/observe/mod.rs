//! Observability every worker shares: Prometheus metrics (one module defines
//! them all), `/metrics`, `/health` and `/ready` on `GAVEL_METRICS_ADDR`, and the
//! consumer-lag monitor.
//!
//! Wiring a worker takes three lines:
//!
//! ```ignore
//! let mut obs = gavel_runtime::observe::serve(&config, "projector").await?;
//! obs.watch_lag(&group, &[&config.topics.events]);     // lag gauges for this group
//! run_worker(config, shutdown, obs.readiness.clone()).await?;
//! ```
//!
//! and inside the worker:
//!
//! ```ignore
//! readiness.set_started();                  // loop running: /ready may turn 200
//! readiness.set_restoring(true);            // /ready 503 "restoring assigned partitions"
//! readiness.set_dependency("postgres", Err(e.to_string()));  // 503 with the reason
//! readiness.beat();                         // once per loop turn: /health stays 200
//! metrics::project().consumed.inc_by(n);    // typed metric handles, see `metrics`
//! ```
//!
//! The server and the lag monitor stop when the [`Observer`] is dropped.

pub mod lag;
pub mod metrics;
mod readiness;
mod server;

pub use lag::{measure_group, PartitionLag};
pub use readiness::{Readiness, Report};
pub use server::{serve, Observer};
