//! Every Prometheus metric of Gavel, defined here and nowhere else, named
//! `gavel_<component>_<name>_<unit>`. Other crates call the typed handles
//! (`metrics::aggregate().consumed.inc_by(n)`), never a metric name.
//!
//! The `prometheus` crate (without its protobuf feature) was chosen over
//! `prometheus-client` because its label vectors are plain values we can hold in
//! statics and update from blocking threads without an encoder derive per label set.

use prometheus::{
    exponential_buckets, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec,
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, Result, TextEncoder,
};
use std::sync::OnceLock;

/// The metrics every consuming stage shares (aggregate, project, sink,
/// event_store, saga), under its own component prefix.
pub struct Stage {
    /// Records consumed from Kafka.
    pub consumed: IntCounter,
    /// Records produced (events, outcomes, views) or rows written.
    pub produced: IntCounter,
    /// Failures by kind (`undecodable`, `unknown-schema`, `invalid`,
    /// `registry-unavailable`, `postgres-unavailable`, `transaction`, ...).
    pub errors: IntCounterVec,
    /// Records sent to the stage's dead-letter topic, by error class.
    pub dead_letters: IntCounterVec,
    /// Transient failures retried in place, by kind.
    pub retries: IntCounterVec,
    /// Wall time to process and commit one batch.
    pub batch_seconds: Histogram,
    /// Records per batch (one transaction / one Postgres commit).
    pub batch_records: Histogram,
    /// Kafka (or Postgres) transactions by result: `commit` or `abort`.
    pub transactions: IntCounterVec,
    /// Changelog or state records replayed while restoring partitions.
    pub restored_records: IntCounter,
    /// Partitions currently being restored (readiness is false meanwhile).
    pub restoring_partitions: IntGauge,
}

/// Consumer lag, measured by the lag monitor from outside the consuming loop.
pub struct Consumer {
    /// High watermark minus committed offset, per group/topic/partition.
    pub lag_records: IntGaugeVec,
    /// Age of the oldest unprocessed record in seconds (0 when caught up).
    pub lag_seconds: GaugeVec,
    /// Failed lag measurements (broker unreachable, group unknown).
    pub monitor_errors: IntCounter,
}

pub struct Worker {
    /// 1 while the worker's /ready answers 200.
    pub ready: IntGaugeVec,
    /// Unix time of the last loop heartbeat, for liveness alerts.
    pub heartbeat_seconds: GaugeVec,
}

pub struct Http {
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
}

pub struct Saga {
    /// Instances currently in each state (`started`, `awaiting_payment`,
    /// `compensating`, `completed`, `failed`, ...).
    pub instances: IntGaugeVec,
    /// Sagas finished, by outcome (`completed`, `compensated`, `failed`, `timed_out`).
    pub outcomes: IntCounterVec,
    /// Start to finish of one saga.
    pub duration_seconds: Histogram,
    /// Unix time of the oldest saga not finished yet (0 when none): "stuck" alerts.
    pub oldest_open_seconds: Gauge,
    /// Inputs that changed nothing (unknown saga, duplicate or out-of-order
    /// reply, invalid trigger), by rejection code.
    pub rejected_inputs: IntCounterVec,
    /// Step deadlines and retry backoffs that fired.
    pub timers_fired: IntCounter,
    pub stage: Stage,
}

/// Saga participants (`gavel participant <name>`).
pub struct Participants {
    /// Step commands handled, by participant, direction (`do`, `undo`) and
    /// result (`applied`, `repeat`, `refused`, `injected-failure`, `blocked`).
    pub commands: IntCounterVec,
    pub stage: Stage,
}

pub struct Dlq {
    /// Records re-produced to their original topic by `gavel dlq replay`.
    pub replayed: IntCounterVec,
}

/// `gavel outbox-relay`: Postgres outbox rows to Kafka.
pub struct OutboxRelay {
    /// Rows claimed from the outbox (a row re-claimed after a crash counts again).
    pub claimed: IntCounter,
    /// Records acknowledged by Kafka (re-sends included).
    pub published: IntCounter,
    /// Rows dead-lettered instead of published, by reason
    /// (`unknown-topic`, `too-large`, `invalid-row`, `rejected`).
    pub dead_letters: IntCounterVec,
    /// Failures by kind (`postgres-unavailable`, `kafka`); the batch is retried.
    pub errors: IntCounterVec,
    /// Claim, publish, wait for acknowledgements and mark sent: one transaction.
    pub batch_seconds: Histogram,
    /// Rows per relay transaction.
    pub batch_rows: Histogram,
    /// Rows not sent yet (sampled every few seconds).
    pub backlog_rows: IntGauge,
    /// Age of the oldest row not sent yet (0 when none).
    pub oldest_unsent_seconds: Gauge,
    /// How long the batch in flight has waited for Kafka's acknowledgements
    /// (0 between batches). Deliveries never time out, so a broker refusing
    /// writes shows here, not as an error.
    pub ack_wait_seconds: Gauge,
}

