//! Dead letters: a record a stage cannot process goes to `<topic>.dlq` with
//! its key, payload and headers untouched, plus `gavel-dlq-*` headers saying
//! why, where it came from, how often it failed and which worker gave up.
//! The partition moves on; the DLQ is inspected and replayed with `gavel dlq`.

mod inspect;
mod replay;

pub use inspect::{list, pipeline_dlq_topics, show, DlqRecord, DlqSummary};
pub use replay::{replay, ReplayReport};

use crate::kafka;
use crate::{Config, Result, RuntimeError};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord};
use std::time::Duration;

pub const SUFFIX: &str = ".dlq";

pub mod header {
    pub const ERROR_CLASS: &str = "gavel-dlq-error-class";
    pub const ERROR_MESSAGE: &str = "gavel-dlq-error-message";
    pub const ORIGINAL_TOPIC: &str = "gavel-dlq-original-topic";
    pub const ORIGINAL_PARTITION: &str = "gavel-dlq-original-partition";
    pub const ORIGINAL_OFFSET: &str = "gavel-dlq-original-offset";
    pub const ORIGINAL_TIMESTAMP: &str = "gavel-dlq-original-timestamp";
    pub const ATTEMPT: &str = "gavel-dlq-attempt";
    pub const WORKER: &str = "gavel-dlq-worker";
    /// On a replayed record: the DLQ coordinates it was replayed from.
    pub const REPLAY_OF: &str = "gavel-dlq-replay-of";
    /// The original payload's size in bytes, when the letter leaves it out.
    pub const PAYLOAD_OMITTED: &str = "gavel-dlq-payload-omitted";
    /// How many original headers the letter leaves out (over the size bound).
    pub const HEADERS_OMITTED: &str = "gavel-dlq-headers-omitted";
    /// The original key's size in bytes, when the letter leaves it out.
    pub const KEY_OMITTED: &str = "gavel-dlq-key-omitted";
    pub const PREFIX: &str = "gavel-dlq-";
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Not Avro in the Confluent wire format, or a body its schema cannot read.
    Undecodable,
    /// The registry answered that the schema id does not exist.
    UnknownSchema,
    /// Decodes, but the domain cannot hold it (unknown record, bad field).
    Invalid,
    /// A transient failure that outlived its retry budget.
    TransientExhausted,
    /// An event whose previous version the event store does not hold: it
    /// cannot be chained until that version arrives (replay them in order).
    HistoryGap,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::UnknownSchema => "unknown-schema",
            Self::Invalid => "invalid",
            Self::TransientExhausted => "transient-exhausted",
            Self::HistoryGap => "history-gap",
        }
    }

    /// The class of a decode failure; `None` for transient ones, which are
    /// retried in place and never dead-lettered.
    /// What a stage logs when it dead-letters a record of this class.
    pub fn log_message(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable record dead-lettered",
            Self::UnknownSchema => {
                "record with a schema not registered for this topic dead-lettered"
            }
            Self::Invalid => "invalid record (decoded, values refused) dead-lettered",
            Self::TransientExhausted => "record dead-lettered after its retries ran out",
            Self::HistoryGap => "event dead-lettered: its previous version is not stored yet",
        }
    }

    pub fn of(error: &RuntimeError) -> Option<Self> {
        match error {
            e if e.is_transient() => None,
            RuntimeError::Registry(_) | RuntimeError::UnknownSchema(_) => Some(Self::UnknownSchema),
            RuntimeError::Mapping(_) => Some(Self::Invalid),
            _ => Some(Self::Undecodable),
        }
    }
}

/// True for a record the producer refused as larger than `message.max.bytes`
/// (locally or from the broker): that one record cannot be sent, nothing else is wrong.
pub fn is_too_large(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{MessageBatchTooLarge, MessageSizeTooLarge};
    matches!(
        error.rdkafka_error_code(),
        Some(MessageSizeTooLarge | MessageBatchTooLarge)
    )
}

/// The DLQ of `topic`.
pub fn topic_for(topic: &str) -> String {
    format!("{topic}{SUFFIX}")
}

/// Checks that the DLQ of each source exists (workers call it at start, so
/// poison always has somewhere to go). Workers do not create topics: their
/// principals may not; the set-up step (`gavel topics create`) does.
pub async fn require_topics(config: &Config, sources: &[&str]) -> Result<()> {
    let config = config.clone();
    let names: Vec<String> = sources.iter().map(|s| topic_for(s)).collect();
    tokio::task::spawn_blocking(move || {
        names
            .iter()
            .try_for_each(|name| kafka::partition_count(&config, name).map(|_| ()))
    })
    .await
    .map_err(|e| RuntimeError::Admin(format!("checking the dead-letter topics: {e}")))?
}

