//! The envelope every command and event carries, as Kafka headers (so routers,
//! DLQ tooling and tracing can read it without decoding Avro) and inside the Avro
//! record (so the read side has it).

use gavel_domain::{AuctionId, TenantId, Timestamp, UserId};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use uuid::Uuid;

pub mod header {
    pub const COMMAND_ID: &str = "command_id";
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const COMMAND_TYPE: &str = "command_type";
    pub const AGGREGATE_ID: &str = "aggregate_id";
    pub const AGGREGATE_VERSION: &str = "aggregate_version";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const TENANT_ID: &str = "tenant_id";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const TRACEPARENT: &str = "traceparent";
    /// On a view record: the offset, in the event topic, of the event it was
    /// projected from (same partition number). A rebuild from the events uses
    /// it to stop exactly where the live sink stands.
    pub const SOURCE_OFFSET: &str = "source_offset";
}

/// Metadata of a command: who asked, under which idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    pub command_id: String,
    pub correlation_id: String,
    pub tenant_id: TenantId,
    /// The user who asks (from their token); empty when a producer named none,
    /// which the aggregate refuses.
    pub actor_id: UserId,
    pub expected_version: Option<u64>,
}

impl CommandMeta {
    /// A fresh command id, used as its own correlation id.
    pub fn new(tenant_id: TenantId, actor_id: UserId) -> Self {
        let id = Uuid::now_v7().to_string();
        Self {
            command_id: id.clone(),
            correlation_id: id,
            tenant_id,
            actor_id,
            expected_version: None,
        }
    }

    pub fn headers(&self, command_type: &str) -> OwnedHeaders {
        OwnedHeaders::new_with_capacity(5)
            .insert(text(header::COMMAND_ID, &self.command_id))
            .insert(text(header::COMMAND_TYPE, command_type))
            .insert(text(header::CORRELATION_ID, &self.correlation_id))
            .insert(text(header::TENANT_ID, self.tenant_id.as_str()))
            .insert(text(
                header::TRACEPARENT,
                &traceparent(&self.correlation_id),
            ))
    }
}

/// Envelope of one event: identity, position in its aggregate, provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub event_id: String,
    pub aggregate_id: AuctionId,
    pub aggregate_version: u64,
    pub occurred_at: Timestamp,
    pub correlation_id: String,
    pub causation_id: String,
    pub tenant_id: TenantId,
    pub schema_version: i32,
}

impl EventEnvelope {
    /// What the pure view projection needs of this envelope.
    pub fn view_meta(&self) -> gavel_domain::views::EventMeta {
        gavel_domain::views::EventMeta {
            aggregate_id: self.aggregate_id.clone(),
            tenant_id: self.tenant_id.clone(),
            version: self.aggregate_version,
            occurred_at: self.occurred_at,
        }
    }

    /// The envelope of an event `command` caused, at aggregate `version`.
    pub fn caused_by(
        command: &CommandMeta,
        aggregate_id: &AuctionId,
        version: u64,
        occurred_at: Timestamp,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7().to_string(),
            aggregate_id: aggregate_id.clone(),
            aggregate_version: version,
            occurred_at,
            correlation_id: command.correlation_id.clone(),
            causation_id: command.command_id.clone(),
            tenant_id: command.tenant_id.clone(),
            schema_version: 1,
        }
    }

    pub fn headers(&self, event_type: &str) -> OwnedHeaders {
        let version = self.aggregate_version.to_string();
        let schema_version = self.schema_version.to_string();
        OwnedHeaders::new_with_capacity(9)
            .insert(text(header::EVENT_ID, &self.event_id))
            .insert(text(header::EVENT_TYPE, event_type))
            .insert(text(header::AGGREGATE_ID, self.aggregate_id.as_str()))
            .insert(text(header::AGGREGATE_VERSION, &version))
            .insert(text(header::CORRELATION_ID, &self.correlation_id))
            .insert(text(header::CAUSATION_ID, &self.causation_id))
            .insert(text(header::TENANT_ID, self.tenant_id.as_str()))
            .insert(text(header::SCHEMA_VERSION, &schema_version))
            .insert(text(
                header::TRACEPARENT,
                &traceparent(&self.correlation_id),
            ))
    }
}

fn text<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}

/// Reads a UTF-8 header value.
/// Longest client-chosen text (a header, a key, a reason) a log line carries:
/// a 100 KB header must not become a 100 KB log line.
pub const LOGGABLE_BYTES: usize = 128;

/// `text` cut to at most `LOGGABLE_BYTES` bytes, at a character boundary.
pub fn loggable(text: &str) -> &str {
    if text.len() <= LOGGABLE_BYTES {
        return text;
    }
    let mut end = LOGGABLE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

pub fn header_str<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// W3C trace context. The trace id is the correlation id when it is a UUID, so one
/// user action is one trace across every topic; the span id is fresh per record.
pub fn traceparent(correlation_id: &str) -> String {
    let trace = Uuid::parse_str(correlation_id).unwrap_or_else(|_| Uuid::now_v7());
    let span = Uuid::new_v4();
    let span_bytes = &span.as_bytes()[..8];
    let mut span_hex = String::with_capacity(16);
    for byte in span_bytes {
        span_hex.push_str(&format!("{byte:02x}"));
    }
    format!("00-{}-{span_hex}-01", trace.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_carries_the_correlation_uuid_as_trace_id() {
        let correlation = "0190a5e4-7b3c-7d2e-8f00-112233445566";
        let tp = traceparent(correlation);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "0190a5e47b3c7d2e8f00112233445566");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
    }

    #[test]
    fn loggable_text_is_cut_at_a_character_boundary() {
        assert_eq!(loggable("short"), "short");
        let long = "é".repeat(100);
        let cut = loggable(&long);
        assert!(cut.len() <= LOGGABLE_BYTES && cut.len() >= LOGGABLE_BYTES - 1);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn event_headers_carry_the_envelope() {
        let meta = CommandMeta::new(TenantId::new("t1"), UserId::new("u1"));
        let envelope =
            EventEnvelope::caused_by(&meta, &AuctionId::new("a1"), 7, Timestamp::from_millis(5));
        let headers = envelope.headers("BidPlaced");
        assert_eq!(header_str(&headers, header::AGGREGATE_VERSION), Some("7"));
        assert_eq!(
            header_str(&headers, header::CAUSATION_ID),
            Some(meta.command_id.as_str())
        );
        assert_eq!(header_str(&headers, header::EVENT_TYPE), Some("BidPlaced"));
    }
}