pub struct Metrics {
    registry: Registry,
    pub aggregate: Stage,
    pub project: Stage,
    pub sink: Stage,
    pub event_store: Stage,
    pub saga: Saga,
    pub participant: Participants,
    pub consumer: Consumer,
    pub worker: Worker,
    pub query_api: Http,
    pub command_api: Http,
    pub dlq: Dlq,
    pub outbox_relay: OutboxRelay,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics (registered on first use).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| match Metrics::new() {
        Ok(metrics) => metrics,
        // Only a malformed literal name, label or bucket list fails here, and
        // the unit test below builds the very same set: a bug, never an input.
        Err(error) => panic!("gavel metric definitions are invalid: {error}"),
    })
}

pub fn aggregate() -> &'static Stage {
    &get().aggregate
}
pub fn project() -> &'static Stage {
    &get().project
}
pub fn sink() -> &'static Stage {
    &get().sink
}
pub fn event_store() -> &'static Stage {
    &get().event_store
}
pub fn saga() -> &'static Saga {
    &get().saga
}
pub fn participant() -> &'static Participants {
    &get().participant
}
pub fn consumer() -> &'static Consumer {
    &get().consumer
}
pub fn worker() -> &'static Worker {
    &get().worker
}
pub fn query_api() -> &'static Http {
    &get().query_api
}
pub fn command_api() -> &'static Http {
    &get().command_api
}
pub fn dlq() -> &'static Dlq {
    &get().dlq
}
pub fn outbox_relay() -> &'static OutboxRelay {
    &get().outbox_relay
}

/// Everything registered, in the Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&get().registry.gather(), &mut out) {
        tracing::warn!(%error, "encoding metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Latency buckets from 0.5 ms to ~16 s: batch commits and HTTP requests.
fn seconds_buckets() -> Result<Vec<f64>> {
    exponential_buckets(0.0005, 2.0, 16)
}

/// Batch sizes 1 .. 32768 records.
fn record_buckets() -> Result<Vec<f64>> {
    exponential_buckets(1.0, 2.0, 16)
}

/// Builds and registers metrics under one component prefix.
struct Builder<'r> {
    registry: &'r Registry,
    prefix: String,
}

impl Builder<'_> {
    fn name(&self, name: &str) -> String {
        format!("gavel_{}_{name}", self.prefix)
    }

    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, metric: C) -> Result<C> {
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter> {
        self.add(IntCounter::new(self.name(name), help)?)
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
        self.add(IntCounterVec::new(
            Opts::new(self.name(name), help),
            labels,
        )?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge> {
        self.add(IntGauge::new(self.name(name), help)?)
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(self.name(name), help), labels)?)
    }

    fn float_gauge(&self, name: &str, help: &str) -> Result<Gauge> {
        self.add(Gauge::new(self.name(name), help)?)
    }

    fn float_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(self.name(name), help), labels)?)
    }

    fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Result<Histogram> {
        let opts = HistogramOpts::new(self.name(name), help).buckets(buckets);
        self.add(Histogram::with_opts(opts)?)
    }

    fn histogram_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec> {
        let opts = HistogramOpts::new(self.name(name), help).buckets(seconds_buckets()?);
        self.add(HistogramVec::new(opts, labels)?)
    }

    fn stage(&self) -> Result<Stage> {
        Ok(Stage {
            consumed: self.counter("consumed_records_total", "Records consumed from Kafka")?,
            produced: self.counter(
                "produced_records_total",
                "Records produced to Kafka or rows written to Postgres",
            )?,
            errors: self.counter_vec("errors_total", "Failures by kind", &["kind"])?,
            dead_letters: self.counter_vec(
                "dead_letters_total",
                "Records sent to the dead-letter topic, by error class",
                &["class"],
            )?,
            retries: self.counter_vec(
                "retries_total",
                "Transient failures retried in place, by kind",
                &["kind"],
            )?,
            batch_seconds: self.histogram(
                "batch_duration_seconds",
                "Time to process and commit one batch",
                seconds_buckets()?,
            )?,
            batch_records: self.histogram(
                "batch_size_records",
                "Records per batch",
                record_buckets()?,
            )?,
            transactions: self.counter_vec(
                "transactions_total",
                "Transactions by result (commit, abort)",
                &["result"],
            )?,
            restored_records: self.counter(
                "restored_records_total",
                "State records replayed while restoring partitions",
            )?,
            restoring_partitions: self.gauge(
                "restoring_partitions_count",
                "Partitions being restored right now",
            )?,
        })
    }

    fn outbox_relay(&self) -> Result<OutboxRelay> {
        Ok(OutboxRelay {
            claimed: self.counter("claimed_rows_total", "Outbox rows claimed")?,
            published: self.counter(
                "published_records_total",
                "Outbox records acknowledged by Kafka, re-sends included",
            )?,
            dead_letters: self.counter_vec(
                "dead_letters_total",
                "Outbox rows dead-lettered instead of published, by reason",
                &["reason"],
            )?,
            errors: self.counter_vec("errors_total", "Failed batches by kind", &["kind"])?,
            batch_seconds: self.histogram(
                "batch_duration_seconds",
                "Claim, publish and mark sent of one batch",
                seconds_buckets()?,
            )?,
            batch_rows: self.histogram("batch_size_rows", "Rows per batch", record_buckets()?)?,
            backlog_rows: self.gauge("backlog_rows", "Outbox rows not sent yet")?,
            oldest_unsent_seconds: self.float_gauge(
                "oldest_unsent_age_seconds",
                "Age of the oldest outbox row not sent yet (0 when none)",
            )?,
            ack_wait_seconds: self.float_gauge(
                "ack_wait_seconds",
                "How long the batch in flight has waited for Kafka's acknowledgements (0 between batches)",
            )?,
        })
    }

    fn http(&self) -> Result<Http> {
        Ok(Http {
            requests: self.counter_vec(
                "requests_total",
                "HTTP requests by route and status",
                &["route", "status"],
            )?,
            request_seconds: self.histogram_vec(
                "request_duration_seconds",
                "HTTP request latency by route",
                &["route"],
            )?,
        })
    }
}