/// One record that cannot be processed, and why.
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<&'a OwnedHeaders>,
    pub class: ErrorClass,
    pub reason: &'a str,
}

impl<'a> DeadLetter<'a> {
    pub fn of(message: &'a OwnedMessage, class: ErrorClass, reason: &'a str) -> Self {
        Self {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key(),
            payload: message.payload(),
            headers: message.headers(),
            class,
            reason,
        }
    }

    pub fn dlq_topic(&self) -> String {
        topic_for(self.topic)
    }

    /// 1 for a first failure; a replayed record that fails again counts on.
    pub fn attempt(&self) -> u32 {
        self.headers
            .and_then(|h| crate::envelope::header_str(h, header::ATTEMPT))
            .and_then(|a| a.parse::<u32>().ok())
            .map_or(1, |a| a + 1)
    }

    /// The original headers (minus earlier `gavel-dlq-*` ones) plus ours.
    pub fn headers(&self, worker: &str) -> OwnedHeaders {
        self.headers_within(worker, MAX_LETTER_PAYLOAD)
    }

    /// `headers`, saying what the letter leaves out: original headers past
    /// `MAX_COPIED_HEADER_BYTES`, a payload over `max_payload`, a key over `MAX_LETTER_KEY`.
    fn headers_within(&self, worker: &str, max_payload: usize) -> OwnedHeaders {
        // A replayed record that fails again keeps saying where it was replayed from.
        let (mut out, omitted) =
            copy_headers_bounded(self.headers, MAX_COPIED_HEADER_BYTES, |key| {
                !key.starts_with(header::PREFIX) || key == header::REPLAY_OF
            });
        let mut notes = Vec::new();
        if omitted > 0 {
            notes.push((header::HEADERS_OMITTED, omitted.to_string()));
        }
        if let Some(payload) = self.payload.filter(|p| p.len() > max_payload) {
            notes.push((header::PAYLOAD_OMITTED, payload.len().to_string()));
        }
        if let Some(key) = self.key.filter(|k| k.len() > MAX_LETTER_KEY) {
            notes.push((header::KEY_OMITTED, key.len().to_string()));
        }
        for (key, value) in &notes {
            out = out.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let timestamp = self.timestamp.map(|t| t.to_string()).unwrap_or_default();
        let attempt = self.attempt().to_string();
        let reason = truncate(self.reason, 2000);
        for (key, value) in [
            (header::ERROR_CLASS, self.class.as_str()),
            (header::ERROR_MESSAGE, reason),
            (header::ORIGINAL_TOPIC, self.topic),
            (header::ORIGINAL_PARTITION, &partition),
            (header::ORIGINAL_OFFSET, &offset),
            (header::ORIGINAL_TIMESTAMP, &timestamp),
            (header::ATTEMPT, &attempt),
            (header::WORKER, worker),
        ] {
            out = out.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        out
    }
}

/// A payload larger than this is left out of its letter (a header gives its
/// size): a letter must fit the broker's default 1 MB `message.max.bytes`
/// with room for headers, or the record it reports would stop its partition.
pub const MAX_LETTER_PAYLOAD: usize = 512 * 1024;
/// Original headers are copied up to this many bytes (keys and values).
pub const MAX_COPIED_HEADER_BYTES: usize = 64 * 1024;
/// A key larger than this is left out of its letter.
pub const MAX_LETTER_KEY: usize = 16 * 1024;

impl DeadLetter<'_> {
    /// The letter as a record for a producer of the caller's own, such as a
    /// transactional one, so the letter commits with the consumed offset.
    /// `dlq_topic` is [`DeadLetter::dlq_topic`], kept by the caller for the borrow.
    pub fn record<'r>(&'r self, dlq_topic: &'r str, worker: &str) -> BaseRecord<'r, [u8], [u8]> {
        self.record_within(dlq_topic, worker, MAX_LETTER_PAYLOAD)
    }

    /// `record` without the payload whatever its size: for a broker whose
    /// limit is below even a bounded letter.
    pub fn record_without_payload<'r>(
        &'r self,
        dlq_topic: &'r str,
        worker: &str,
    ) -> BaseRecord<'r, [u8], [u8]> {
        self.record_within(dlq_topic, worker, 0)
    }

    fn record_within<'r>(
        &'r self,
        dlq_topic: &'r str,
        worker: &str,
        max_payload: usize,
    ) -> BaseRecord<'r, [u8], [u8]> {
        let mut record =
            BaseRecord::to(dlq_topic).headers(self.headers_within(worker, max_payload));
        if let Some(key) = self.key.filter(|k| k.len() <= MAX_LETTER_KEY) {
            record = record.key(key);
        }
        if let Some(payload) = self.payload.filter(|p| p.len() <= max_payload) {
            record = record.payload(payload);
        }
        record
    }
}

