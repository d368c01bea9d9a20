//! A first contact with Kafka before a role starts. Credentials the brokers
//! reject and a broker certificate that does not verify never heal by
//! retrying, so they stop the worker at once with librdkafka's reason. Without
//! this, a worker hangs in its first blocking call (a transactional producer's
//! init, a metadata request) while the cause waits in a queue nobody polls.
//! A broker that is merely unreachable is left to the worker's own retries.

use crate::kafka::client_config;
use crate::{Config, Result, RuntimeError, Shutdown};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the first contact may take before the worker goes on regardless.
const FIRST_CONTACT: Duration = Duration::from_secs(15);

/// Keeps the first error that retrying cannot cure.
#[derive(Default)]
struct FirstRejection(Mutex<Option<String>>);

impl ClientContext for FirstRejection {
    fn error(&self, error: KafkaError, reason: &str) {
        let permanent = matches!(
            error,
            KafkaError::Global(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        );
        if !permanent {
            tracing::debug!(%error, reason, "kafka preflight: not connected yet");
            return;
        }
        if let Ok(mut first) = self.0.lock() {
            first.get_or_insert_with(|| reason.to_owned());
        }
    }
}

impl rdkafka::producer::ProducerContext for FirstRejection {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl FirstRejection {
    fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut first| first.take())
    }
}

/// `Err` when the brokers refuse this configuration's credentials or TLS
/// settings; `Ok` once metadata arrives, or after `FIRST_CONTACT` without an
/// answer (the worker then waits for Kafka as it always does).
/// Gives up early, without error, once `shutdown` is triggered.
pub fn check_kafka(config: &Config, shutdown: &Shutdown) -> Result<()> {
    let producer: BaseProducer<FirstRejection> =
        client_config(config).create_with_context(FirstRejection::default())?;
    let deadline = Instant::now() + FIRST_CONTACT;
    while Instant::now() < deadline && !shutdown.is_triggered() {
        // Serves the client's error events, which reach the context here.
        producer.poll(Duration::from_millis(100));
        if let Some(reason) = producer.context().take() {
            return Err(RuntimeError::Config(format!(
                "Kafka at {} refused the connection ({}): {reason}",
                config.kafka_bootstrap,
                config.kafka_security.describe()
            )));
        }
        if producer
            .client()
            .fetch_metadata(None, Duration::from_millis(500))
            .is_ok()
        {
            return Ok(());
        }
    }
    if !shutdown.is_triggered() {
        tracing::warn!(bootstrap = %config.kafka_bootstrap, "kafka did not answer the first contact: starting anyway and retrying");
    }
    Ok(())
}