impl Metrics {
    fn new() -> Result<Self> {
        let registry = Registry::new();
        let b = |prefix: &str| Builder {
            registry: &registry,
            prefix: prefix.to_owned(),
        };
        let lag_labels = &["group", "topic", "partition"];
        let (saga, consumer, worker) = (b("saga"), b("consumer"), b("worker"));
        let metrics = Self {
            aggregate: b("aggregate").stage()?,
            project: b("project").stage()?,
            sink: b("sink").stage()?,
            event_store: b("event_store").stage()?,
            saga: Saga {
                instances: saga.gauge_vec("instances_count", "Open sagas by state", &["state"])?,
                outcomes: saga.counter_vec(
                    "outcomes_total",
                    "Sagas finished, by outcome",
                    &["outcome"],
                )?,
                duration_seconds: saga.histogram(
                    "duration_seconds",
                    "Saga start to finish",
                    exponential_buckets(0.01, 2.0, 20)?,
                )?,
                oldest_open_seconds: saga.float_gauge(
                    "oldest_open_timestamp_seconds",
                    "Unix time the oldest open saga started (0 when none)",
                )?,
                rejected_inputs: saga.counter_vec(
                    "rejected_inputs_total",
                    "Inputs that changed nothing, by rejection code",
                    &["code"],
                )?,
                timers_fired: saga
                    .counter("timers_fired_total", "Step deadlines and backoffs fired")?,
                stage: saga.stage()?,
            },
            participant: {
                let participant = b("participant");
                Participants {
                    commands: participant.counter_vec(
                        "commands_total",
                        "Step commands handled, by participant, direction and result",
                        &["participant", "direction", "result"],
                    )?,
                    stage: participant.stage()?,
                }
            },
            consumer: Consumer {
                lag_records: consumer.gauge_vec(
                    "lag_records",
                    "Records the group has not processed (high watermark - committed offset)",
                    lag_labels,
                )?,
                lag_seconds: consumer.float_gauge_vec(
                    "lag_seconds",
                    "Age of the oldest record the group has not processed (0 when caught up)",
                    lag_labels,
                )?,
                monitor_errors: consumer
                    .counter("lag_monitor_errors_total", "Lag measurements that failed")?,
            },
            worker: Worker {
                ready: worker.gauge_vec("ready_bool", "1 while /ready answers 200", &["worker"])?,
                heartbeat_seconds: worker.float_gauge_vec(
                    "heartbeat_timestamp_seconds",
                    "Unix time of the worker loop's last heartbeat",
                    &["worker"],
                )?,
            },
            query_api: b("query_api").http()?,
            command_api: b("command_api").http()?,
            dlq: Dlq {
                replayed: b("dlq").counter_vec(
                    "replayed_records_total",
                    "Dead letters re-produced to their original topic",
                    &["topic"],
                )?,
            },
            outbox_relay: b("outbox_relay").outbox_relay()?,
            registry,
        };
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_once_and_follows_the_naming_rule() {
        aggregate().consumed.inc();
        consumer()
            .lag_records
            .with_label_values(&["g", "t", "0"])
            .set(3);
        let families = get().registry.gather();
        // Label vectors appear once they have a series; the plain metrics always do.
        assert!(families.len() >= 30, "{} families", families.len());
        for family in &families {
            let name = family.name();
            assert!(name.starts_with("gavel_"), "{name}");
            assert!(!name.contains("invalid"), "{name}");
        }
        let text = render();
        assert!(
            text.contains("gavel_aggregate_consumed_records_total 1"),
            "{text}"
        );
        assert!(
            text.contains("gavel_consumer_lag_records{group=\"g\",partition=\"0\",topic=\"t\"} 3")
        );
    }
}
