//! The tracing span of one consumed record.

use gavel_runtime::envelope::{header, header_str, loggable};
use gavel_runtime::telemetry::follow_traceparent;
use rdkafka::message::{Message, OwnedMessage};

/// Where a record came from and which user action it belongs to. Debug level:
/// an info span would cost its formatting on every record of the hot path;
/// warnings and dead letters carry the same coordinates inline.
pub fn record_span(message: &OwnedMessage) -> tracing::Span {
    let header = |key| {
        message
            .headers()
            .and_then(|headers| header_str(headers, key))
            .map_or("", loggable)
    };
    let key = message
        .key()
        .and_then(|key| std::str::from_utf8(key).ok())
        .map_or("", loggable);
    let span = tracing::debug_span!(
        "record",
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        aggregate_id = key,
        correlation_id = header(header::CORRELATION_ID),
        causation_id = header(header::CAUSATION_ID),
    );
    follow_traceparent(&span, header(header::TRACEPARENT));
    span
}