/// Copies the headers whose key passes `keep` while their total size stays
/// within `max_bytes`; also says how many it left out.
pub fn copy_headers_bounded(
    headers: Option<&OwnedHeaders>,
    max_bytes: usize,
    keep: impl Fn(&str) -> bool,
) -> (OwnedHeaders, usize) {
    let mut out = OwnedHeaders::new();
    let (mut used, mut omitted) = (0usize, 0usize);
    if let Some(headers) = headers {
        for h in headers.iter().filter(|h| keep(h.key)) {
            let size = h.key.len() + h.value.map_or(0, <[u8]>::len);
            if used + size > max_bytes {
                omitted += 1;
                continue;
            }
            used += size;
            out = out.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    (out, omitted)
}

/// Copies the headers whose key passes `keep`.
pub fn copy_headers(headers: Option<&OwnedHeaders>, keep: impl Fn(&str) -> bool) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(headers) = headers {
        for h in headers.iter().filter(|h| keep(h.key)) {
            out = out.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    out
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An idempotent producer of dead letters for stages that commit to Postgres
/// (the aggregate processor writes its own inside its Kafka transaction).
/// Sent and acknowledged before the batch's offsets commit: a crash in between
/// repeats the letter, which its original coordinates identify.
pub struct DeadLetters {
    producer: FutureProducer,
    worker: String,
}

impl DeadLetters {
    pub fn new(config: &Config, worker: &str) -> Result<Self> {
        Ok(Self {
            producer: kafka::producer_config(config).create()?,
            worker: worker.to_owned(),
        })
    }

    pub async fn send(&self, letter: &DeadLetter<'_>) -> Result<()> {
        self.send_to(&letter.dlq_topic(), letter).await
    }

    /// `send`, to a dead-letter topic the caller names: the outbox relay's
    /// letters name topics that may not exist, so they cannot have a `.dlq` each.
    pub async fn send_to(&self, topic: &str, letter: &DeadLetter<'_>) -> Result<()> {
        let sent = match self.send_within(topic, letter, MAX_LETTER_PAYLOAD).await {
            Err(RuntimeError::Kafka(error)) if is_too_large(&error) => {
                // The broker's limit is lower still: the letter goes without
                // its payload rather than not at all.
                self.send_within(topic, letter, 0).await
            }
            other => other,
        };
        sent?;
        tracing::warn!(
            topic = letter.topic,
            partition = letter.partition,
            offset = letter.offset,
            class = letter.class.as_str(),
            reason = crate::envelope::loggable(letter.reason),
            dlq = topic,
            "{}",
            letter.class.log_message()
        );
        Ok(())
    }

    async fn send_within(
        &self,
        topic: &str,
        letter: &DeadLetter<'_>,
        max_payload: usize,
    ) -> Result<()> {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(letter.headers_within(&self.worker, max_payload));
        if let Some(key) = letter.key.filter(|k| k.len() <= MAX_LETTER_KEY) {
            record = record.key(key);
        }
        if let Some(payload) = letter.payload.filter(|p| p.len() <= max_payload) {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| RuntimeError::Kafka(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_the_originals_and_say_why() {
        let original = OwnedHeaders::new()
            .insert(Header {
                key: "command_id",
                value: Some("c1".as_bytes()),
            })
            .insert(Header {
                key: header::ATTEMPT,
                value: Some("2".as_bytes()),
            });
        let letter = DeadLetter {
            topic: "auction.commands",
            partition: 3,
            offset: 42,
            timestamp: Some(1000),
            key: Some(b"lot-1"),
            payload: Some(b"junk"),
            headers: Some(&original),
            class: ErrorClass::Undecodable,
            reason: "not Confluent wire format",
        };
        let headers = letter.headers("aggregate/local-0");
        let get = |k| crate::envelope::header_str(&headers, k).map(str::to_owned);
        assert_eq!(get("command_id").as_deref(), Some("c1"));
        assert_eq!(get(header::ATTEMPT).as_deref(), Some("3"));
        assert_eq!(get(header::ORIGINAL_OFFSET).as_deref(), Some("42"));
        assert_eq!(get(header::ERROR_CLASS).as_deref(), Some("undecodable"));
        assert_eq!(headers.count(), 9);
        assert_eq!(letter.dlq_topic(), "auction.commands.dlq");
    }

    #[test]
    fn transient_failures_are_never_dead_lettered() {
        let outage = RuntimeError::RegistryUnavailable("connection refused".into());
        assert_eq!(ErrorClass::of(&outage), None);
        let missing = RuntimeError::Registry("404 Not Found".into());
        assert_eq!(ErrorClass::of(&missing), Some(ErrorClass::UnknownSchema));
        let junk = RuntimeError::Avro("not Confluent wire format".into());
        assert_eq!(ErrorClass::of(&junk), Some(ErrorClass::Undecodable));
    }
}
